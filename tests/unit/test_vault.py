"""Vault: LP shares at NAV, NAV including traders' unrealised PnL, the reserve factor, and
the Exchange-only door (DESIGN §4 Vault)."""

from __future__ import annotations

import pytest

from sim.protocol import Protocol
from sim.units import WAD, to_usdc
from tests.utils import invariants
from tests.utils.asserts import reverts


def test_shares_at_nav(protocol: Protocol, lp, carol):
    """Seed LP put in 2,000,000 at 1 share per dollar; a new deposit at the same NAV gets the
    same price per share."""
    assert protocol.vault.call("share_price") == WAD
    protocol.mint(lp, 100_000)
    shares = protocol.lp_deposit(lp, 100_000)
    assert shares == pytest.approx(100_000)
    assert protocol.vault_nav() == pytest.approx(2_100_000)
    paid = protocol.lp_withdraw(lp)
    assert paid == pytest.approx(100_000, abs=1e-6)
    assert protocol.vault.call("shares", lp) == 0


def test_nav_moves_against_traders_pnl(protocol: Protocol, fund, alice, lp, set_price):
    """NAV = balance + what the Exchange owes - the traders' book valued at what closing it
    would pay them (impact included), net of funding: alice's paper profit is the LPs' paper
    loss, and a later LP buys in at the lower NAV. Cross-checked against a Python model of
    the same formula, to the wei."""
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 10)
    nav_before = protocol.vault_nav()
    assert protocol.vault.call("nav") == invariants.vault_nav_model(protocol)
    set_price("ETH", 2200)
    assert protocol.vault.call("nav") == invariants.vault_nav_model(protocol)
    # closing 10 ETH at skew 10 pays 2200 * (1 + 5 / 10,000) = 2201.1 a unit: 200 * 10 more
    # than at 2000, and the premium on it (10 * 200 * 0.0005 = 1)
    assert protocol.vault_nav() == pytest.approx(nav_before - 2_001, abs=0.01)
    protocol.mint(lp, 10_000)
    shares = protocol.lp_deposit(lp, 10_000)
    assert shares > 10_000  # the LP buys in below 1 USD per share


def test_a_trade_at_a_constant_price_leaves_nav_alone(protocol: Protocol, fund, alice, bob):
    """The Vault values positions at their closing fill, so the price impact a trade pays
    is not NAV until the trade closes: at a constant price, trades move NAV only by the
    Vault's share of the fees (F1 of the review, where NAV jumped by the impact)."""
    fund(alice, 500_000)
    fund(bob, 500_000)
    nav = protocol.vault_nav()
    fees = 0.0
    for who, size in ((alice, 400), (bob, -150), (alice, -100), (bob, 300)):
        fill = protocol.trade(who, "ETH", size)
        fees += abs(size) * fill * 0.0005 * (1 - 0.2)  # taker fee less the fund's share
    assert protocol.vault_nav() == pytest.approx(nav + fees, abs=0.05)


def test_reserve_factor_blocks_withdrawal(protocol: Protocol, fund, alice, owner):
    """Withdrawals stop when the balance left would be below reserve_factor x OI notional."""
    fund(alice, 100_000)
    protocol.trade(alice, "ETH", 400)  # ~800k notional
    protocol.vault.transact("set_reserve_factor", 2 * WAD, sender=owner)  # reserves >= 200% of OI
    seed = protocol.chain.new_account("seed-lp")
    with reverts("vault: below reserve"):
        protocol.lp_withdraw(seed, 1_000_000)
    protocol.lp_withdraw(seed, 100_000)


def test_vault_reverts(protocol: Protocol, lp, bob):
    with reverts("vault: zero amount"):
        protocol.vault.transact("deposit", 0, sender=lp)
    with reverts("vault: zero shares"):
        protocol.vault.transact("withdraw", 0, sender=lp)
    with reverts("vault: insufficient shares"):
        protocol.vault.transact("withdraw", 1, sender=lp)
    with reverts("vault: caller is not the exchange"):
        protocol.vault.transact("pay", bob, 1, sender=bob)
    with reverts("ownable: caller is not the owner"):
        protocol.vault.transact("set_reserve_factor", 0, sender=bob)
    with reverts("ownable: caller is not the owner"):
        protocol.vault.transact("set_exchange", bob, sender=bob)
    with reverts("vault: exchange already set"):
        protocol.vault.transact("set_exchange", bob, sender=protocol.deployer)


def test_insurance_fund(protocol: Protocol, bob):
    f = protocol.insurance_fund
    with reverts("insurance: caller is not the exchange"):
        f.transact("pay", bob, 1, sender=bob)
    with reverts("insurance: zero amount"):
        f.transact("fund", 0, sender=bob)
    with reverts("insurance: exchange already set"):
        f.transact("set_exchange", bob, sender=protocol.deployer)
    with reverts("ownable: caller is not the owner"):
        f.transact("set_exchange", bob, sender=bob)
    before = protocol.insurance_balance()
    protocol.mint(bob, 500)
    protocol.usdc.transact("approve", f.address, to_usdc(500), sender=bob)
    f.transact("fund", to_usdc(500), sender=bob)
    assert protocol.insurance_balance() == pytest.approx(before + 500)


def test_mock_usdc(protocol: Protocol, alice, bob):
    u = protocol.usdc
    assert u.call("decimals") == 6
    u.transact("faucet", 1_000, sender=alice)
    assert u.call("balanceOf", alice) == 1_000
    with reverts("usdc: insufficient balance"):
        u.transact("transfer", bob, 1_001, sender=alice)
    with reverts("usdc: insufficient allowance"):
        u.transact("transferFrom", alice, bob, 1, sender=bob)
    u.transact("approve", bob, 600, sender=alice)
    u.transact("transferFrom", alice, bob, 600, sender=bob)
    assert (u.call("balanceOf", alice), u.call("balanceOf", bob), u.call("allowance", alice, bob)) == (400, 600, 0)
    with reverts("usdc: transfer to zero address"):
        u.transact("transfer", "0x0000000000000000000000000000000000000000", 1, sender=alice)
