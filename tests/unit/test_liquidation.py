"""Liquidator: the maintenance-margin threshold, partial then full liquidation, the fee
split, bad debt through the InsuranceFund, bankruptcy, and ADL (DESIGN §4, §5.5, §5.6)."""

from __future__ import annotations

import pytest

from sim.protocol import Protocol
from sim.units import WAD, from_wad, to_usdc, to_wad
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT, PRECISION


def _events(receipt, name):
    return [e for e in receipt.events if e.name == name]


def _report_wad(protocol: Protocol, price_wad: int) -> None:
    for r in protocol.reporters:
        protocol.oracle.transact("report", 0, price_wad, sender=r)


def test_threshold_one_wei_either_side(protocol: Protocol, fund, alice, keeper):
    """Rule: liquidatable iff equity < maintenance margin. Binary-search the index for the
    last price at which the account is still healthy; one wei lower it is liquidatable."""
    fund(alice, 1_000)
    protocol.trade(alice, "ETH", 1)  # long 1 ETH, equity - MM shrinks ~0.94 wei per wei of price
    lo, hi = 1_000 * WAD, 2_000 * WAD  # liquidatable at lo, healthy at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        _report_wad(protocol, mid)
        if protocol.is_liquidatable(alice):
            lo = mid
        else:
            hi = mid
    _report_wad(protocol, hi)
    equity, _, mm, _ = protocol.exchange.call("health", alice, 0)
    assert 0 <= equity - mm <= 1  # at the threshold: healthy by at most a wei
    with reverts("liquidator: not liquidatable"):
        protocol.liquidate(keeper, alice, "ETH")
    _report_wad(protocol, lo)
    equity, _, mm, _ = protocol.exchange.call("health", alice, 0)
    assert equity < mm
    assert protocol.liquidate(keeper, alice, "ETH") > 0


def test_partial_then_full_liquidation(protocol: Protocol, fund, alice, keeper, set_price):
    """A partial liquidation closes just enough to restore initial margin; a later one, with
    too little equity for any remainder, closes everything."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)  # fill 2004.5
    set_price("ETH", 1890)  # equity ~4.8k < MM ~5.3k; IM ~8.5k
    assert protocol.is_liquidatable(alice)
    before = protocol.health(alice)
    receipt = protocol.liquidator.transact("liquidate", alice, 0, 0, MAX_UINT, sender=keeper)
    ev = _events(receipt, "Liquidation")[0].args
    closed = -from_wad(ev["size"])
    assert 0 < closed < 45
    after = protocol.health(alice)
    assert after.equity >= after.initial_margin - 2e-6  # restored to initial margin, to 2 token units of rounding
    # and no more than that, but for the impact: the close is sized at mark and the Vault is
    # long-skewed, so the fill (with its SIP-279 impact) pays a little above mark
    impact_gain = closed * (from_wad(ev["price"]) - 1890)
    assert impact_gain > 0
    assert after.equity <= after.initial_margin + impact_gain + 1e-3
    assert after.margin_ratio >= before.margin_ratio  # DESIGN §5.5

    set_price("ETH", 1730)  # equity ~0.5k: restoring IM would take more than the position
    assert protocol.is_liquidatable(alice)
    remaining = protocol.position(alice, "ETH").size
    assert protocol.liquidate(keeper, alice, "ETH") == pytest.approx(remaining)
    assert protocol.position(alice, "ETH").size == 0
    assert protocol.collateral(alice) >= 0
    assert protocol.account_markets(alice) == []


def test_liquidation_fee_split_and_event(protocol: Protocol, fund, alice, keeper, set_price):
    """Fee = 2.5% of the notional closed (at mark), half to the keeper, half to the fund; the
    fill is the market's SIP-279 fill of the closed size; the event carries account, market,
    size, fill price, the split and the remaining equity."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1890)
    keeper_before = protocol.usdc.call("balanceOf", keeper)
    fund_before = protocol.usdc.call("balanceOf", protocol.insurance_fund.address)
    receipt = protocol.liquidator.transact("liquidate", alice, 0, 0, MAX_UINT, sender=keeper)
    ev = _events(receipt, "Liquidation")[0].args
    closed = -ev["size"]
    # index * (1 + (2 skew - closed) / (2 skew_scale)), rounded down for a sell
    skew_scale = to_wad(protocol.config.markets[0].skew_scale)
    fill = 1890 * WAD + 1890 * WAD * (2 * 45 * WAD - closed) // (2 * skew_scale)
    assert ev["owner"] == alice and ev["market"] == 0 and ev["price"] == fill
    expected_fee = -(-(closed * 1890 * WAD // WAD) * to_wad(0.025) // (WAD * PRECISION))  # ceil, token units
    assert ev["keeper_fee"] + ev["insurance_fee"] == expected_fee
    assert ev["keeper_fee"] == expected_fee // 2
    assert protocol.usdc.call("balanceOf", keeper) - keeper_before == ev["keeper_fee"]
    assert protocol.usdc.call("balanceOf", protocol.insurance_fund.address) - fund_before == ev["insurance_fee"]
    assert ev["remaining_equity"] == protocol.exchange.call("health", alice, 0)[0]


def test_partial_liquidation_of_thin_account_keeps_margin_ratio(protocol: Protocol, fund, alice, keeper, set_price):
    """DESIGN §5.5 when equity / notional is below the 2.5% fee: the fee is capped so the
    ratio does not fall."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1810)  # equity ~1.2k on ~81k notional: ratio ~1.5% < 2.5%
    before = protocol.health(alice)
    assert 0 < before.margin_ratio < 0.025
    protocol.liquidate(keeper, alice, "ETH", max_size=10)
    after = protocol.health(alice)
    assert after.notional > 0
    assert after.margin_ratio >= before.margin_ratio


def test_liquidation_reverts(protocol: Protocol, fund, alice, bob, keeper):
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 10)
    with reverts("liquidator: not liquidatable"):
        protocol.liquidate(keeper, alice, "ETH")
    with reverts("liquidator: no position"):
        protocol.liquidate(keeper, alice, "BTC")
    with reverts("exchange: unknown market"):
        protocol.liquidator.transact("liquidate", alice, 0, 9, MAX_UINT, sender=keeper)
    protocol.report_all("ETH", 1000)
    with reverts("liquidator: zero size"):
        protocol.liquidate(keeper, alice, "ETH", max_size=0)
    with reverts("ownable: caller is not the owner"):
        protocol.liquidator.transact("set_params", 0, (0, 0, 0, True, 0, 0, 0, 0, 0), sender=bob)


def test_liquidation_when_feed_invalid(protocol: Protocol, fund, alice, keeper, chain, set_price):
    """liquidate_when_invalid: True keeps liquidating on the last valid price; False pauses."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1880)
    chain.mine(protocol.config.oracle.max_age + 1)
    assert protocol.index_price("ETH")[1] is False
    snap = protocol.snapshot()
    assert protocol.liquidate(keeper, alice, "ETH") > 0
    protocol.revert(snap)
    eth = protocol.config.markets[0]
    protocol.set_market_params(eth.model_copy(update={"liquidate_when_invalid": False}))
    with reverts("liquidator: liquidations paused"):
        protocol.liquidate(keeper, alice, "ETH")


def test_liquidation_goes_on_in_a_paused_market(protocol: Protocol, fund, alice, keeper, set_price):
    """A guardian's pause stops users, not the risk engine: liquidations go on."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1880)
    protocol.set_market_status("ETH", True, False)
    with reverts("exchange: market paused"):
        protocol.trade(alice, "ETH", -1)
    assert protocol.liquidate(keeper, alice, "ETH") > 0


def test_bad_debt_paid_in_full_by_insurance(protocol: Protocol, fund, alice, keeper, set_price):
    """DESIGN §5.6: negative equity left by the last close is paid by the fund; no deficit."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1700)  # equity about -3.7k
    equity = protocol.exchange.call("health", alice, 0)[0]
    assert equity < 0
    fill = protocol.lens.call("fill_price", 0, -45 * WAD)  # the close's fill, impact included
    equity_at_fill = equity + 45 * (fill - 1700 * WAD)
    assert equity_at_fill < 0
    fund_before = protocol.insurance_balance()
    receipt = protocol.liquidator.transact("liquidate", alice, 0, 0, MAX_UINT, sender=keeper)
    assert _events(receipt, "Liquidation")[0].args["price"] == fill
    bad = [e for e in receipt.events if e.name == "BadDebt"][0].args
    assert bad["deficit"] == 0
    assert bad["insurance_paid"] == bad["amount"]
    assert abs(bad["amount"] - (-equity_at_fill)) <= PRECISION  # the negative equity closed, to a token unit
    # the fund also tops the keeper's fee up to the minimum: nothing was left to pay it
    keeper_fee = _events(receipt, "Liquidation")[0].args["keeper_fee"]
    assert keeper_fee == to_usdc(protocol.config.markets[0].min_keeper_fee)
    assert protocol.insurance_balance() == pytest.approx(fund_before - from_wad(bad["amount"]) - keeper_fee / 1e6, abs=1e-6)
    assert protocol.collateral(alice) == 0
    assert protocol.deficit("ETH") == 0


