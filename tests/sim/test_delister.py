"""The delister agent (sim/agents/delister.py): governance delists a market whose index moved
more than its `delist_move` from `lookback` steps before, at that earlier price, and settles
every position there; with `delist_move` 0 (the default) it never delists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.agents.base import Delist, Settle
from sim.agents.delister import Delister
from sim.chain import make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig
from tests.sim.test_agents import context, make, run, set_price


def _deploy(delist_move: float) -> Protocol:
    market = MarketConfig(name="ETH", initial_price=2000.0, skew_scale=100_000.0, max_oi=10_000.0,
                          delist_move=delist_move)
    return Protocol.deploy(make_chain("revm"), ProtocolConfig(markets=(market,), vault_liquidity=1_000_000.0))


@pytest.fixture(scope="module")
def guarded() -> Iterator[Protocol]:
    protocol = _deploy(0.5)
    yield protocol
    protocol.chain.close()


def _steps(protocol: Protocol, agent: Delister, prices: list[float]) -> list:
    """Report each price and let the agent decide once per price; the last decision's actions."""
    actions: list = []
    for step, price in enumerate(prices):
        set_price(protocol, "ETH", price)
        actions = agent.decide(context(protocol, step, {"ETH": price}))
    return actions


def test_delists_past_the_move_and_settles_at_the_earlier_price(guarded: Protocol) -> None:
    alice = guarded.chain.new_account("alice")
    guarded.mint(alice, 10_000)
    guarded.deposit(alice, 10_000)
    guarded.trade(alice, "ETH", -2)  # a short, squeezed by the pump
    agent = make(Delister, guarded, lookback=2)
    assert _steps(guarded, agent, [2000.0, 2000.0, 2900.0]) == []  # +45%: within the move
    actions = _steps(guarded, agent, [6000.0])  # +200% on two steps before
    assert actions == [Delist("ETH", 2000.0)]
    assert all(o.ok for o in run(agent, guarded, actions))
    assert guarded.settlement_price("ETH") == 2000.0
    actions = agent.decide(context(guarded, 4, {"ETH": 6000.0}))
    assert actions == [Settle(alice, 0, "ETH")]
    assert all(o.ok for o in run(agent, guarded, actions))
    assert guarded.position(alice, "ETH").size == 0
    assert agent.decide(context(guarded, 5, {"ETH": 6000.0})) == []


def test_never_delists_with_the_move_off() -> None:
    protocol = _deploy(0.0)
    try:
        agent = make(Delister, protocol, lookback=1)
        assert _steps(protocol, agent, [2000.0, 20_000.0, 200.0]) == []
        assert protocol.settlement_price("ETH") == 0
    finally:
        protocol.chain.close()
