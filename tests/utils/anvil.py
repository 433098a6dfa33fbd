"""Start and stop a local anvil devnet for tests: the rpc backend's node.

anvil comes from npm (`@foundry-rs/anvil`, pinned in package.json; `npm ci` installs it under
node_modules/). It is started with the settings that make it agree with the in-process
backends: Cancun, chain id 31337, gas price and base fee 0, a 30M gas limit, genesis at
timestamp 1_700_000_000, and a fixed mnemonic. The code size limit is anvil's default
(EIP-170); it is never raised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO

import pytest

# One definition of the devnet's anvil, shared with `make devnet` (sim/devnet.py).
from sim.devnet import (
    ANVIL_ARGS,
    MNEMONIC,
    DevnetError,
    anvil_binary,
    anvil_command,
    free_port,
    install_anvil,
    wait_until_answers,
)

__all__ = ["ANVIL_ARGS", "MNEMONIC", "Anvil", "anvil_binary", "free_port", "require_anvil"]


class Anvil:
    """One anvil process on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(self, binary: Path | None = None, startup_timeout: float = 20.0, block_time: int | None = None) -> None:
        found = binary or anvil_binary()
        if found is None:
            raise FileNotFoundError("anvil not installed: run npm ci")
        self.binary = found
        self.startup_timeout = startup_timeout
        self.block_time = block_time  # None: automine
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
                anvil_command(self.binary, port, self.block_time),
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
            if wait_until_answers(self.url, self.process, self.startup_timeout):
                return self.url
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


def require_anvil() -> Path:
    """The anvil binary, installed with `npm ci` when missing; skips the test when it cannot be
    (no npm), except on CI (env CI set), where the devnet tests must run and it fails instead."""
    found = anvil_binary()
    if found is not None:
        return found
    if shutil.which("npm") is None:
        reason = "anvil is not installed and npm is absent to install it (`npm ci`): devnet tests skipped"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, but they must run on CI")
        pytest.skip(reason)
    try:
        return install_anvil()
    except DevnetError as exc:
        pytest.fail(str(exc))
