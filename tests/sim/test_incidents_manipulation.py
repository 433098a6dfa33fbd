"""The five manipulation incidents (issue 11, items 3, 4 and 6), each run at reduced size with
its defence off and on, same seed: the failure shows with the defence off, and with it on it
is gone or smaller by the factor the scenario's description states.

Every assertion compares the two runs (or a run with its own scenario's parameters, such as
the Vault's liquidity); none checks a figure measured once and written down. One run per
scenario and side, shared by that scenario's tests: the background traders and LPs are left
out (the attacker, its opponents in the pool, the keepers and the reporters stay) and each
run is cut after its attack.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.engine import run_scenario
from sim.scenario import Scenario, load_scenario

BACKGROUND = ("noise_trader", "lp")
"""Agent kinds left out of the reduced runs: they trade beside the attack, not in it."""

REDUCED: dict[str, dict[str, Any]] = {
    # scenario -> steps, and Config changes of its attacker (fewer rounds of the same attack)
    "mango-pump": {"steps": 25},
    "gmx-avax": {"steps": 30, "spot_pump": {"rounds": 2, "rest_blocks": 3}},
    "yfi-squeeze": {"steps": 56},
    "withdraw-to-liquidate": {"steps": 50},
    "jelly-squeeze": {"steps": 40},
}


def reduced(name: str, side: str) -> Scenario:
    """Scenario `name` with its defences `side`, at the reduced size of REDUCED."""
    plan = REDUCED[name]
    scenario = load_scenario(name, side=side, steps=plan["steps"])
    agents = [a.model_copy(update={"params": {**a.params, **plan.get(a.kind, {})}})
              for a in scenario.agents if a.kind not in BACKGROUND]
    return scenario.model_copy(update={"agents": agents})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[dict[str, Any], dict[str, Any]]]:
    """(defence off, defence on) summaries of a scenario at reduced size, each run once."""
    done: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def get(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            done[name] = tuple(run_scenario(reduced(name, side), out_dir=out / side, report=False,  # type: ignore[assignment]
                                            progress=False).summary for side in ("off", "on"))
        return done[name]

    return get


def vault_drawdown(summary: dict[str, Any]) -> float:
    """How far the Vault's NAV fell below where it started, USD."""
    return summary["vault_nav_start"] - summary["vault_nav_min"]


def test_every_incident_has_both_sides_and_an_attacker() -> None:
    for name in REDUCED:
        scenario = load_scenario(name)
        assert scenario.defended is not None, name
        assert any(a.kind in ("spot_pump", "wash_trader", "withdraw_to_liquidate", "self_liquidating_short")
                   for a in scenario.agents), name


def test_mango_pump_empties_the_vault_unless_unrealised_pnl_stays(runs: Callable) -> None:
    off, on = runs("mango-pump")
    vault = load_scenario("mango-pump").vault_liquidity
    # the attacker borrows against its paper profit about all the Vault holds, and keeps it
    assert off["total_bad_debt"] > 0.5 * vault
    assert off["attacker_profit_usd"] > 0.5 * vault
    # defended: nothing leaves against paper profit, and the pump costs the attacker
    assert on["total_bad_debt"] == 0
    assert on["attacker_profit_usd"] < 0
    assert on["books_balance"] is True and off["books_balance"] is True


def test_gmx_avax_pump_pays_only_against_a_spot_priced_uncapped_market(runs: Callable) -> None:
    off, on = runs("gmx-avax")
    assert off["attacker_profit_usd"] > 0
    assert off["lp_share_price_change_pct"] < on["lp_share_price_change_pct"]  # the LPs paid it
    assert on["attacker_profit_usd"] <= 0


def test_yfi_squeeze_wash_trading_drains_the_insurance_fund(runs: Callable) -> None:
    off, on = runs("yfi-squeeze")
    assert off["total_bad_debt"] > 0 and off["insurance_drawdown_pct"] > 0
    assert off["attacker_profit_usd"] > 0
    # initial margin rising with open interest: bad debt and the fund's drawdown at least five times smaller
    assert on["total_bad_debt"] * 5 < off["total_bad_debt"]
    assert on["insurance_drawdown_pct"] * 5 < off["insurance_drawdown_pct"]


def test_withdraw_to_liquidate_leaves_bad_debt_unless_leverage_is_capped(runs: Callable) -> None:
    off, on = runs("withdraw-to-liquidate")
    assert off["total_bad_debt"] > 0
    assert off["accounts_bankrupt"].get("manipulator", 0) >= 1
    assert off["attacker_profit_usd"] > on["attacker_profit_usd"]
    assert on["total_bad_debt"] == 0


def test_jelly_squeeze_delisting_undoes_the_vaults_drawdown(runs: Callable) -> None:
    off, on = runs("jelly-squeeze")
    assert off["liquidation_count"] + off["bankruptcy_count"] > 0  # the short went into the Vault
    assert off["attacker_profit_usd"] > 0 > on["attacker_profit_usd"]
    # delisted at the price from before the pump: a third of the drawdown at its worst, and back
    assert vault_drawdown(off) > 3 * vault_drawdown(on)
    assert on["lp_share_price_change_pct"] >= 0 > off["lp_share_price_change_pct"]


def test_reduced_runs_keep_the_attackers_whole_holdings(tmp_path: Path) -> None:
    """The attacker's PnL is everything it holds: a wash trader's many subaccounts and a pump's
    base tokens are all in it (the traders' book, sim/traders.py), so the accounts table's last
    row is the summary's figure."""
    import pandas as pd

    result = run_scenario(reduced("jelly-squeeze", "off").with_overrides(steps=12), out_dir=tmp_path / "j",
                          report=False, progress=False)
    accounts = pd.read_csv(result.run_dir / "accounts.csv")
    attacker = accounts[accounts["role"] == "manipulator"]
    assert attacker["pnl"].iloc[-1] == pytest.approx(result.summary["attacker_profit_usd"])
    assert attacker["step"].nunique() == 12  # read every step


def test_a_pump_on_a_market_without_a_pool_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from sim.scenario import ScenarioError

    path = tmp_path / "no-pool.toml"
    path.write_text('name = "no-pool"\nsteps = 5\n[[markets]]\nname = "ETH"\n'
                    'price = { kind = "gbm", mu = 0.0, sigma = 0.5 }\n[[agents]]\nkind = "oracle_reporter"\n'
                    '[[agents]]\nkind = "self_liquidating_short"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "agents[1].params.market" in str(info.value) and "SpotPool" in str(info.value)
