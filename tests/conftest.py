"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.anvil import Anvil, anvil_binary


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """URL of an anvil devnet started for this test session (stopped at its end).

    Skips the test when the anvil binary is missing."""
    if anvil_binary() is None:
        pytest.skip("anvil not installed: run npm ci")
    with Anvil() as url:
        yield url
