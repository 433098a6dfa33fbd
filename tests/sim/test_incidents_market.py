"""Issue 11, item 6: the market-incident scenarios (two-source-oracle, keeper-outage,
luna-collapse, correlation-spike, funding-spiral) at reduced size, each run once per side of
its defences (`--defences off|on`, same seed). Every assertion compares the two runs: the
defence off shows the failure, on it is gone or smaller by the factor the scenario states.
None checks an absolute figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.engine import run_scenario
from sim.scenario import Scenario, ScenarioError, load_scenario

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
    """(off, on): the summaries of the two runs, with what each agent kind sent (`actions`)."""
    out = tmp_path_factory.mktemp(name)
    runs = [run_scenario(reduced(name, side, **reduce), out_dir=out / side, report=False, progress=False)
            for side in ("off", "on")]
    return tuple({**run.summary, "actions": run.stats.actions_by_kind} for run in runs)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def two_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Summary, Summary]:
    return both_sides(tmp_path_factory, "two-source-oracle", steps=90)


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
    # the Vault is insolvent, and the profit it could not pay is still owed (the Exchange's
    # vault_debt): the books balance with it (regression: the check once ignored that debt)
    assert off["vault_nav_end"] < 0 < on["vault_nav_end"] and off["books_balance"] is True
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


def test_luna_collapse_leaves_a_tenth_of_the_bad_debt_when_the_market_is_delisted(luna) -> None:
    off, on = luna
    # off: positions fall through zero in the collapse and in the bounces at a fraction of a cent
    assert off["total_bad_debt"] > 0 and off["insurance_drawdown_pct"] > on["insurance_drawdown_pct"]
    assert on["total_bad_debt"] * 10 < off["total_bad_debt"]  # the scenario's factor: a tenth or less
    # on: delisted once, then every position settled at the settlement price
    assert on["actions"]["delister"]["delist"] == 1 and on["actions"]["delister"]["settle"] > 0
    assert "delister" not in off["actions"]


def test_correlation_spike_loses_half_as_much_with_isolated_capped_books(correlation) -> None:
    off, on = correlation
    assert off["bad_debt_to_deficit"] > 0  # cross-margined, uncapped: beyond the insurance fund
    assert on["total_bad_debt"] * 2 < off["total_bad_debt"]  # the scenario's factor: half or less
    assert on["bad_debt_to_deficit"] == 0
    assert on["actions"]["portfolio_trader"]["trade"] > 0  # the isolated books trade, as far as the caps let them


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


# -- the fields these scenarios brought: bad values are refused before anything runs -----------

SMALL = """
name = "small"
steps = 10

[[markets]]
name = "ETH"
price = { kind = "gbm", mu = 0.0, sigma = 0.5 }

[[agents]]
kind = "oracle_reporter"
count = 2
"""


def problems_in(tmp_path: Path, text: str, side: str | None = None) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(SMALL + text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, side=side)
    return str(info.value)


def test_bad_values_of_the_new_fields_name_the_field_and_what_was_expected(tmp_path: Path) -> None:
    outage = '\n[[shocks]]\nkind = "keeper_outage"\nat_step = 1\nduration = 2\n'
    assert "shocks[0].unless_reward = -5.0: expected greater than or equal to 0" in problems_in(
        tmp_path, outage + "unless_reward = -5.0\n")
    assert "unless_reward applies to liquidation keepers" in problems_in(
        tmp_path, outage + 'kinds = ["adl_keeper"]\nunless_reward = 100.0\n')
    side_agent = '\n[[agents]]\nkind = "noise_trader"\ndefences = "{}"\n'
    assert "agents[1].defences = \"on\": expected a scenario with a [defended] table" in problems_in(
        tmp_path, side_agent.format("on"))
    assert "agents[1].defences = \"maybe\": expected 'off' or 'on'" in problems_in(tmp_path, side_agent.format("maybe"))
    book = '\n[[agents]]\nkind = "portfolio_trader"\nparams = {{ weights = {{ {} }} }}\n'
    assert "agents[1].params.weights = ['DOGE']: expected markets of the scenario ['ETH']" in problems_in(
        tmp_path, book.format("ETH = 1.0, DOGE = 1.0"))
    assert "agents[1].params.weights" in problems_in(tmp_path, book.format("ETH = 0.0"))
    assert "defences.max_funding_rate = -1.0: expected greater than or equal to 0" in problems_in(
        tmp_path, "\n[defences]\nmax_funding_rate = -1.0\n")


def test_the_validate_command_checks_the_defended_sides_own_agents(tmp_path: Path) -> None:
    path = tmp_path / "sides.toml"
    path.write_text(SMALL + '\n[defended]\n\n[[agents]]\nkind = "noise_trader"\ndefences = "on"\n'
                    'params = { leverage = 2.0 }\n')
    load_scenario(path)  # the off side has no such table
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and "agents[1].params.leverage" in result.output


# -- docs/scenarios.md's table (sim/report/scenario_table.py) ---------------------------------


def test_the_table_has_a_row_for_every_scenario_with_a_defended_side() -> None:
    from sim.report.scenario_table import ROWS
    from sim.scenario import shipped_scenarios

    with_sides = {name for name in shipped_scenarios() if load_scenario(name).defended is not None}
    assert with_sides <= {row.name for row in ROWS}


def test_a_row_reads_both_runs_and_says_why_it_misses_the_real_figure_tenfold(tmp_path: Path) -> None:
    import json

    from sim.report.scenario_table import ROWS, render

    row = next(r for r in ROWS if r.name == "keeper-outage")  # real: 5.67M DAI beyond what was covered
    for side, beyond in (("off", 12_345.0), ("on", 0.0)):
        (tmp_path / f"keeper-outage-{side}").mkdir()
        summary = {"bad_debt_to_deficit": beyond, "total_bad_debt": 2 * beyond, "liquidation_count": 3}
        (tmp_path / f"keeper-outage-{side}" / "summary.json").write_text(json.dumps(summary))
    page = render(tmp_path, [row], shipped={"keeper-outage"})
    (line,) = [line for line in page.splitlines() if line.startswith("| `keeper-outage`")]
    _, _, real, off, on, command, _ = line.split("|")
    assert "5.67M DAI" in real and "beyond the fund $12.3k" in off and "beyond the fund $0" in on
    assert "more than 10x off the real figure: " + row.why in off and "10x" not in on
    assert "perpsim run keeper-outage --defences off" in command
    pending = render(tmp_path, [row], shipped=set())
    assert "pending (not shipped yet)" in pending
