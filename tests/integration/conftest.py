"""Fixtures for the devnet tests: a fresh anvil per test module, and `ape run deploy` on it.

These tests need anvil (from npm): `require_anvil` installs it with `npm ci` when it is
missing and skips them, saying why, when npm is absent (fails instead on CI).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.devnet import REPO_ROOT, ape_environment
from tests.utils.anvil import Anvil, require_anvil

APE_TIMEOUT_SECONDS = 180


@pytest.fixture(scope="module")
def devnet_url() -> Iterator[str]:
    """A fresh anvil for this module (the session's `anvil_url` is shared with the chain tests)."""
    with Anvil(require_anvil()) as url:
        yield url


@pytest.fixture(scope="module")
def ape_deploy() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `ape run deploy --network ethereum:local:foundry ARGS` against the anvil at `url`."""

    def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        ape = Path(sys.executable).parent / "ape"
        command = [str(ape), "run", "deploy", "--network", "ethereum:local:foundry", *args]
        return subprocess.run(command, cwd=REPO_ROOT, env=ape_environment(url), capture_output=True, text=True,
                              timeout=APE_TIMEOUT_SECONDS)

    return run
