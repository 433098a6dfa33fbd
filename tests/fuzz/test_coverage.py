"""What the `ci` fuzz run reaches, asserted: each path below happened in at least one example.

The `ci` profile is derandomized (tests/fuzz/settings.py), so its examples are fixed by the
code. The paths are reached by construction, not by luck, in many examples each (the
session's summary prints how many): the whale storyline (test_stateful.py `whale_crash`)
takes a whale below maintenance, under water or past the insurance fund, so liquidations,
bankruptcy, partial and full ADL and the take-profits of its counterparties follow; each
market's per-block liquidation limit (strategies.MARKETS) splits a whale's liquidation over
blocks, the keepers coming back each block; the keepers' sweep executes triggered orders;
LPs hold a stake from set-up, and in an LP run the owner sizes the reserve to hold the exit
back. If a change to the code loses a path, this test says which.

The counts come from the `ci` run of the state machines in this session (test_stateful.py,
which tests/fuzz/conftest.py runs first); run alone, or under another profile, this test runs
them itself with the `ci` settings. `--hypothesis-show-statistics` shows the same paths as
events.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.fuzz.settings import fuzz_settings, profile_name
from tests.fuzz.stateful_base import PathCounts, ProtocolMachine
from tests.fuzz.test_stateful import LiquidationFuzz, ProtocolFuzz

MACHINES: tuple[type[ProtocolMachine], ...] = (ProtocolFuzz, LiquidationFuzz)

# Each path, and the names of the events (stateful_base.py `path`) that count as reaching it.
PATHS: dict[str, tuple[str, ...]] = {
    "partial liquidation": ("liquidate: partial",),
    "full liquidation": ("liquidate: full", "liquidate: full with bad debt"),
    "bankruptcy": ("liquidate: bankruptcy", "liquidate: bankruptcy with bad debt"),
    "ADL, partial": ("deleverage: partial",),
    "ADL, full close": ("deleverage: closed",),
    "trigger execution": ("trigger executed",),
    "feed breach": ("oracle: feed breached",),
    "breach accepted": ("oracle: breach accepted",),
    "reserve-limited LP withdrawal": ("lp_withdraw reverted: vault: below reserve",),
    "liquidation held back by the per-block limit": ("liquidate reverted: liquidator: limit reached",),
}


def run_ci_machines() -> None:
    """Make sure PathCounts holds a `ci` run of every machine: this session's, or one now."""
    for machine in MACHINES:
        name = machine.__name__
        if profile_name() != "ci" or not PathCounts.examples.get(name):
            PathCounts.reset(name)
            run_state_machine_as_test(machine, settings=fuzz_settings(profile="ci"))


@pytest.fixture(scope="module")
def ci_run() -> None:
    run_ci_machines()


@pytest.mark.parametrize("path", PATHS)
def test_ci_run_reaches(ci_run: None, path: str) -> None:
    reached = {m.__name__: PathCounts.reaching(m.__name__, PATHS[path]) for m in MACHINES}
    assert sum(reached.values()) > 0, f"no example of the ci fuzz run reached {path} {PATHS[path]}: {reached}"
