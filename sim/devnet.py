"""The local devnet: anvil on 127.0.0.1 with the protocol deployed through ape.

    python -m sim.devnet start [--port 8545] [--block-time N] [--config calm|FILE.toml]
    python -m sim.devnet stop

(`make devnet` and `make devnet-stop` run exactly these.) `start` launches anvil in the
background with the settings that make it agree with the in-process backends (`ANVIL_ARGS`:
chain id 31337, Cancun, gas price and base fee 0, a 30M gas limit, genesis at timestamp
1_700_000_000, the fixed test mnemonic), records its PID in `.devnet/anvil.pid` and its output
in `.devnet/anvil.log`, waits until it answers, then deploys the protocol with
`ape run deploy --network ethereum:local:foundry` (ape-foundry connects to this anvil through
APE_FOUNDRY_HOST) and writes `.devnet/deployment.json`. What it deploys is the `calm`
scenario's markets unless `--config` (env CONFIG) names another scenario or a TOML of market
parameters. `stop` stops only the process whose PID it recorded. `PERPSIM_DEVNET_DIR` moves
the `.devnet` directory (tests use it). anvil comes from npm, pinned in package.json; `start`
runs `npm ci` if it is missing, and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parents[1]
DEVNET_DIR_ENV = "PERPSIM_DEVNET_DIR"  # where the pid, log and deployment files go; default .devnet/
DEFAULT_PORT = 8545
DEFAULT_CONFIG = "calm"  # deploy the markets of the baseline scenario, so `perpsim run calm --attach` fits
CHAIN_ID = 31337
MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"  # pinned in package.json / package-lock.json
# fmt: off
ANVIL_ARGS = [
    "--chain-id", str(CHAIN_ID),
    "--hardfork", "cancun",
    "--gas-price", "0",
    "--base-fee", "0",
    "--disable-min-priority-fee",
    "--gas-limit", "30000000",
    "--timestamp", "1700000000",
    "--auto-impersonate",
    "--mnemonic", MNEMONIC,
]
# fmt: on
STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
APE_TIMEOUT_SECONDS = 600  # generous: with --block-time every deployment transaction waits for a block


class DevnetError(Exception):
    """The devnet could not be started, deployed to or stopped; the message says why and what to do."""


# -- anvil -----------------------------------------------------------------------------


def anvil_binary() -> Path | None:
    """The anvil executable from node_modules (any platform package), else from PATH."""
    for candidate in sorted(REPO_ROOT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil")):
        if candidate.is_file():
            return candidate
    found = shutil.which("anvil")
    return Path(found) if found else None


def install_anvil() -> Path:
    """Install the pinned anvil with `npm ci` (project-local, from package-lock.json)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DevnetError(
            "anvil is not installed and npm is not on PATH to install it: install Node.js (npm), "
            f"then run `npm ci` here ({ANVIL_PACKAGE} is pinned in package.json)"
        )
    click.echo(f"anvil not found: installing {ANVIL_PACKAGE} (pinned in package.json) with `npm ci`")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REPO_ROOT)
    binary = anvil_binary()
    if done.returncode != 0 or binary is None:
        raise DevnetError(f"`npm ci` failed (exit {done.returncode}); anvil is still missing")
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def node_chain_id(url: str) -> int | None:
    """The chain id the node at `url` answers with, or None when nothing answers."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def anvil_command(binary: Path, port: int, block_time: int | None = None) -> list[str]:
    """The command line of an anvil on 127.0.0.1:`port`; automine unless `block_time` (seconds)."""
    command = [str(binary), "--host", "127.0.0.1", "--port", str(port), *ANVIL_ARGS]
    if block_time is not None:
        command += ["--block-time", str(block_time)]
    return command


def wait_until_answers(url: str, process: subprocess.Popen[bytes], timeout: float = STARTUP_TIMEOUT_SECONDS) -> bool:
    """Whether the node at `url` answers eth_chainId with 31337 before `process` exits or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if node_chain_id(url) == CHAIN_ID:
            return True
        time.sleep(0.05)
    return False


# -- the recorded process -----------------------------------------------------------


def devnet_dir() -> Path:
    return Path(os.environ.get(DEVNET_DIR_ENV) or REPO_ROOT / ".devnet")


def pid_file() -> Path:
    return devnet_dir() / "anvil.pid"


def log_file() -> Path:
    return devnet_dir() / "anvil.log"


def deployment_file() -> Path:
    return devnet_dir() / "deployment.json"



def recorded_pid() -> int | None:
    try:
        return int(pid_file().read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_our_anvil(pid: int) -> bool:
    """Whether `pid` is alive and is an anvil (guards against the PID being reused since)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: never ours
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            argv0 = cmdline.read_bytes().split(b"\0")[0].decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return Path(argv0).name == "anvil" and state != "Z"
    return True  # no /proc (macOS): trust the PID file


def _exited(pid: int) -> bool:
    try:  # reap it if it is our own child (start and stop in one process, as tests do)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    return not is_our_anvil(pid)


def stop_pid(pid: int) -> None:
    """SIGTERM `pid`, wait for it to exit, SIGKILL it if it does not."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if _exited(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    while not _exited(pid):
        time.sleep(0.05)


# -- start and stop -----------------------------------------------------------------


def start(
    port: int = DEFAULT_PORT,
    block_time: int | None = None,
    config: str = DEFAULT_CONFIG,
    deploy: bool = True,
) -> str:
    """Start the devnet (see module doc); return its URL."""
    pid = recorded_pid()
    if pid is not None and is_our_anvil(pid):
        raise DevnetError(f"a devnet is already running (pid {pid}, see {pid_file()}); `make devnet-stop` stops it")
    if port_in_use(port):
        raise DevnetError(f"port {port} on 127.0.0.1 is already in use; choose another with PORT=... or --port")
    if deploy:
        from sim.deployment import DeploymentError, load_protocol_config

        try:  # fail before starting anything
            load_protocol_config(config)
        except DeploymentError as exc:
            raise DevnetError(f"--config {config}: {exc}") from None
    binary = anvil_binary() or install_anvil()
    devnet_dir().mkdir(parents=True, exist_ok=True)
    deployment_file().unlink(missing_ok=True)
    url = f"http://127.0.0.1:{port}"
    with log_file().open("wb") as log:
        process = subprocess.Popen(
            anvil_command(binary, port, block_time),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this command, and a Ctrl-C in the terminal
        )
    pid_file().write_text(f"{process.pid}\n")
    if not wait_until_answers(url, process):
        stop()
        raise DevnetError(f"anvil did not answer at {url}; its log ({log_file()}) ends:\n{_log_tail()}")
    mining = "automine" if block_time is None else f"a block every {block_time} s"
    click.echo(f"anvil {binary} running at {url} (pid {process.pid}, chain id {CHAIN_ID}, {mining})")
    if deploy:
        try:
            deploy_protocol(url, config, deployment_file())
        except DevnetError:
            stop()
            raise
    return url


def deploy_protocol(url: str, config: str, out: Path) -> dict[str, str]:
    """`ape run deploy` to the anvil at `url`; print and return the contracts' addresses."""
    ape = Path(sys.executable).parent / "ape"
    if not ape.is_file():
        raise DevnetError(f"ape is not installed next to {sys.executable}; run `make setup`")
    config = str(Path(config).resolve()) if Path(config).is_file() else config  # ape runs in the repo
    command = [str(ape), "run", "deploy", "--network", "ethereum:local:foundry", "--config", config, "--out", str(out)]
    click.echo(f"deploying through ape: {' '.join(command[1:])}")
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, env=ape_environment(url), capture_output=True, text=True,
                              timeout=APE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise DevnetError(f"`ape run deploy` did not finish in {APE_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0 or not out.is_file():
        raise DevnetError(f"`ape run deploy` failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    deployment = json.loads(out.read_text())
    addresses = {name: c["address"] for name, c in deployment["contracts"].items()}
    for name, address in addresses.items():
        click.echo(f"  {name:<14} {address}")
    click.echo(f"deployment file: {out}")
    return addresses


def ape_environment(url: str) -> dict[str, str]:
    """The environment `ape run` needs: vyper and anvil on PATH (ape-vyper uses the pip-installed
    compiler only when `vyper` is on PATH), ape-foundry pointed at the running anvil."""
    env = dict(os.environ)
    paths = [str(Path(sys.executable).parent)]
    if (binary := anvil_binary()) is not None:
        paths.append(str(binary.parent))
    env["PATH"] = os.pathsep.join([*paths, env.get("PATH", "")])
    env["APE_FOUNDRY_HOST"] = url
    return env


def stop() -> bool:
    """Stop the anvil recorded in the PID file; return whether one was running."""
    pid = recorded_pid()
    running = pid is not None and is_our_anvil(pid)
    if running:
        stop_pid(pid)  # type: ignore[arg-type]
    pid_file().unlink(missing_ok=True)
    return running


def _log_tail(lines: int = 20) -> str:
    try:
        return "\n".join(log_file().read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- command line -------------------------------------------------------------------


@click.group()
def main() -> None:
    """The local devnet: anvil with the perpsim protocol deployed through ape."""


@main.command("start")
@click.option("--port", type=click.IntRange(1, 65535), envvar="PORT", default=DEFAULT_PORT, show_default=True,
              help="port on 127.0.0.1 (or env PORT)")
@click.option("--block-time", type=click.IntRange(min=1), envvar="BLOCK_TIME", default=None,
              help="mine a block every N seconds instead of one per transaction (automine) (or env BLOCK_TIME)")
@click.option("--config", envvar="CONFIG", default=DEFAULT_CONFIG, show_default=True,
              help="what to deploy: a shipped scenario's name, a scenario file or a TOML of market parameters "
              "(or env CONFIG)")
@click.option("--no-deploy", is_flag=True, help="start anvil only")
def start_command(port: int, block_time: int | None, config: str, no_deploy: bool) -> None:
    """Start anvil and deploy the protocol."""
    try:
        url = start(port, block_time, config, deploy=not no_deploy)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"devnet ready at {url}: perpsim run SCENARIO --backend rpc --rpc-url {url} "
               f"[--attach {_shown(deployment_file())}]; `make devnet-stop` stops it")


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@main.command("stop")
def stop_command() -> None:
    """Stop the anvil that `start` started (by its recorded PID)."""
    pid = recorded_pid()
    if stop():
        click.echo(f"devnet stopped (pid {pid})")
    else:
        click.echo("no devnet running" + (f" (removed the stale pid file for pid {pid})" if pid else ""))


if __name__ == "__main__":
    main()
