"""Views not covered elsewhere (liquidation price, margin ratio, equity) and the remaining
admin paths: roles, ownership transfers, parameter checks."""

from __future__ import annotations

import pytest

from sim.protocol import ROLES, Protocol
from sim.units import WAD, to_wad
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT


def _report_wad(protocol: Protocol, market: int, price_wad: int) -> None:
    for r in protocol.reporters:
        protocol.oracle.transact("report", market, price_wad, sender=r)


@pytest.mark.parametrize("size", [10.0, -10.0])
def test_liquidation_price_is_the_threshold(protocol: Protocol, fund, alice, size):
    """Rule: the liquidation-price view is where equity meets maintenance margin: a little
    on the safe side the account is healthy, a little past it liquidatable."""
    fund(alice, 3_000)
    protocol.trade(alice, "ETH", size)
    p = protocol.liquidator.call("liquidation_price", alice, 0, 0)
    assert (p < 2000 * WAD) == (size > 0)
    safe, past = (p + p // 10_000, p - p // 10_000) if size > 0 else (p - p // 10_000, p + p // 10_000)
    _report_wad(protocol, 0, safe)
    assert not protocol.is_liquidatable(alice)
    _report_wad(protocol, 0, past)
    assert protocol.is_liquidatable(alice)


def test_liquidation_price_cross_margin(protocol: Protocol, fund, alice, set_price):
    """With a second position, the ETH liquidation price holds BTC at its mark; moving BTC
    against the account moves the ETH liquidation price closer."""
    fund(alice, 5_000)
    protocol.trade(alice, "ETH", 10)
    protocol.trade(alice, "BTC", 0.2)
    before = protocol.liquidation_price(alice, "ETH")
    set_price("BTC", 29_000)
    assert protocol.liquidation_price(alice, "ETH") > before
    assert protocol.liquidation_price(alice, "ETH", subaccount=5) == 0  # no position


def test_margin_ratio_and_equity(protocol: Protocol, fund, alice, set_price):
    fund(alice, 10_000)
    assert protocol.margin_ratio(alice) == float("inf")  # no position
    protocol.trade(alice, "ETH", 10)
    e, im, mm, n = protocol.exchange.call("health", alice, 0)
    assert protocol.lens.call("equity", alice, 0) == e
    assert protocol.margin_ratio(alice) == pytest.approx(e / n)
    set_price("ETH", 900)  # under water
    assert protocol.lens.call("equity", alice, 0) < 0
    assert protocol.margin_ratio(alice) == 0


def test_roles(protocol: Protocol, owner, bob, carol, alice, fund):
    ex = protocol.exchange
    with reverts("exchange: zero address"):
        ex.transact("set_role", ROLES["guardian"], "0x" + "00" * 20, sender=owner)
    receipt = ex.transact("set_role", ROLES["guardian"], bob, sender=owner)
    assert receipt.events[0].name == "RoleSet" and receipt.events[0].args["account"] == bob
    protocol.set_market_status("ETH", False, True, sender=bob)  # the new guardian may
    receipt = ex.transact("transfer_ownership", carol, sender=owner)
    assert receipt.events[0].name == "OwnershipTransferred" and receipt.events[0].args["new_owner"] == carol
    with reverts("ownable: caller is not the owner"):
        ex.transact("set_role", ROLES["guardian"], owner, sender=owner)
    assert ex.call("owner") == carol
    with reverts("exchange: caller is not the guardian"):
        protocol.set_market_status("ETH", False, False, sender=alice)


def test_market_limits(protocol: Protocol, owner):
    ex = protocol.exchange
    eth = protocol.config.markets[0]
    params = list(eth.exchange_params(0))
    for index, value, reason in [
        (3, WAD, "exchange: fee too high"),
        (4, WAD + 1, "exchange: share above 100%"),
        (7, 2, "exchange: unknown funding model"),
    ]:
        bad = list(params)
        bad[index] = value
        with reverts(reason):
            ex.transact("add_market", tuple(bad), sender=owner)
    while ex.call("market_count") < 16:
        ex.transact("add_market", tuple(params), sender=owner)
    with reverts("exchange: too many markets"):
        ex.transact("add_market", tuple(params), sender=owner)


def test_every_owned_contract_transfers_ownership_alike(protocol: Protocol, owner, bob):
    """One ownable module (contracts/modules/ownable.vy) in every owned contract: the same
    reasons, and an OwnershipTransferred event for every change."""
    for contract in (protocol.exchange, protocol.liquidator, protocol.oracle, protocol.vault, protocol.insurance_fund):
        with reverts("ownable: caller is not the owner"):
            contract.transact("transfer_ownership", bob, sender=bob)
        with reverts("ownable: new owner is the zero address"):
            contract.transact("transfer_ownership", "0x" + "00" * 20, sender=owner)
        receipt = contract.transact("transfer_ownership", bob, sender=owner)
        [ev] = [e for e in receipt.events if e.name == "OwnershipTransferred"]
        assert (ev.args["previous_owner"], ev.args["new_owner"]) == (owner, bob)
        assert contract.call("owner") == bob
    with reverts("liquidator: unknown market"):
        protocol.liquidator.transact("set_params", 9, (0, 0, 0, True, 0, 0, 0, 0, 0), sender=bob)
    with reverts("liquidator: fee too high"):
        protocol.liquidator.transact("set_params", 0, (WAD, 0, 0, True, 0, 0, 0, 0, 0), sender=bob)
    with reverts("liquidator: share above 100%"):
        protocol.liquidator.transact("set_params", 0, (0, WAD + 1, 0, True, 0, 0, 0, 0, 0), sender=bob)


def test_charge_fee_takes_no_more_than_the_equity(protocol: Protocol, fund, alice, owner, bob):
    """The TriggerOrders hook takes a keeper fee out of equity, never more than there is."""
    protocol.exchange.transact("set_role", ROLES["trigger_orders"], bob, sender=owner)
    fund(alice, 10)
    receipt = protocol.exchange.transact("charge_fee", alice, 0, bob, 10_000_001, sender=bob)
    assert receipt.return_value == 10_000_000  # all there is
    assert protocol.collateral(alice) == 0
    assert protocol.exchange.transact("charge_fee", alice, 0, bob, 1, sender=bob).return_value == 0
