"""TriggerOrders: stop-loss and take-profit on both sides, keeper fee, reduce-only,
cancellation with a reason (DESIGN §4 trigger orders)."""

from __future__ import annotations

from fractions import Fraction
from math import ceil, floor

import pytest

from sim.protocol import Protocol
from sim.units import WAD
from tests.utils.asserts import reverts


def _cancel_reason(receipt) -> str:
    return [e for e in receipt.events if e.name == "OrderCancelled"][0].args["reason"]


def _close_by_trigger(side: int, size: int, index: int, keeper_fee: Fraction) -> Fraction:
    """Collateral change (USD) when a trigger closes a position of `side` x `size` ETH opened
    at 2,000 with no other open interest, filled at `index` (the conftest's ETH: skew scale
    10,000, taker fee 0.05%; no time passes, so no funding). Fills move with skew (SIP-279):
    opening fills at 2,000 x (1 + side x size / 20,000), closing at index x (1 + side x size /
    20,000), the skew halving on the way out. Realised PnL is rounded down to a token unit, the
    fee up, and the keeper fee comes off the collateral too."""
    impact = Fraction(side * size, 2 * 10_000)
    opened, closed = 2_000 * (1 + impact), index * (1 + impact)
    pnl = side * size * (closed - opened)
    fee = size * closed * Fraction(5, 10_000)
    return Fraction(floor(pnl * 10**6), 10**6) - Fraction(ceil(fee * 10**6), 10**6) - keeper_fee


@pytest.mark.parametrize(
    "side, kind, trigger, not_yet, crossed",
    [
        (+1, "stop_loss", 1900, 1950, 1899),    # long: sell when index <= 1900
        (+1, "take_profit", 2100, 2050, 2101),  # long: sell when index >= 2100
        (-1, "stop_loss", 2100, 2050, 2101),    # short: buy when index >= 2100
        (-1, "take_profit", 1900, 1950, 1899),  # short: buy when index <= 1900
    ],
)
def test_trigger_fires_only_when_crossed(protocol: Protocol, fund, alice, keeper, set_price,
                                         side, kind, trigger, not_yet, crossed):
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 5 * side)
    order = protocol.place_trigger(alice, "ETH", -5 * side, trigger, kind=kind, keeper_fee=2.0)
    set_price("ETH", not_yet)
    assert protocol.trigger_orders.call("is_triggered", order) is False
    with reverts("triggers: not triggered"):
        protocol.execute_trigger(keeper, order)
    set_price("ETH", crossed)
    keeper_before = protocol.usdc.call("balanceOf", keeper)
    collateral_before = protocol.exchange.call("accounts", alice, 0)[0]
    assert protocol.execute_trigger(keeper, order) is True
    assert protocol.position(alice, "ETH").size == 0
    assert protocol.usdc.call("balanceOf", keeper) - keeper_before == 2_000_000  # $2.00, 6 decimals
    change = protocol.exchange.call("accounts", alice, 0)[0] - collateral_before
    assert change == _close_by_trigger(side, 5, crossed, Fraction(2)) * WAD
    with reverts("triggers: order not active"):
        protocol.execute_trigger(keeper, order)


def test_order_larger_than_position_closes_only_the_position(protocol: Protocol, fund, alice, keeper, set_price):
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 3)
    order = protocol.place_trigger(alice, "ETH", -10, 1900)
    set_price("ETH", 1890)
    protocol.execute_trigger(keeper, order)
    assert protocol.position(alice, "ETH").size == 0  # reduce-only: no flip to short 7


def test_order_without_position_is_cancelled_with_reason(protocol: Protocol, fund, alice, keeper, set_price):
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 3)
    order = protocol.place_trigger(alice, "ETH", -3, 1900)
    protocol.close_position(alice, "ETH")
    set_price("ETH", 1890)
    receipt = protocol.trigger_orders.transact("execute", order, sender=keeper)
    assert receipt.return_value is False
    assert _cancel_reason(receipt) == "no position to reduce"
    assert protocol.trigger_orders.call("orders", order)[-1] is False


def test_same_side_order_is_cancelled(protocol: Protocol, fund, alice, keeper, set_price):
    """A buy order against a long would add risk: it is cancelled, never executed."""
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 3)
    order = protocol.place_trigger(alice, "ETH", 3, 2100, kind="stop_loss")
    set_price("ETH", 2150)
    receipt = protocol.trigger_orders.transact("execute", order, sender=keeper)
    assert _cancel_reason(receipt) == "no position to reduce"
    assert protocol.position(alice, "ETH").size == 3


def test_place_and_cancel_rules(protocol: Protocol, fund, alice, bob):
    fund(alice, 20_000)
    t = protocol.trigger_orders
    with reverts("triggers: unknown market"):
        t.transact("place", 0, 5, -1, 1, 0, 0, 0, sender=alice)
    with reverts("triggers: zero size"):
        t.transact("place", 0, 0, 0, 1, 0, 0, 0, sender=alice)
    with reverts("triggers: zero trigger price"):
        t.transact("place", 0, 0, -1, 0, 0, 0, 0, sender=alice)
    with reverts("triggers: unknown kind"):
        t.transact("place", 0, 0, -1, 1, 1, 2, 0, sender=alice)
    # every order has a limit: a sell's floor above zero, a buy's ceiling below the maximum
    with reverts("triggers: no limit price"):
        t.transact("place", 0, 0, -1, 1, 0, 0, 0, sender=alice)
    with reverts("triggers: no limit price"):
        t.transact("place", 0, 0, 1, 1, 2**256 - 1, 0, 0, sender=alice)
    order = protocol.place_trigger(alice, "ETH", -1, 1900)
    with reverts("triggers: caller is not the owner"):
        protocol.cancel_trigger(bob, order)
    receipt = t.transact("cancel", order, sender=alice)
    assert _cancel_reason(receipt) == "cancelled by owner"
    with reverts("triggers: order not active"):
        protocol.cancel_trigger(alice, order)


def test_trigger_respects_limit_price(protocol: Protocol, fund, alice, keeper, set_price):
    """A stop with a limit the fill cannot meet reverts and stays active for a later try."""
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 3)
    order = protocol.place_trigger(alice, "ETH", -3, 1900, limit_price=1950)
    set_price("ETH", 1890)
    with reverts("exchange: price below limit"):
        protocol.execute_trigger(keeper, order)
    assert protocol.trigger_orders.call("orders", order)[-1] is True
