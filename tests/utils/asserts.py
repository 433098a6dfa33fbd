"""Assertion helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sim.chain import Reverted


@contextmanager
def reverts(reason: str) -> Iterator[None]:
    """The block must revert with exactly `reason`."""
    with pytest.raises(Reverted) as info:
        yield
    assert info.value.reason == reason, f"reverted with {info.value.reason!r}, expected {reason!r}"
