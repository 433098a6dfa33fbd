"""The engine: reproducibility (same seed, same files; revm and pyevm, same events), the
keepers' race, shocks reaching agents, and a run interrupted midway left readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.chain import ChainError, make_chain
from sim.engine import TRANSACTIONS_FILE, Simulation, run_scenario
from sim.scenario import Scenario, load_scenario, validate_scenario


def small(steps: int = 25, shocks: list[dict[str, Any]] | None = None, **top: Any) -> Scenario:
    """A scenario small enough for py-evm: one market, a crash at step 10, every kind of keeper."""
    data: dict[str, Any] = {
        "name": "small", "seed": 3, "steps": steps, "insurance_fund": 2_000.0, "vault_liquidity": 1_000_000.0,
        "markets": [{"name": "ETH", "skew_scale": 50_000.0, "price": {"kind": "gbm", "mu": 0.0, "sigma": 0.8}}],
        "oracle": {"max_age": 60, "min_reporters": 2},
        "agents": [
            {"kind": "oracle_reporter", "count": 3},
            {"kind": "noise_trader", "count": 3,
             "params": {"trade_probability": 0.5, "long_bias": 0.8, "order_leverage": 2.0, "max_leverage": 4.0,
                        "stop_loss": True, "stop_distance": 0.03}},
            {"kind": "leveraged_whale", "count": 1, "params": {"collateral": 20_000.0, "leverage": 6.0}},
            {"kind": "noise_trader", "count": 1, "params": {"collateral": 50_000.0, "long_bias": 0.0,
                                                            "trade_probability": 0.3}},
            {"kind": "lp", "count": 1, "params": {"deposit": 50_000.0, "check_every": 5}},
            {"kind": "liquidation_keeper", "count": 2, "params": {"reaction_delay": 1}},
            {"kind": "trigger_keeper", "count": 1},
            {"kind": "adl_keeper", "count": 1},
        ],
        "shocks": shocks if shocks is not None else [{"kind": "price_jump", "at_step": 10, "fraction": -0.2}],
    }
    data.update(top)
    return validate_scenario(data)


def files(run_dir: Path) -> dict[str, str]:
    return {name: (run_dir / name).read_text() for name in ("summary.json", "events.csv", "steps.csv",
                                                            TRANSACTIONS_FILE, "scenario.toml")}


def test_same_scenario_and_seed_give_identical_files(tmp_path: Path) -> None:
    scenario = load_scenario("flash-crash").with_overrides(steps=165)
    a = run_scenario(scenario, out_dir=tmp_path / "a", report=False, progress=False)
    b = run_scenario(scenario, out_dir=tmp_path / "b", report=False, progress=False)
    assert a.summary["liquidation_count"] > 0  # the run did something worth comparing
    assert files(a.run_dir) == files(b.run_dir)
    other = run_scenario(scenario.with_overrides(seed=8), out_dir=tmp_path / "c", report=False, progress=False)
    assert files(other.run_dir)["events.csv"] != files(a.run_dir)["events.csv"]


def test_pace_changes_nothing_on_chain(tmp_path: Path) -> None:
    scenario = small(steps=12)
    plain = run_scenario(scenario, out_dir=tmp_path / "plain", report=False, progress=False)
    paced = run_scenario(scenario, out_dir=tmp_path / "paced", report=False, progress=False, pace=0.05)
    assert plain.stats.agent_transactions > 0
    assert files(plain.run_dir) == files(paced.run_dir)


def test_revm_and_pyevm_give_identical_event_tables(tmp_path: Path) -> None:
    scenario = small(steps=20)
    revm = run_scenario(scenario, backend="revm", out_dir=tmp_path / "revm", report=False, progress=False)
    pyevm = run_scenario(scenario, backend="pyevm", out_dir=tmp_path / "pyevm", report=False, progress=False)
    assert revm.summary["liquidation_count"] + revm.summary["bankruptcy_count"] > 0
    events = (revm.run_dir / "events.csv").read_text()
    assert events == (pyevm.run_dir / "events.csv").read_text()
    assert (revm.run_dir / "steps.csv").read_text() == (pyevm.run_dir / "steps.csv").read_text()
    assert events.count("\n") > 300


def test_the_run_directory_holds_the_scenario_as_run(tmp_path: Path) -> None:
    scenario = small(steps=12).with_overrides(seed=77)
    result = run_scenario(scenario, out_dir=tmp_path / "run", report=False, progress=False)
    written = validate_scenario(__import__("tomllib").loads((result.run_dir / "scenario.toml").read_text()))
    assert written.seed == 77 and written.steps == 12
    table = json.loads((result.run_dir / TRANSACTIONS_FILE).read_text())
    assert table["agent_transactions"] == result.stats.agent_transactions > 0
    assert json.loads((result.run_dir / "status.json").read_text())["status"] == "complete"


def test_a_run_streams_its_events_and_the_chain_forgets_them(tmp_path: Path) -> None:
    chain = make_chain("revm")
    result = run_scenario(small(steps=12), out_dir=tmp_path / "run", report=False, progress=False, chain=chain)
    written = (result.run_dir / "events.csv").read_text().count("\n") - 1  # the header
    head = chain.events_since(written)[1]
    assert head == written > 100  # every event reached events.csv
    with pytest.raises(ChainError, match="no longer kept"):
        chain.events_since(0)  # and the chain kept none of the read ones


def test_competing_keepers_race_and_losers_are_counted() -> None:
    scenario = small(steps=16, shocks=[{"kind": "price_jump", "at_step": 5, "fraction": -0.3}])
    sim = Simulation(scenario, make_chain("revm"))
    sim.setup()
    for step in range(scenario.steps):
        sim.step(step)
    wins = sum(k.wins for k in sim.keepers if k.kind == "liquidation_keeper")
    losses = sum(k.losses for k in sim.keepers if k.kind == "liquidation_keeper")
    reverts = sim.stats.reverts_by_kind.get("liquidation_keeper", {})
    assert wins > 0 and losses > 0
    assert sum(reverts.values()) == losses
    assert all(reason.startswith("liquidate: liquidator: ") for reason in reverts)


class CheckedSimulation(Simulation):
    """Checks, at every keeper phase, that the facade's index finds exactly the liquidatable
    accounts a full scan (`is_liquidatable` of every account holding a position) does."""

    checked = 0

    def _keepers_race(self, ctx: Any) -> None:
        found = ctx.liquidatable()
        assert found == self.protocol.scan_liquidatable()
        self.checked += bool(found)
        super()._keepers_race(ctx)


@pytest.mark.parametrize(("name", "steps"), [("flash-crash", 175), ("black-thursday", 150)])
def test_the_index_matches_a_full_scan_through_a_crash(name: str, steps: int) -> None:
    """flash-crash gaps in one block; black-thursday falls for hours in 5-minute blocks, with
    a keeper outage, so funding moves liquidation prices between events."""
    scenario = load_scenario(name).with_overrides(steps=steps)
    sim = CheckedSimulation(scenario, make_chain("revm"))
    sim.setup()
    for step in range(scenario.steps):
        sim.step(step)
    assert sim.checked > 0


def _world_at(scenario: Scenario, step: int) -> Simulation:
    sim = Simulation(scenario, make_chain("revm"))
    sim.setup()
    for s in range(step + 1):
        sim.step(s)
    return sim


def test_oracle_freeze_makes_the_feed_invalid() -> None:
    sim = _world_at(small(steps=20, shocks=[{"kind": "oracle_freeze", "at_step": 2, "duration": 10}]), 9)
    assert sim.stats.sent_by_kind["oracle_reporter"] == 3 * 2  # only steps 0 and 1 reported
    assert sim.protocol.index_price("ETH")[1] is False  # older than max_age (60 s)


def test_reporter_compromise_moves_the_index() -> None:
    sim = _world_at(small(steps=20, shocks=[{"kind": "reporter_compromise", "at_step": 3, "duration": 5,
                                              "reporters": 2, "factor": 1.1}]), 4)
    index, valid = sim.protocol.index_price("ETH")
    assert valid and index == pytest.approx(1.1 * sim.ctx.price_at("ETH", 4), rel=1e-9)


def test_oracle_lag_shock_delays_the_index() -> None:
    sim = _world_at(small(steps=20, shocks=[{"kind": "oracle_lag", "at_step": 0, "duration": 20, "lag_blocks": 3}]), 8)
    assert sim.protocol.index_price("ETH")[0] == pytest.approx(sim.ctx.price_at("ETH", 5), rel=1e-12)


def test_keeper_outage_silences_keepers() -> None:
    sim = _world_at(small(steps=20, shocks=[{"kind": "price_jump", "at_step": 2, "fraction": -0.3},
                                            {"kind": "keeper_outage", "at_step": 0, "duration": 20}]), 10)
    assert not any(k in sim.stats.sent_by_kind for k in ("liquidation_keeper", "trigger_keeper", "adl_keeper"))
    assert sim.protocol.liquidatable_accounts()  # the work piled up


def test_lp_run_withdraws_shares() -> None:
    sim = _world_at(small(steps=20, shocks=[{"kind": "lp_run", "at_step": 3, "fraction": 0.5}]), 4)
    assert sim.stats.actions_by_kind["lp"]["lp_withdraw"] == 1
    lp = next(a for a in sim.agents if a.kind == "lp")
    assert sim.protocol.vault.call("shares", lp.account) / 1e18 == pytest.approx(25_000.0, rel=0.01)


def test_an_interrupted_run_is_left_readable_and_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Simulation.step

    def step(self: Simulation, s: int) -> dict[str, float]:
        if s == 6:
            raise KeyboardInterrupt
        return original(self, s)

    monkeypatch.setattr(Simulation, "step", step)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(small(steps=20), out_dir=tmp_path / "run", report=False, progress=False)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert status["status"] == "partial" and summary["status"] == "partial"
    assert summary["last_step"] == 5
    assert (tmp_path / "run" / "steps.csv").read_text().count("\n") == 1 + 6  # header and steps 0-5
    assert json.loads((tmp_path / "run" / TRANSACTIONS_FILE).read_text())["steps_run"] == 6
