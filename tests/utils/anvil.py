"""Start and stop a local anvil devnet for tests: the rpc backend's node.

anvil comes from npm (`@foundry-rs/anvil`, pinned in package.json; `npm ci` installs it under
node_modules/). It is started with the settings that make it agree with the in-process
backends: Cancun, chain id 31337, gas price and base fee 0, a 30M gas limit, genesis at
timestamp 1_700_000_000, and a fixed mnemonic. The code size limit is anvil's default
(EIP-170); it is never raised.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
MNEMONIC = "test test test test test test test test test test test junk"
# fmt: off
ANVIL_ARGS = [
    "--chain-id", "31337",
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


def anvil_binary() -> Path | None:
    """The anvil executable from node_modules (any platform package), else from PATH."""
    for candidate in sorted(REPO_ROOT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil")):
        if candidate.is_file():
            return candidate
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_chain_id(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return json.loads(response.read()).get("result") == hex(31337)
    except OSError:
        return False


class Anvil:
    """One anvil process on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, binary: Path | None = None, startup_timeout: float = 20.0) -> None:
        found = binary or anvil_binary()
        if found is None:
            raise FileNotFoundError("anvil not installed: run npm ci")
        self.binary = found
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        """Start anvil on a free port and wait until it answers eth_chainId; return its URL."""
        last_error = ""
        for _ in range(3):  # a port picked free can be taken before anvil binds it
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            # stderr goes to a file, not a pipe: an unread pipe that fills up would block anvil
            self._stderr = tempfile.TemporaryFile()
            self.process = subprocess.Popen(
                [str(self.binary), "--host", "127.0.0.1", "--port", str(port), *ANVIL_ARGS],
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers_chain_id(self.url):
                    return self.url
                time.sleep(0.05)
            last_error = self._stop_and_read_stderr()
        raise RuntimeError(f"anvil ({self.binary}) did not start: {last_error or 'no answer to eth_chainId'}")

    def stop(self) -> None:
        """Stop this anvil process (by its PID) and wait for it to exit."""
        self._stop_and_read_stderr()

    def _stop_and_read_stderr(self) -> str:
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        stderr = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            stderr = self._stderr.read().decode(errors="replace")
            self._stderr.close()
            self._stderr = None
        return stderr.strip()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
