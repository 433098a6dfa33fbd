"""Issue 11, item 6: the market-incident scenarios (two-source-oracle, keeper-outage,
luna-collapse, correlation-spike, funding-spiral) at reduced size, each run once per side of
its defences (`--defences off|on`, same seed). Every assertion compares the two runs: the
defence off shows the failure, on it is gone or smaller by the factor the scenario states.
None checks an absolute figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.engine import run_scenario
from sim.scenario import Scenario, load_scenario

Summary = dict[str, Any]
CROWD_KINDS = ("noise_trader", "portfolio_trader")  # the background crowd, thinned at reduced size


def reduced(name: str, side: str, *, steps: int, crowd: float = 1.0, step_seconds: int | None = None) -> Scenario:
    """One side of a shipped scenario, shorter and with `crowd` of its traders (at least one
    per table); with `step_seconds`, coarser steps over the same stretch of time."""
    scenario = load_scenario(name, side=side)
    agents = [a.model_copy(update={"count": max(1, round(a.count * crowd))}) if a.kind in CROWD_KINDS else a
              for a in scenario.agents]
    update: dict[str, Any] = {"agents": agents}
    if step_seconds is not None:
        update["step_seconds"] = step_seconds
    return scenario.model_copy(update=update).with_overrides(steps=steps)


def both_sides(tmp_path_factory: pytest.TempPathFactory, name: str, **reduce: Any) -> tuple[Summary, Summary]:
    """(off, on): the summaries of the two runs."""
    out = tmp_path_factory.mktemp(name)
    runs = [run_scenario(reduced(name, side, **reduce), out_dir=out / side, report=False, progress=False)
            for side in ("off", "on")]
    return runs[0].summary, runs[1].summary


@pytest.fixture(scope="module")
def two_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Summary, Summary]:
    return both_sides(tmp_path_factory, "two-source-oracle", steps=90, crowd=0.5)


@pytest.fixture(scope="module")
def keeper_outage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Summary, Summary]:
    return both_sides(tmp_path_factory, "keeper-outage", steps=143)


@pytest.fixture(scope="module")
def luna(tmp_path_factory: pytest.TempPathFactory) -> tuple[Summary, Summary]:
    return both_sides(tmp_path_factory, "luna-collapse", steps=430, crowd=0.5)


@pytest.fixture(scope="module")
def correlation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Summary, Summary]:
    return both_sides(tmp_path_factory, "correlation-spike", steps=60)


@pytest.fixture(scope="module")
def funding(tmp_path_factory: pytest.TempPathFactory) -> tuple[Summary, Summary]:
    return both_sides(tmp_path_factory, "funding-spiral", steps=144, step_seconds=600, crowd=0.5)


def test_two_source_oracle_is_catastrophic_with_two_sources_and_blocked_with_five(two_source) -> None:
    off, on = two_source
    # off: the 1000x print becomes the median: shorts bankrupt beyond the insurance fund, the LPs pay
    assert off["total_bad_debt"] > off["insurance_start"] and off["bad_debt_to_deficit"] > 0
    assert off["lp_share_price_change_pct"] < 0
    # on: a median of five sources (three at least) and a deviation guard; nothing is lost
    assert on["total_bad_debt"] == 0 and on["deficit_at_end"] == 0
    assert on["lp_share_price_change_pct"] > off["lp_share_price_change_pct"]
    assert on["max_index_lag_pct"]["KRW"] < 1 < off["max_index_lag_pct"]["KRW"]


def test_keeper_outage_leaves_a_deficit_unless_the_reward_covers_the_gas(keeper_outage) -> None:
    off, on = keeper_outage
    assert off["bad_debt_to_deficit"] > 0  # bad debt beyond the insurance fund
    assert on["bad_debt_to_deficit"] == 0
    assert on["total_bad_debt"] * 3 < off["total_bad_debt"]  # the scenario's factor: a third or less
    assert on["liquidation_count"] > off["liquidation_count"]  # the keepers kept working through the hour


def test_luna_collapse_leaves_a_tenth_of_the_bad_debt_when_the_market_is_stopped(luna) -> None:
    off, on = luna
    # off: positions fall through zero in the collapse and in the bounces at a fraction of a cent
    assert off["total_bad_debt"] > 0 and off["insurance_drawdown_pct"] > on["insurance_drawdown_pct"]
    assert on["total_bad_debt"] * 10 < off["total_bad_debt"]  # the scenario's factor: a tenth or less
    assert on["oracle_invalid_steps"]["LUNA"] > off["oracle_invalid_steps"]["LUNA"] == 0  # the market stopped


def test_correlation_spike_loses_less_with_isolated_books(correlation) -> None:
    off, on = correlation
    assert off["total_bad_debt"] > 0
    assert on["total_bad_debt"] < off["total_bad_debt"]
    assert on["bad_debt_to_deficit"] < off["bad_debt_to_deficit"]


def test_funding_spiral_liquidates_by_funding_alone_unless_capped_and_arbitraged(funding) -> None:
    off, on = funding
    assert off["liquidation_count"] > 0 and off["trader_survival_rate"] < 1
    assert on["liquidation_count"] == 0 and on["trader_survival_rate"] == 1


def test_agents_of_one_side_run_only_on_that_side() -> None:
    """funding-spiral's arbitrageurs are part of its defence: only `--defences on` has them;
    a plain load is the off side."""
    kinds = {side: [a.kind for a in load_scenario("funding-spiral", side=side).agents] for side in ("off", "on")}
    assert "arbitrageur" in kinds["on"] and "arbitrageur" not in kinds["off"]
    assert [a.kind for a in load_scenario("funding-spiral").agents] == kinds["off"]
