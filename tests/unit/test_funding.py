"""Funding under both models, checked against hand-worked examples from DESIGN §4.

Setup for every example: ETH at index 2000, skew_scale 10,000, imf 10%, mmf 6.25%; alice is
the only trader, long 10 ETH, so skew = 10 and premium P = skew / skew_scale = 0.001.
Rates are stored per day (the Exchange's docstring explains why).
"""

from __future__ import annotations

import pytest

from sim.protocol import Protocol
from sim.units import WAD, to_wad
from tests.utils import invariants
from tests.utils.constants import DAY, EIGHT_HOURS


@pytest.fixture
def long_ten(protocol: Protocol, fund, alice):
    fund(alice, 100_000)
    protocol.trade(alice, "ETH", 10)
    return alice


def _use_model(protocol: Protocol, **update):
    eth = protocol.config.markets[0]
    protocol.set_market_params(eth.model_copy(update=update))


def test_premium_model_eight_hours(protocol: Protocol, long_ten, bob, chain, fund):
    """premium model (dYdX, Hyperliquid):
        rate_8h = clamp(P + clamp(I - P, -0.05%, +0.05%), -cap, +cap)
                = 0.001 + clamp(0.0001 - 0.001, -0.0005, 0.0005) = 0.001 - 0.0005 = 0.0005
        cap = 6 * (0.10 - 0.0625) = 0.225, not binding; per day: 3 * 0.0005 = 0.0015.
    After 8 hours the cumulative index grows by index * rate_8h = 2000 * 0.0005 = 1 USD per
    ETH, so the long 10 owes 10 USD; with no other trader the Vault (short 10) receives it.
    """
    alice = long_ten
    chain.mine(EIGHT_HOURS)
    assert protocol.lens.call("funding_rate", 0) == 15 * 10**14
    assert protocol.lens.call("accrued_funding", alice, 0, 0) == 10 * WAD

    # settling moves the 10 USD of collateral to the Vault, exactly
    protocol.report_all("ETH", 2000)
    vault_before = protocol.usdc.call("balanceOf", protocol.vault.address)
    collateral_before = protocol.exchange.call("accounts", alice, 0)[0]
    receipt = protocol.exchange.transact("trade", 0, 0, -to_wad(1), 0, sender=alice)
    trade = [e for e in receipt.events if e.name == "Trade"][0]
    assert trade.args["funding_paid"] == 10 * WAD
    fee_units = trade.args["fee"]
    realized_units = trade.args["realized_pnl"] // 10**12
    collateral_after = protocol.exchange.call("accounts", alice, 0)[0]
    assert collateral_after - collateral_before == (realized_units - 10 * 10**6 - fee_units) * 10**12
    vault_after = protocol.usdc.call("balanceOf", protocol.vault.address)
    insurance_fee = fee_units * 2 // 10
    assert vault_after - vault_before == -(realized_units - 10 * 10**6) + fee_units - insurance_fee
    assert protocol.lens.call("accrued_funding", alice, 0, 0) == 0


def test_premium_model_interest_only_when_balanced(protocol: Protocol, fund, alice, bob, chain):
    """With no skew, P = 0 and rate_8h = 0 + clamp(0.0001, ±0.0005) = 0.0001 (the interest rate):
    longs pay shorts 2000 * 0.0001 = 0.2 USD per ETH per 8 h."""
    fund(alice, 100_000)
    fund(bob, 100_000)
    protocol.trade(alice, "ETH", 10)
    protocol.trade(bob, "ETH", -10)
    chain.mine(EIGHT_HOURS)
    assert protocol.lens.call("funding_rate", 0) == 3 * 10**14
    assert protocol.lens.call("accrued_funding", alice, 0, 0) == 2 * WAD
    assert protocol.lens.call("accrued_funding", bob, 0, 0) == -2 * WAD


def test_premium_model_cap(protocol: Protocol, long_ten, chain):
    """The uncapped rate_8h is 0.0005; with imf 10.005% and mmf 10% the cap is
    6 * (imf - mmf) = 0.0003 per 8 h, so the day rate is 3 * 0.0003 = 0.0009."""
    _use_model(protocol, imf=0.10005, mmf=0.10)
    chain.mine(EIGHT_HOURS)
    assert protocol.lens.call("funding_rate", 0) == 9 * 10**14


def test_velocity_model_hand_worked(protocol: Protocol, long_ten, chain):
    """velocity model (Synthetix): d(rate)/dt = clamp(P, -1, 1) * max_funding_velocity.
    max_funding_velocity = 1.0 per day per day, P = 0.001, so the rate grows 0.001 per day.
    Day 1: rate 0 -> 0.001, average 0.0005: index grows 2000 * 0.0005 = 1 USD per ETH.
    Day 2: rate 0.001 -> 0.002, average 0.0015: +3 USD per ETH; 4 in total (= 2000 * 0.001 * 2^2 / 2).
    The long 10 owes 10 after one day and 40 after two, whether or not anything touches the
    market in between.
    """
    alice = long_ten
    _use_model(protocol, funding_model="velocity", max_funding_velocity=1.0, max_funding_rate=1.0)
    chain.mine(DAY)
    assert protocol.lens.call("funding_rate", 0) == 10**15
    assert protocol.lens.call("accrued_funding", alice, 0, 0) == 10 * WAD
    protocol.exchange.transact("accrue", 0, sender=alice)
    chain.mine(DAY)
    assert protocol.lens.call("funding_rate", 0) == 2 * 10**15
    assert protocol.lens.call("accrued_funding", alice, 0, 0) == 40 * WAD


def test_velocity_model_cap(protocol: Protocol, long_ten, chain):
    """The velocity model's rate stops at max_funding_rate (here 0.0005 per day, reached
    half-way through the first day)."""
    _use_model(protocol, funding_model="velocity", max_funding_velocity=1.0, max_funding_rate=0.0005)
    chain.mine(DAY)
    assert protocol.lens.call("funding_rate", 0) == 5 * 10**14


def test_funding_is_zero_sum_between_traders_and_vault(protocol: Protocol, fund, alice, bob, chain):
    """Longs pay shorts; the Vault pays or receives on the net skew it holds. Sum over all
    holders is zero: alice +15, bob -5, Vault -10 (short the net 10)."""
    fund(alice, 100_000)
    fund(bob, 100_000)
    protocol.trade(alice, "ETH", 15)
    protocol.trade(bob, "ETH", -5)
    chain.mine(EIGHT_HOURS)
    ex = protocol.exchange
    owed_alice = protocol.lens.call("accrued_funding", alice, 0, 0)
    owed_bob = protocol.lens.call("accrued_funding", bob, 0, 0)
    assert owed_alice > 0 > owed_bob
    # one cumulative index per market: the same funding per ETH on both sides (to a wei)
    assert abs(owed_alice * 5 + owed_bob * 15) <= 15 + 5
    # the Vault's side is what the traders owe in net: -(owed_alice + owed_bob) = -(skew * per-ETH),
    # and it is counted in traders_pnl, the Vault's liability, to a wei per position
    traders_pnl = invariants.traders_pnl(protocol)
    per_position = sum(protocol.lens.call("position_pnl", a, 0, 0) for a in (alice, bob))
    assert abs(traders_pnl - per_position) <= 2 * 2
