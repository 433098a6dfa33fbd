"""Conformance tests of the chain layer: every backend must behave the same (DESIGN §3).

Each behaviour is one test, run on every backend (revm, pyevm, rpc on a local anvil). Cross-
backend tests run one script on the two in-process backends, and on all three, and compare
what they report (gas, addresses, state). Where anvil is missing and npm cannot install it,
the rpc cases skip with the reason; on CI (env CI set) they fail instead
(tests/utils/anvil.py `require_anvil`). The probe contract is
tests/contracts/ChainProbe.vy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_utils import keccak, to_checksum_address

import sim.chain.compiler as compiler
from sim.chain import (
    BACKENDS,
    GENESIS_BLOCK_NUMBER,
    GENESIS_TIMESTAMP,
    MAX_CODE_SIZE,
    Artifact,
    Chain,
    ChainError,
    CompileError,
    Contract,
    Reverted,
    address_from_label,
    at,
    compile_contract,
    compile_project,
    decode_revert_reason,
    deploy,
    make_chain,
)
from tests.utils.anvil import free_port

PROBE_SOURCE = Path(__file__).resolve().parents[1] / "contracts" / "ChainProbe.vy"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_artifact() -> Artifact:
    return compile_contract(PROBE_SOURCE)


def _open_chain(backend: str, request: pytest.FixtureRequest) -> Chain:
    """A fresh chain; on rpc, the node is put back to its current state after the test."""
    if backend != "rpc":
        chain = make_chain(backend)
        request.addfinalizer(chain.close)
        return chain
    chain = make_chain("rpc", rpc_url=request.getfixturevalue("anvil_url"))
    start = chain.snapshot()

    def restore() -> None:
        chain.revert(start)
        chain.close()

    request.addfinalizer(restore)
    return chain


@pytest.fixture(params=BACKENDS)
def chain(request: pytest.FixtureRequest) -> Chain:
    return _open_chain(request.param, request)


@pytest.fixture(params=["in-process", "all"])
def all_chains(request: pytest.FixtureRequest) -> dict[str, Chain]:
    """One fresh chain per backend: revm and pyevm (`in-process`), or all three (`all`). The
    rpc backend needs anvil: where it cannot be had, `all` skips with the reason (and fails
    on CI), while `in-process` still compares the two in-process EVMs."""
    backends = [b for b in BACKENDS if b != "rpc" or request.param == "all"]
    return {backend: _open_chain(backend, request) for backend in backends}


@pytest.fixture
def deployer(chain: Chain) -> str:
    return chain.new_account("deployer")


@pytest.fixture
def alice(chain: Chain) -> str:
    return chain.new_account("alice")


@pytest.fixture
def probe(chain: Chain, probe_artifact: Artifact, deployer: str) -> Contract:
    return deploy(chain, probe_artifact, 5, "hello", sender=deployer)


def create_address(sender: str, nonce: int) -> str:
    """The CREATE address of `sender`'s transaction number `nonce` (yellow paper, eq. 85)."""
    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[-20:])


def initcode_returning(size: int) -> bytes:
    """Raw initcode that deploys `size` zero bytes: PUSH2 size PUSH1 0 RETURN."""
    return bytes([0x61]) + size.to_bytes(2, "big") + bytes([0x60, 0x00, 0xF3])


# -- deploy, call, transact ------------------------------------------------------------


def test_deploy_with_constructor_args_and_view_calls(chain: Chain, probe: Contract, deployer: str) -> None:
    assert probe.address == create_address(deployer, 0)
    assert chain.get_code(probe.address) == probe.artifact.runtime_bytecode
    assert probe.deploy_gas_used is not None and probe.deploy_gas_used > 53_000  # intrinsic CREATE cost
    assert probe.call("value") == 5
    assert probe.call("label") == "hello"
    assert probe.call("owner") == deployer  # checksummed
    assert probe.call("stats") == (5, deployer, -7, "hello")
    assert probe.call("add", 2) == 3  # default argument: the 1-argument overload
    assert probe.call("add", 2, 5) == 7
    assert at(chain, probe.artifact, probe.address.lower()).call("value") == 5


def test_transaction_from_named_account(chain: Chain, probe: Contract, alice: str) -> None:
    assert alice == address_from_label("alice")
    assert chain.get_balance(alice) == 10**21
    receipt = probe.transact("set_checked", 7, sender=alice)
    assert receipt.return_value == 5  # the previous value, decoded from the output
    assert receipt.gas_used > 21_000
    assert receipt.block_number == chain.block_number == GENESIS_BLOCK_NUMBER
    assert probe.call("value") == 7
    assert chain.get_nonce(alice) == 1
    receipt = probe.transact("set", 8, sender=alice)
    assert receipt.events[0].args["setter"] == alice
    assert chain.get_nonce(alice) == 2
    # the nonce feeds CREATE addresses: a contract alice deploys now gets nonce 2's address
    second = deploy(chain, probe.artifact, 1, "second", sender=alice)
    assert second.address == create_address(alice, 2)
    paid = probe.transact("deposit", sender=alice, value=1234)
    assert paid.return_value == 1234
    assert chain.get_balance(probe.address) == 1234
    assert chain.get_balance(alice) == 10**21 - 1234  # gas price is 0 everywhere


def test_read_only_call_leaves_no_trace(chain: Chain, probe: Contract, alice: str) -> None:
    assert probe.call("set_checked", 9, sender=alice) == 5  # a state-changing function, simulated
    assert probe.call("value") == 5
    assert probe.call("set_count") == 0
    assert chain.get_nonce(alice) == 0
    assert chain.events_since(0) == ([], 0)


def test_revert_reason_decoded_and_state_unchanged(chain: Chain, probe: Contract, alice: str) -> None:
    probe.transact("set", 7, sender=alice)
    before = (probe.call("value"), probe.call("set_count"), chain.get_nonce(alice), chain.events_since(0)[1])
    with pytest.raises(Reverted) as failed:
        probe.transact("set_checked", 0, sender=alice)
    assert failed.value.reason == "probe: zero value"
    assert str(failed.value) == "probe: zero value"
    assert failed.value.gas_used > 21_000
    with pytest.raises(Reverted) as panicked:
        probe.transact("fail_with_panic", 0x11, sender=alice)
    assert panicked.value.reason == "panic: 0x11"
    after = (probe.call("value"), probe.call("set_count"), chain.get_nonce(alice), chain.events_since(0)[1])
    assert after == before  # not even the nonce moved
    with pytest.raises(Reverted, match="probe: zero value"):
        probe.call("set_checked", 0)
    assert probe.transact("set", 9, sender=alice).return_value is None  # the chain still works


def test_transaction_that_cannot_pay_fails_without_trace(chain: Chain, probe: Contract) -> None:
    poor = chain.new_account("poor", eth=100)
    with pytest.raises(Reverted, match=r"invalid transaction|rejected"):
        probe.transact("deposit", sender=poor, value=101)
    assert (chain.get_balance(poor), chain.get_nonce(poor), chain.get_balance(probe.address)) == (100, 0, 0)
    assert probe.transact("deposit", sender=poor, value=100).return_value == 100


def test_contract_code_size_limit_is_eip170(chain: Chain, deployer: str) -> None:
    too_big = create_address(deployer, 0)
    with pytest.raises(Reverted):
        chain.deploy_raw(deployer, initcode_returning(MAX_CODE_SIZE + 1))
    assert chain.get_code(too_big) == b""
    assert chain.get_nonce(deployer) == 0
    address, gas_used = chain.deploy_raw(deployer, initcode_returning(MAX_CODE_SIZE))
    assert address == too_big
    assert len(chain.get_code(address)) == MAX_CODE_SIZE
    assert gas_used > 200 * MAX_CODE_SIZE  # code deposit cost


# -- events ---------------------------------------------------------------------------


def test_events_decoded_in_order_with_cursors(chain: Chain, probe: Contract, alice: str) -> None:
    events, cursor = chain.events_since(0)
    assert (events, cursor) == ([], 0)  # the constructor logs nothing
    first = probe.transact("set", 7, sender=alice)
    second = probe.transact("tag", "hello", -3, sender=alice)
    events, next_cursor = chain.events_since(cursor)
    assert [e.name for e in events] == ["ValueSet", "Tagged"]
    assert events == first.events + second.events
    assert [e.log_index for e in events] == [0, 1]
    assert all(e.address == probe.address and e.block_number == GENESIS_BLOCK_NUMBER for e in events)
    assert events[0].args == {"setter": alice, "old_value": 5, "new_value": 7, "note": "hello"}
    # indexed string: only its hash is on chain; indexed int256: decoded from the topic
    assert events[1].args == {"tag": keccak(text="hello"), "amount": -3, "who": alice}
    assert next_cursor == 2
    chain.mine(12)
    probe.transact("set", 8, sender=alice)
    later, final_cursor = chain.events_since(next_cursor)
    assert [(e.name, e.args["new_value"], e.log_index, e.block_number) for e in later] == [
        ("ValueSet", 8, 2, GENESIS_BLOCK_NUMBER + 1)
    ]
    assert chain.events_since(final_cursor) == ([], 3)


# -- time -----------------------------------------------------------------------------


def test_block_time_seen_by_transactions(chain: Chain, probe: Contract, alice: str) -> None:
    assert (chain.block_number, chain.timestamp) == (GENESIS_BLOCK_NUMBER, GENESIS_TIMESTAMP)
    seen = [probe.transact("now", sender=alice).return_value for _ in range(3)]
    assert seen == [GENESIS_TIMESTAMP] * 3  # transactions in one block share its timestamp
    assert probe.call("now") == GENESIS_TIMESTAMP
    chain.mine(12)
    assert (chain.block_number, chain.timestamp) == (GENESIS_BLOCK_NUMBER + 1, GENESIS_TIMESTAMP + 12)
    assert probe.call("now") == GENESIS_TIMESTAMP + 12
    assert probe.transact("now", sender=alice).return_value == GENESIS_TIMESTAMP + 12
    chain.mine()  # a new block at the same second
    assert probe.transact("now", sender=alice).return_value == GENESIS_TIMESTAMP + 12
    chain.set_timestamp(GENESIS_TIMESTAMP + 100)
    assert probe.transact("now", sender=alice).return_value == GENESIS_TIMESTAMP + 100
    assert probe.call("now") == GENESIS_TIMESTAMP + 100
    with pytest.raises(ValueError, match="backwards"):
        chain.set_timestamp(GENESIS_TIMESTAMP + 99)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        chain.mine(-1)
    assert chain.timestamp == GENESIS_TIMESTAMP + 100


def test_forgotten_events_are_no_longer_kept(chain: Chain, probe: Contract, alice: str) -> None:
    for value in (1, 2, 3):
        probe.transact("set", value, sender=alice)
    chain.forget_events(2)  # the readers have read the first two
    events, cursor = chain.events_since(2)
    assert cursor == 3 and [(e.log_index, e.args["new_value"]) for e in events] == [(2, 3)]
    with pytest.raises(ChainError, match="no longer kept"):
        chain.events_since(0)
    probe.transact("set", 4, sender=alice)
    assert [e.log_index for e in chain.events_since(3)[0]] == [3]  # numbering goes on


def test_a_snapshot_keeps_the_events_it_would_restore(chain: Chain, probe: Contract, alice: str) -> None:
    probe.transact("set", 1, sender=alice)
    snap = chain.snapshot()
    for value in (2, 3):
        probe.transact("set", value, sender=alice)
    chain.forget_events(2)  # read up to the third; the snapshot would go back to the first event
    assert [e.args["new_value"] for e in chain.events_since(2)[0]] == [3]
    with pytest.raises(ChainError, match="no longer kept"):
        chain.events_since(0)  # the second is gone, not the first
    chain.revert(snap)
    assert [e.args["new_value"] for e in chain.events_since(0)[0]] == [1]  # a reader can start again


# -- snapshots --------------------------------------------------------------------------


def test_snapshot_revert_restores_state_time_and_events(chain: Chain, probe: Contract, alice: str) -> None:
    probe.transact("set", 7, sender=alice)
    snap = chain.snapshot()
    saved = (probe.call("value"), chain.get_nonce(alice), chain.get_balance(alice), chain.block_number, chain.timestamp)
    bob = chain.new_account("bob", eth=5)
    probe.transact("set", 8, sender=alice)
    chain.mine(30)
    probe.transact("deposit", sender=alice, value=10)
    deploy(chain, probe.artifact, 1, "gone", sender=alice)
    assert chain.events_since(0)[1] == 2
    inner = chain.snapshot()

    chain.revert(snap)
    restored = (
        probe.call("value"),
        chain.get_nonce(alice),
        chain.get_balance(alice),
        chain.block_number,
        chain.timestamp,
    )
    assert restored == saved
    assert chain.get_balance(bob) == 0
    assert chain.get_balance(probe.address) == 0
    assert chain.get_code(create_address(alice, 2)) == b""
    events, cursor = chain.events_since(0)
    assert cursor == 1 and [e.args["new_value"] for e in events] == [7]
    with pytest.raises(ChainError, match="invalidated"):
        chain.revert(inner)  # taken after `snap`: gone with it

    # the chain goes on from the snapshot, and the snapshot can be used again
    assert probe.transact("now", sender=alice).return_value == saved[4]
    probe.transact("set", 9, sender=alice)
    assert chain.events_since(0)[1] == 2
    chain.revert(snap)
    assert probe.call("value") == 7
    assert chain.events_since(0)[1] == 1


# -- gas and cross-backend agreement ------------------------------------------------------


def test_each_transaction_starts_cold(chain: Chain, probe: Contract, alice: str) -> None:
    """EIP-2929: every transaction starts with cold slots, whatever earlier ones touched."""
    probe.transact("stats", sender=alice)  # touches value, owner and label's two slots
    reads = probe.transact("stats", sender=alice).gas_used
    no_reads = probe.transact("now", sender=alice).gas_used
    assert reads - no_reads >= 4 * 2_100  # four cold SLOADs again (a warm one costs 100)
    probe.transact("set", 7, sender=alice)
    snap = chain.snapshot()
    direct = probe.transact("set", 8, sender=alice).gas_used
    chain.revert(snap)
    probe.transact("stats", sender=alice)
    assert probe.transact("set", 8, sender=alice).gas_used == direct


def _gas_script(chain: Chain, artifact: Artifact) -> dict[str, Any]:
    """A fixed sequence of transactions; returns everything observable about it."""
    seen: dict[str, Any] = {}
    deployer, alice = chain.new_account("deployer"), chain.new_account("alice")
    seen["accounts"] = (deployer, alice)
    probe = deploy(chain, artifact, 5, "hello", sender=deployer)
    seen["deploy"] = (probe.address, probe.deploy_gas_used)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("set 7 (cold write)", lambda: probe.transact("set", 7, sender=alice)),
        ("set 7 again (no-op write)", lambda: probe.transact("set", 7, sender=alice)),
        ("set 0 (refund)", lambda: probe.transact("set", 0, sender=alice)),
        ("set 9 (zero to non-zero)", lambda: probe.transact("set", 9, sender=alice)),
        ("tag (dynamic indexed event)", lambda: probe.transact("tag", "a longer tag to hash", -1, sender=alice)),
        ("deposit (value transfer)", lambda: probe.transact("deposit", sender=alice, value=10**18)),
        ("add (pure)", lambda: probe.transact("add", 1, 2, sender=alice)),
    ]
    seen["gas"] = {label: step().gas_used for label, step in steps}
    try:
        probe.transact("set_checked", 0, sender=alice)
    except Reverted as exc:
        seen["revert"] = (exc.reason, exc.gas_used)
    spawned = probe.transact("spawn", sender=alice)
    clone = at(chain, artifact, spawned.return_value)
    seen["spawn (CREATE by a contract)"] = (clone.address, spawned.gas_used, chain.get_nonce(probe.address))
    seen["clone set"] = clone.transact("set", 3, sender=alice).gas_used
    failing = probe.transact("call_failing", clone.address, sender=alice)
    seen["reverted inner call"] = (failing.return_value, failing.gas_used, clone.call("value"))
    chain.mine(12)
    second = deploy(chain, artifact, 1, "second", sender=alice)
    seen["second deploy"] = (second.address, second.deploy_gas_used)
    seen["block env"] = (probe.call("block_env"), probe.transact("block_env", sender=alice).return_value)
    seen["state"] = (
        probe.call("stats"),
        probe.call("set_count"),
        chain.get_balance(alice),
        chain.get_balance(probe.address),
        chain.get_nonce(alice),
        chain.get_nonce(deployer),
        [(e.name, e.args, e.block_number, e.log_index) for e in chain.events_since(0)[0]],
    )
    return seen


def test_gas_addresses_and_state_identical_across_backends(
    all_chains: dict[str, Chain], probe_artifact: Artifact
) -> None:
    results = {backend: _gas_script(chain, probe_artifact) for backend, chain in all_chains.items()}
    reference = results["pyevm"]
    assert reference["accounts"] == (address_from_label("deployer"), address_from_label("alice"))
    assert reference["revert"][0] == "probe: zero value"
    zero = "0x0000000000000000000000000000000000000000"
    assert reference["block env"] == ((31337, 30_000_000, 0, zero),) * 2  # chain id, gas limit, base fee, coinbase
    assert all(gas > 21_000 for gas in reference["gas"].values())
    assert reference["spawn (CREATE by a contract)"][2] == 2  # a contract's nonce starts at 1
    assert reference["reverted inner call"][0] is False and reference["reverted inner call"][2] == 3
    assert reference["gas"]["set 0 (refund)"] < reference["gas"]["set 7 again (no-op write)"]
    for backend, seen in results.items():
        for key in reference:
            assert seen[key] == reference[key], f"{backend} disagrees with pyevm on {key!r}"


# -- compiler cache ---------------------------------------------------------------------


@pytest.fixture
def compiler_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Use an empty cache dir and record every real vyper invocation."""
    monkeypatch.setenv(compiler.CACHE_DIR_ENV, str(tmp_path / "cache"))
    calls: list[Path] = []
    real = compiler._invoke_compiler

    def counting(contract_path: Path, roots: list[Path]) -> Artifact:
        calls.append(contract_path)
        return real(contract_path, roots)

    monkeypatch.setattr(compiler, "_invoke_compiler", counting)
    return calls


def test_compile_cache_hit_on_second_compile(compiler_calls: list[Path], tmp_path: Path) -> None:
    first = compile_contract(PROBE_SOURCE)
    second = compile_contract(PROBE_SOURCE)
    assert compiler_calls == [PROBE_SOURCE]  # the second compile came from the cache
    assert second == first
    assert list((tmp_path / "cache").glob("ChainProbe-*.json"))


def test_compile_project_resolves_modules_and_interfaces(compiler_calls: list[Path], tmp_path: Path) -> None:
    project = tmp_path / "contracts"
    (project / "interfaces").mkdir(parents=True)
    (project / "modules").mkdir()
    (project / "interfaces" / "IDoubler.vyi").write_text(
        "@external\n@pure\ndef double(x: uint256) -> uint256:\n    ...\n"
    )
    math_module = project / "modules" / "math.vy"
    math_module.write_text("@internal\n@pure\ndef twice(x: uint256) -> uint256:\n    return x * 2\n")
    (project / "Doubler.vy").write_text(
        "# pragma version 0.4.3\n"
        "from interfaces import IDoubler\n"
        "import modules.math as math\n"
        "implements: IDoubler\n\n"
        "@external\n@pure\ndef double(x: uint256) -> uint256:\n    return math.twice(x)\n"
    )
    artifacts = compile_project(project)
    assert list(artifacts) == ["Doubler"]  # modules and interfaces are not deployables
    chain = make_chain("revm")
    doubler = deploy(chain, artifacts["Doubler"], sender=chain.new_account("deployer"))
    assert doubler.call("double", 21) == 42
    assert compile_project(project) == artifacts
    assert len(compiler_calls) == 1
    math_module.write_text("@internal\n@pure\ndef twice(x: uint256) -> uint256:\n    return x + x\n")
    compile_project(project)  # an imported module changed: the cache key changed
    assert len(compiler_calls) == 2


def test_compile_error_names_the_file(compiler_calls: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "Broken.vy"
    broken.write_text("# pragma version 0.4.3\n@external\ndef f() -> uint256:\n    return missing\n")
    with pytest.raises(CompileError, match=r"Broken\.vy"):
        compile_contract(broken)
    assert not list((tmp_path / "cache").glob("Broken-*.json"))  # failures are not cached


# -- errors and helpers -------------------------------------------------------------------


def test_make_chain_rejects_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"'geth'.*'revm', 'pyevm', 'rpc'"):
        make_chain("geth")
    with pytest.raises(ValueError, match="rpc_url"):
        make_chain("rpc")


def test_rpc_connection_failure_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainError, match=url.replace(".", r"\.")):
        make_chain("rpc", rpc_url=url)


def test_unknown_function_and_bad_arguments_are_explained(probe_artifact: Artifact) -> None:
    chain = make_chain("revm")
    probe = deploy(chain, probe_artifact, 1, "x", sender=chain.new_account("deployer"))
    with pytest.raises(ValueError, match="no function 'sett'"):
        probe.call("sett", 1)
    with pytest.raises(ValueError, match=r"overloads: add\(uint256\), add\(uint256,uint256\)"):
        probe.call("add")
    with pytest.raises(ValueError, match=r"set\(uint256\)"):
        probe.encode("set", -1)
    with pytest.raises(ValueError, match="constructor takes 2 arguments"):
        deploy(chain, probe_artifact, 1, sender=chain.new_account("deployer"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("08c379a0") + bytes(31) + b"\x20" + bytes(31) + b"\x02" + b"no" + bytes(30), "no"),
        (bytes.fromhex("4e487b71") + (0x32).to_bytes(32, "big"), "panic: 0x32"),
        (bytes.fromhex("deadbeef") + bytes(32), None),
        (b"", None),
    ],
)
def test_decode_revert_reason(data: bytes, reason: str | None) -> None:
    assert decode_revert_reason(data) == reason


def test_revm_keeps_no_undo_log_without_snapshots(probe_artifact: Artifact) -> None:
    """A long simulation holds no snapshot; its memory must not grow with every write."""
    chain = make_chain("revm")
    alice = chain.new_account("alice")
    probe = deploy(chain, probe_artifact, 1, "x", sender=alice)
    for value in range(5):
        probe.transact("set", value + 2, sender=alice)
    assert chain._undo == []  # type: ignore[attr-defined]
    snap = chain.snapshot()
    probe.transact("set", 99, sender=alice)
    assert chain._undo  # type: ignore[attr-defined]
    chain.revert(snap)
    assert probe.call("value") == 6
    del snap
    chain.snapshot()  # the earlier snapshot is gone: its log with it
    assert chain._undo == []  # type: ignore[attr-defined]
