"""Exchange: deposits and withdrawals, the initial-margin check on withdrawal, and the
no-unrealised-PnL rule (DESIGN §5.4, §5.7)."""

from __future__ import annotations

import pytest

from sim.protocol import Protocol
from sim.units import to_usdc
from tests.utils.asserts import reverts


def test_deposit_and_withdraw(protocol: Protocol, alice):
    protocol.mint(alice, 1_000)
    protocol.deposit(alice, 600, subaccount=3)
    assert protocol.collateral(alice, 3) == 600
    assert protocol.token_balance(alice) == 400
    receipt = protocol.exchange.transact("withdraw", 3, to_usdc(250), sender=alice)
    assert [e.name for e in receipt.events if e.address == protocol.exchange.address] == ["Withdraw"]
    assert protocol.collateral(alice, 3) == 350
    assert protocol.token_balance(alice) == 650


def test_deposit_reverts(protocol: Protocol, alice):
    with reverts("exchange: zero amount"):
        protocol.exchange.transact("deposit", 0, 0, sender=alice)
    protocol.usdc.transact("approve", protocol.exchange.address, 10**12, sender=alice)
    with reverts("usdc: insufficient balance"):
        protocol.exchange.transact("deposit", 0, 1, sender=alice)


def test_withdraw_reverts(protocol: Protocol, fund, alice):
    fund(alice, 1_000)
    with reverts("exchange: zero amount"):
        protocol.exchange.transact("withdraw", 0, 0, sender=alice)
    with reverts("exchange: withdrawal exceeds collateral"):
        protocol.exchange.transact("withdraw", 0, to_usdc(1_000) + 1, sender=alice)


def test_withdraw_keeps_initial_margin(protocol: Protocol, fund, alice):
    """DESIGN §5.4: a withdrawal may not leave the subaccount below initial margin."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 20)  # ~40,300 notional, IM ~4,030
    h = protocol.health(alice)
    room = h.equity - h.initial_margin
    with reverts("exchange: below initial margin"):
        protocol.withdraw(alice, room + 1)
    protocol.withdraw(alice, room - 1)
    h = protocol.health(alice)
    assert h.equity >= h.initial_margin


def test_no_withdrawal_of_unrealized_pnl(protocol: Protocol, fund, alice, set_price):
    """DESIGN §5.7 (the Mango lesson): a paper profit cannot be withdrawn, only collateral."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 10)
    set_price("ETH", 3000)  # +~10,000 unrealised
    collateral = protocol.collateral(alice)
    assert protocol.equity(alice) > collateral + 9_000
    with reverts("exchange: withdrawal exceeds collateral"):
        protocol.withdraw(alice, collateral + 1)
    protocol.withdraw(alice, collateral - 1)  # all collateral goes; profit still covers margin


def test_market_may_allow_unrealized_withdrawal(protocol: Protocol, fund, alice, set_price):
    """With allow_unrealized_withdrawal the same paper profit can be taken out: the parameter
    exists for scenarios that show why it should not: the Vault lends the paper profit, and
    its LPs lose it if the price comes back."""
    eth = protocol.config.markets[0]
    protocol.set_market_params(eth.model_copy(update={"allow_unrealized_withdrawal": True}))
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 10)
    set_price("ETH", 3000)
    before = protocol.health(alice).equity
    amount = protocol.collateral(alice) + 5_000
    protocol.withdraw(alice, amount)
    assert protocol.collateral(alice) == pytest.approx(-5_000)
    assert protocol.exchange.call("vault_receivable") == 5_000 * 10**18
    assert protocol.token_balance(alice) == pytest.approx(amount)
    h2 = protocol.health(alice)
    assert h2.equity == pytest.approx(before - amount)
    assert h2.equity >= h2.initial_margin
