"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.anvil import Anvil, require_anvil


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """URL of an anvil devnet started for this test session (stopped at its end).

    Installs anvil with `npm ci` when it is missing; skips the test when npm is absent too."""
    with Anvil(require_anvil()) as url:
        yield url
