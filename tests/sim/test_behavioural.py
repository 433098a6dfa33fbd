"""The behavioural traders (sim/agents/behavioural.py), each on a small fixed state: a fresh
protocol on revm, hand-set prices, and the agent's orders checked against its bias."""

from __future__ import annotations

import pytest

from sim.agents.behavioural import HerdFollower, LossChaser, OverconfidentTrader, PanicSeller
from sim.agents.zoo import ZOO, describe
from sim.protocol import Protocol
from tests.sim.test_agents import context, deployed, fund, make, protocol, run, set_price, trades  # noqa: F401

BEHAVIOURS = {"herd_follower": "herding", "loss_chaser": "loss chasing", "overconfident_trader": "overconfidence",
              "panic_seller": "panic selling"}


def prices(eth: float) -> dict[str, float]:
    return {"ETH": eth, "BTC": 30_000.0}


def test_behavioural_kinds_are_in_the_zoo_documented_and_undisciplined() -> None:
    for kind, behaviour in BEHAVIOURS.items():
        cls = ZOO[kind]
        assert cls.behaviour == behaviour and cls.role == "trader"
        assert kind in describe()
        config = cls.Config()
        assert not any((config.size_cap, config.margin_buffer, config.hedge, config.stop_loss))  # layers off


def test_herd_follower_trades_with_the_majority(protocol: Protocol) -> None:
    herd = make(HerdFollower, protocol, market="ETH", leverage=2.0, min_orders=4, majority=0.7)
    fund(herd, protocol)
    cursor = protocol.chain.events_since(0)[1]
    for i in range(4):  # four others buy, one sells: 80% bought
        crowd = protocol.chain.new_account(f"crowd-{i}")
        protocol.mint(crowd, 10_000)
        protocol.deposit(crowd, 10_000)
        protocol.trade(crowd, "ETH", 1.0)
    seller = protocol.chain.new_account("seller")
    protocol.mint(seller, 10_000)
    protocol.deposit(seller, 10_000)
    protocol.trade(seller, "ETH", -1.0)
    ctx = context(protocol)
    ctx.set_events(protocol.chain.events_since(cursor)[0])
    (order,) = trades(herd.decide(ctx))
    assert order.size == pytest.approx(2.0 * 10_000 / 2000.0, rel=0.01)  # long, at its leverage
    quiet = context(protocol, 1)
    quiet.set_events([])
    assert herd.decide(quiet) == []  # it holds what it has while the crowd is quiet


def test_herd_follower_waits_for_enough_orders(protocol: Protocol) -> None:
    herd = make(HerdFollower, protocol, market="ETH", min_orders=3)
    fund(herd, protocol)
    cursor = protocol.chain.events_since(0)[1]
    crowd = protocol.chain.new_account("one-buyer")
    protocol.mint(crowd, 10_000)
    protocol.deposit(crowd, 10_000)
    protocol.trade(crowd, "ETH", 1.0)
    ctx = context(protocol)
    ctx.set_events(protocol.chain.events_since(cursor)[0])
    assert herd.decide(ctx) == []  # one order is not a crowd


def test_loss_chaser_doubles_down_then_takes_its_profit(protocol: Protocol) -> None:
    chaser = make(LossChaser, protocol, market="ETH", entry_probability=1.0, long_bias=1.0, leverage=1.0,
                  loss_step=0.03, take_profit=0.01)
    fund(chaser, protocol)
    (opened,) = trades(chaser.decide(context(protocol, 0)))
    assert opened.size == pytest.approx(5.0, rel=0.01)
    run(chaser, protocol, [opened])
    set_price(protocol, "ETH", 1930.0)  # -3.5%: a loss
    (doubled,) = trades(chaser.decide(context(protocol, 1, prices(1930.0))))
    assert doubled.size == pytest.approx(opened.size, rel=1e-6)  # doubles the position
    run(chaser, protocol, [doubled])
    assert chaser.doublings == 1
    set_price(protocol, "ETH", 1940.0)  # below its average entry (1,965) and above its last order: waits
    assert trades(chaser.decide(context(protocol, 2, prices(1940.0)))) == []
    set_price(protocol, "ETH", 1990.0)  # 1.3% above the average entry: closes
    (closed,) = trades(chaser.decide(context(protocol, 3, prices(1990.0))))
    assert closed.size == pytest.approx(-protocol.position(chaser.account, "ETH").size, rel=1e-9)


def test_overconfident_trader_raises_its_leverage_after_a_win(protocol: Protocol) -> None:
    bold = make(OverconfidentTrader, protocol, market="ETH", trade_probability=1.0, lookback_blocks=1,
                hold_blocks=2, base_leverage=1.0, leverage_step=2.0)
    fund(bold, protocol)
    assert bold.decide(context(protocol, 0)) == []  # needs the trend first
    set_price(protocol, "ETH", 2010.0)
    (first,) = trades(bold.decide(context(protocol, 1, prices(2010.0))))
    assert first.size == pytest.approx(10_000 / 2010.0, rel=0.01)  # long with the rise, at 1x
    run(bold, protocol, [first])
    set_price(protocol, "ETH", 2050.0)
    (close,) = trades(bold.decide(context(protocol, 3, prices(2050.0))))
    run(bold, protocol, [close])
    assert (bold.leverage, bold.wins) == (3.0, 1)  # a win: bolder
    set_price(protocol, "ETH", 2060.0)
    equity = protocol.health(bold.account).equity
    (second,) = trades(bold.decide(context(protocol, 4, prices(2060.0))))
    assert second.size == pytest.approx(3.0 * equity / 2060.0, rel=0.01)


def test_panic_seller_sells_everything_after_a_drawdown_and_sits_out(protocol: Protocol) -> None:
    panicky = make(PanicSeller, protocol, market="ETH", trade_probability=1.0, long_bias=1.0, leverage=4.0,
                   panic_drawdown=0.1, cooldown_blocks=5)
    fund(panicky, protocol)
    (opened,) = trades(panicky.decide(context(protocol, 0)))
    run(panicky, protocol, [opened])
    set_price(protocol, "ETH", 1980.0)  # -1% at 4x: -4% of equity, no panic
    assert trades(panicky.decide(context(protocol, 1, prices(1980.0)))) == []
    set_price(protocol, "ETH", 1930.0)  # -3.5% at 4x: -14% of equity
    (sold,) = trades(panicky.decide(context(protocol, 2, prices(1930.0))))
    assert sold.size == pytest.approx(-opened.size, rel=1e-9)  # everything, at once
    run(panicky, protocol, [sold])
    assert panicky.panics == 1
    assert panicky.decide(context(protocol, 3, prices(1930.0))) == []  # sits out its cooldown
    assert trades(panicky.decide(context(protocol, 7, prices(1930.0))))  # and comes back
