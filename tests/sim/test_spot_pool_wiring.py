"""The SpotPool through the facade and the scenario: a market's pool deployed and seeded at
its first price, its oracle feed priced by the pool (kept fresh by a feed_keeper) or falling
back to it while the reporters are frozen; and the scenario's clear errors for bad pool fields."""

from __future__ import annotations

from typing import Any

import pytest

from sim.chain import make_chain
from sim.engine import Simulation
from sim.protocol import MarketConfig, Protocol, ProtocolConfig
from sim.scenario import ScenarioError, validate_scenario


def scenario(market: dict[str, Any], agents: list[dict[str, Any]] | None = None, **top: Any):
    data: dict[str, Any] = {
        "name": "pool", "seed": 5, "steps": 20, "vault_liquidity": 1_000_000.0,
        "markets": [{"name": "ETH", "price": {"kind": "gbm", "mu": 0.0, "sigma": 0.8}, **market}],
        "oracle": {"max_age": 36, "min_reporters": 2},
        "agents": agents if agents is not None else [{"kind": "oracle_reporter", "count": 2},
                                                     {"kind": "feed_keeper", "count": 1}],
    }
    data.update(top)
    return validate_scenario(data)


def run(s) -> Simulation:
    sim = Simulation(s, make_chain("revm"))
    sim.setup()
    for step in range(s.steps):
        sim.step(step)
    return sim


def test_facade_deploys_a_seeded_pool_per_market_and_names_it_to_the_oracle():
    eth = MarketConfig(name="ETH", spot_pool_liquidity=1_000_000, pool_fallback=True, pool_window=600)
    sol = MarketConfig(name="SOL", initial_price=100.0)
    p = Protocol.deploy(make_chain("revm"), ProtocolConfig(markets=(eth, sol)))
    assert p.spot_price("ETH") == 2_000.0
    assert p.pool_reserves("ETH") == (500.0, 1_000_000.0)
    assert p.oracle.call("sources", 0) == (p.pools["ETH"].address, 600, False)
    assert p.oracle.call("sources", 1)[0] == "0x" + "00" * 20
    with pytest.raises(KeyError, match="'SOL' has no SpotPool"):
        p.spot_price("SOL")
    trader = p.chain.new_account("pool-trader")
    p.mint(trader, 100_000)
    quoted = p.pool_quote("ETH", False, 20_000)
    assert p.swap(trader, "ETH", False, 20_000, min_out=quoted) == quoted
    assert p.spot_price("ETH") > 2_000.0
    attached = Protocol.attach(p.chain, p.config, p.addresses(), p.deployer)
    assert attached.spot_price("ETH") == p.spot_price("ETH")


def test_a_pool_priced_market_follows_its_pool_and_stays_fresh():
    sim = run(scenario({"spot_pool_liquidity": 500_000.0, "price_source": "pool"}))
    p = sim.protocol
    index, valid = p.index_price("ETH")
    assert valid and index == p.spot_price("ETH")
    assert sim.stats.reverts_by_kind == {}
    assert sim.stats.actions_by_kind["feed_keeper"] == {"refresh_feed": 20}
    assert "oracle_reporter" not in sim.stats.actions_by_kind  # they skip a pool-priced market
    assert p.oracle.call("median", 0) == (0, 0)


def test_the_fallback_keeps_a_frozen_feed_valid():
    """Reporters frozen from step 5: without a fallback the feed goes invalid after max_age;
    with the pool as fallback it stays valid at the pool's price."""
    freeze = [{"kind": "oracle_freeze", "at_step": 5, "duration": 15}]
    plain = run(scenario({}, agents=[{"kind": "oracle_reporter", "count": 2}], shocks=freeze))
    assert plain.protocol.index_price("ETH")[1] is False
    fallback = run(scenario({"spot_pool_liquidity": 500_000.0, "pool_fallback": True}, shocks=freeze))
    index, valid = fallback.protocol.index_price("ETH")
    assert valid and index == fallback.protocol.spot_price("ETH")


@pytest.mark.parametrize("market, field, expected", [
    ({"price_source": "pool"}, "markets[0]", "needs a SpotPool: set spot_pool_liquidity above 0"),
    ({"spot_pool_liquidity": 1e6, "pool_window": 4_000}, "markets[0]", "at most 63 x pool_observation_spacing"),
    ({"spot_pool_liquidity": 1e6, "price_source": "pool", "pool_fallback": True}, "markets[0]",
     "the pool is already the source"),
    ({"price_source": "oracle"}, "markets[0].price_source", "'reporters' or 'pool'"),
    ({"spot_pool_liquidity": -1.0}, "markets[0].spot_pool_liquidity", "greater than or equal to 0"),
])
def test_bad_pool_fields_are_refused_with_field_and_reason(market, field, expected):
    with pytest.raises(ScenarioError) as info:
        scenario(market)
    text = str(info.value)
    assert field in text and expected in text, text


def test_a_pool_priced_market_needs_a_feed_keeper():
    with pytest.raises(ScenarioError) as info:
        scenario({"spot_pool_liquidity": 1e6, "price_source": "pool"}, agents=[{"kind": "oracle_reporter", "count": 2}])
    assert "markets[0].price_source" in str(info.value) and "feed_keeper" in str(info.value)
