"""Compile Vyper contracts into `Artifact`s, with an on-disk cache keyed by source hash.

DESIGN §3: compiled artifacts have one source of truth, the vyper compiler at the pinned
version (the `vyper` package installed next to this code, driven through its Python API, so
it works offline). Compiling the protocol takes seconds and a simulation or test run needs it
many times, so every artifact is cached as JSON under `<repo>/.build/perpsim/` (or
`$PERPSIM_CACHE_DIR`). The cache key is a sha256 of the compiler version, the compiler
settings, every `.vy`/`.vyi` source under the import search paths and the contract's path:
editing any module a contract could import invalidates it, and nothing else does.

Contracts are compiled for the Cancun EVM (the fork every backend runs: sim/chain/revm.py)
unless their source pins `# pragma evm-version`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import vyper
from vyper.compiler import compile_from_file_input
from vyper.compiler.input_bundle import FilesystemInputBundle
from vyper.compiler.settings import Settings

from sim.chain.base import Artifact

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
DEFAULT_CACHE_DIR = REPO_ROOT / ".build" / "perpsim"
CACHE_DIR_ENV = "PERPSIM_CACHE_DIR"

# The fork all three backends run; see revm.SPEC_ID, pyevm's CancunVM and rpc's `--hardfork`.
EVM_VERSION = "cancun"
_OUTPUT_FORMATS = ["abi", "bytecode", "bytecode_runtime"]
_EVM_PRAGMA = re.compile(r"^\s*#\s*pragma\s+evm-version\b", re.MULTILINE)
_CACHE_FORMAT = 1  # bump when the JSON layout changes


class CompileError(Exception):
    """A contract failed to compile; the message names the file and carries vyper's error."""


def cache_dir() -> Path:
    """Where artifacts are cached: `$PERPSIM_CACHE_DIR` if set, else `<repo>/.build/perpsim`."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else DEFAULT_CACHE_DIR


def compile_contract(path: str | Path, search_paths: list[str | Path] | None = None) -> Artifact:
    """Compile one Vyper contract (or load it from the cache).

    `search_paths` are the import roots (`from interfaces import IOracle` resolves against
    them); by default the contract's own directory, which for `contracts/*.vy` is `contracts/`.
    """
    contract_path = Path(path).resolve()
    if not contract_path.is_file():
        raise FileNotFoundError(f"no Vyper contract at {contract_path}")
    roots = [Path(p).resolve() for p in (search_paths or [contract_path.parent])]
    return _compile_cached(contract_path, roots, _sources_digest(roots))


def compile_project(contracts_dir: str | Path = CONTRACTS_DIR) -> dict[str, Artifact]:
    """Compile every top-level `contracts_dir/*.vy`, by contract name.

    Modules (`contracts/modules/`) and interfaces (`contracts/interfaces/`) are not deployable
    on their own; they are compiled as part of the contracts that import them.
    """
    root = Path(contracts_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"contracts directory {root} does not exist")
    digest = _sources_digest([root])
    return {p.stem: _compile_cached(p, [root], digest) for p in sorted(root.glob("*.vy"))}


def cache_key(contract_path: Path, roots: list[Path], sources_digest: str) -> str:
    """sha256 of (vyper version, settings, all sources under `roots`, the contract path)."""
    h = hashlib.sha256()
    h.update(f"vyper={vyper.__version__};evm={EVM_VERSION};format={_CACHE_FORMAT}\n".encode())
    h.update(sources_digest.encode())
    h.update(_display_path(contract_path, roots).encode())
    # A contract outside every search root is not covered by the digest: hash it too.
    if not any(contract_path.is_relative_to(r) for r in roots):
        h.update(contract_path.read_bytes())
    return h.hexdigest()


# -- internals ---------------------------------------------------------------


def _sources_digest(roots: list[Path]) -> str:
    """One hash over every .vy/.vyi file under the search roots (path and contents)."""
    h = hashlib.sha256()
    for root in roots:
        files = sorted(p for p in root.rglob("*") if p.suffix in (".vy", ".vyi") and p.is_file())
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _display_path(contract_path: Path, roots: list[Path]) -> str:
    for root in roots:
        if contract_path.is_relative_to(root):
            return str(contract_path.relative_to(root))
    return str(contract_path)


def _compile_cached(contract_path: Path, roots: list[Path], sources_digest: str) -> Artifact:
    key = cache_key(contract_path, roots, sources_digest)
    cached = cache_dir() / f"{contract_path.stem}-{key}.json"
    if cached.is_file():
        try:
            return _artifact_from_json(json.loads(cached.read_text()))
        except (ValueError, KeyError, TypeError):
            pass  # a corrupt or foreign file: recompile and overwrite it
    artifact = _invoke_compiler(contract_path, roots)
    _write_atomically(cached, json.dumps(_artifact_to_json(artifact)))
    return artifact


def _invoke_compiler(contract_path: Path, roots: list[Path]) -> Artifact:
    """Run the vyper compiler (the only place that does; tests count calls to it)."""
    bundle = FilesystemInputBundle(list(roots))
    source = contract_path.read_text()
    settings = Settings() if _EVM_PRAGMA.search(source) else Settings(evm_version=EVM_VERSION)
    try:
        file_input = bundle.load_file(contract_path)
        out = compile_from_file_input(
            file_input, input_bundle=bundle, settings=settings, output_formats=_OUTPUT_FORMATS
        )
    except Exception as exc:  # vyper raises many exception types; all mean "did not compile"
        raise CompileError(f"vyper {vyper.__version__} failed to compile {contract_path}:\n{exc}") from exc
    return Artifact(
        name=contract_path.stem,
        abi=out["abi"],
        bytecode=bytes.fromhex(out["bytecode"].removeprefix("0x")),
        runtime_bytecode=bytes.fromhex(out["bytecode_runtime"].removeprefix("0x")),
    )


def _artifact_to_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "format": _CACHE_FORMAT,
        "vyper_version": vyper.__version__,
        "name": artifact.name,
        "abi": artifact.abi,
        "bytecode": "0x" + artifact.bytecode.hex(),
        "runtime_bytecode": "0x" + artifact.runtime_bytecode.hex(),
    }


def _artifact_from_json(data: dict[str, Any]) -> Artifact:
    if data["format"] != _CACHE_FORMAT:
        raise ValueError("stale cache format")
    return Artifact(
        name=data["name"],
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        runtime_bytecode=bytes.fromhex(data["runtime_bytecode"].removeprefix("0x")),
    )


def _write_atomically(target: Path, text: str) -> None:
    """Write via a temporary file and rename, so parallel runs never read half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
