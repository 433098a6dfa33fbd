"""The traders' risk-framework table (sim/traders.py) and the risk-layers scenario: one short
run of it, its `traders.csv` and `accounts.csv` checked against the scenario and the summary,
and its report's statement of survival per layer combination."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sim.engine import RunResult, run_scenario
from sim.report import write_report
from sim.report.risk import findings, layer_groups
from sim.scenario import load_scenario
from sim.traders import LAYERS, TRADER_COLUMNS, layer_set_name

STEPS = 55  # the gap is at step 40 and the slide ends at 44; the liquidations follow within a few blocks


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    scenario = load_scenario("risk-layers").with_overrides(steps=STEPS)
    return run_scenario(scenario, out_dir=tmp_path_factory.mktemp("risk") / "run", progress=False)


@pytest.fixture(scope="module")
def traders(result: RunResult) -> pd.DataFrame:
    return pd.read_csv(result.run_dir / "traders.csv", keep_default_na=False, na_values=[""])


def test_traders_table_has_every_trader_with_its_layers(result: RunResult, traders: pd.DataFrame) -> None:
    assert list(traders.columns) == list(TRADER_COLUMNS)
    scenario = load_scenario("risk-layers")
    expected = []
    for spec in scenario.agents:
        if spec.kind in ("noise_trader", "herd_follower", "loss_chaser", "overconfident_trader", "panic_seller"):
            layers = tuple(layer for layer in LAYERS if spec.params.get(layer, False))
            expected += [(spec.kind, layer_set_name(layers))] * spec.count
    assert list(zip(traders["kind"], traders["layers"], strict=True)) == expected
    noise = traders[traders["kind"] == "noise_trader"]
    assert noise.groupby("layers").size().tolist() == [5] * 16  # sixteen combinations, five traders each
    assert set(traders.loc[traders["kind"] != "noise_trader", "behaviour"]) == {
        "herding", "loss chasing", "overconfidence", "panic selling"}


def test_traders_table_agrees_with_the_summary(result: RunResult, traders: pd.DataFrame) -> None:
    summary = result.summary
    assert len(traders) == summary["traders"]
    assert int(traders["liquidated"].sum()) == summary["traders_liquidated"]
    assert int(traders["bankrupt"].sum()) == summary["traders_bankrupt"]
    assert traders["survived"].mean() == pytest.approx(summary["trader_survival_rate"])
    assert int(traders["stops_fired"].sum()) == summary["trigger_orders_executed"]  # every trigger here is a stop


def test_layers_show_in_what_the_traders_did(traders: pd.DataFrame) -> None:
    noise = traders[traders["kind"] == "noise_trader"]
    hedged, unhedged = noise[noise["hedge"]], noise[~noise["hedge"]]
    assert hedged["hedge_ratio"].between(0.3, 0.7).all()  # the hedge layer holds about hedge_ratio = 0.5
    assert (unhedged["hedge_ratio"].fillna(0) == 0).all()
    stops = noise[noise["stop_loss"]]
    assert (stops["stops_placed"] > 0).all() and (noise.loc[~noise["stop_loss"], "stops_placed"] == 0).all()
    fired = stops[stops["stops_fired"] > 0]
    assert len(fired) > 0 and (fired["stop_slip_max_pct"] > 1.0).any()  # the 14% gap jumps the triggers
    assert noise.loc[noise["size_cap"], "peak_risk"].median() < noise.loc[~noise["size_cap"], "peak_risk"].median()
    gone = noise[~noise["survived"]]
    assert (gone["max_drawdown_pct"] > 50).all()


def test_all_four_layers_outlive_none(traders: pd.DataFrame) -> None:
    groups = {g.name: g for g in layer_groups(traders)}
    assert groups["size cap + margin buffer + hedge + stop-loss"].survival_rate > groups["no layers"].survival_rate
    assert groups["no layers"].survival_rate < 0.5


def test_accounts_table_follows_equity_every_step(result: RunResult, traders: pd.DataFrame) -> None:
    accounts = pd.read_csv(result.run_dir / "accounts.csv")
    assert len(accounts) == STEPS * len(traders)  # the scenario has no manipulator
    last = accounts[accounts["step"] == STEPS - 1].set_index("label")
    assert last.loc[traders["label"], "pnl"].to_numpy() == pytest.approx(traders["pnl"].to_numpy(), abs=1e-6)
    first = accounts[accounts["step"] == 0].set_index("label")
    assert (first.loc[traders["label"], "equity"] > 0).all()


def test_report_states_survival_per_layer_combination(result: RunResult, traders: pd.DataFrame) -> None:
    page = write_report(result.run_dir).read_text()
    section = page[page.index("id='risk'"):]
    groups = layer_groups(traders)
    for line in findings(groups):
        assert line in section
    assert "Traders with all four layers survived" in section and "without the margin buffer" in section
    assert "With one layer only: size cap" in section and "Behavioural traders: herding" in section
    for group in groups:
        assert f"<td>{group.name}</td>" in section
    assert (result.run_dir / "risk_layers.png").exists()
    meta = json.loads((result.run_dir / "summary.json").read_text())["meta"]
    assert meta["scenario"] == "risk-layers"
