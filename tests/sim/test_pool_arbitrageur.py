"""The SpotPool's arbitrageur: it pulls the pool to the true price, and its capital decides
how much of a gap it can close (DESIGN §4 SpotPool, §6)."""

from __future__ import annotations

from typing import Any

from sim.chain import make_chain
from sim.engine import Simulation
from sim.scenario import validate_scenario


def run(arbitrageur: dict[str, Any] | None, shocks: list[dict[str, Any]] | None = None,
        steps: int = 30) -> Simulation:
    agents: list[dict[str, Any]] = [{"kind": "oracle_reporter", "count": 2}, {"kind": "feed_keeper", "count": 1}]
    if arbitrageur is not None:
        agents.append({"kind": "pool_arbitrageur", "count": 1, "params": arbitrageur})
    scenario = validate_scenario({
        "name": "pool-arb", "seed": 11, "steps": steps, "vault_liquidity": 1_000_000.0,
        "markets": [{"name": "ETH", "spot_pool_liquidity": 500_000.0, "price_source": "pool",
                     "price": {"kind": "gbm", "mu": 0.0, "sigma": 0.8}}],
        "oracle": {"max_age": 36, "min_reporters": 2},
        "agents": agents, "shocks": shocks or [],
    })
    sim = Simulation(scenario, make_chain("revm"))
    sim.setup()
    for step in range(steps):
        sim.step(step)
    return sim


def gap(sim: Simulation) -> float:
    """|pool price / true price - 1| at the end of the run."""
    return abs(sim.protocol.spot_price("ETH") / sim.prices["ETH"] - 1)


def test_the_arbitrageur_keeps_the_pool_and_so_the_feed_near_the_true_price():
    """The true price falls 10% at step 3, then wanders: the arbitrageur sells base into the
    pool until it is within its threshold; without it the pool stays where it was seeded."""
    fall = [{"kind": "price_jump", "at_step": 3, "fraction": -0.1}]
    with_arb = run({"capital": 1_000_000.0, "threshold": 0.005}, fall)
    without = run(None, fall)
    assert without.protocol.spot_price("ETH") == 2_000.0  # nobody trades it
    assert gap(with_arb) <= 0.005 + 1e-9 < gap(without)
    assert with_arb.protocol.index_price("ETH") == (with_arb.protocol.spot_price("ETH"), True)
    assert with_arb.stats.reverts_by_kind == {}
    assert with_arb.stats.actions_by_kind["pool_arbitrageur"]["swap_on_pool"] > 0


def test_its_capital_bounds_the_gap_it_can_close():
    """The true price jumps 30% at step 5: a well-funded arbitrageur closes the gap in one
    block; one with 200 USD runs out of collateral and the pool stays far behind."""
    jump = [{"kind": "price_jump", "at_step": 5, "fraction": 0.3}]
    rich = run({"capital": 2_000_000.0}, jump, steps=8)
    poor = run({"capital": 200.0}, jump, steps=8)
    assert gap(rich) <= 0.005 + 1e-9
    assert gap(poor) > 0.2
    assert poor.protocol.token_balance(poor.agents[-1].account) < 1.0  # spent every dollar
