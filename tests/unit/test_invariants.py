"""DESIGN §5.1–5.3 after a mixed sequence of trades, funding time, price moves and LP moves."""

from __future__ import annotations

from sim.protocol import Protocol
from tests.utils import invariants


def test_invariants_after_mixed_sequence(protocol: Protocol, fund, alice, bob, carol, lp, chain, set_price):
    fund(alice, 50_000)
    fund(bob, 50_000)
    fund(carol, 30_000, subaccount=1)
    protocol.mint(lp, 200_000)
    subaccounts = [(alice, 0), (bob, 0), (carol, 1)]
    holders = [alice, bob, carol, lp, protocol.deployer, chain.new_account("seed-lp")]

    def check() -> None:
        invariants.all_invariants(protocol, subaccounts, holders)

    check()
    protocol.trade(alice, "ETH", 12)
    protocol.trade(bob, "ETH", -7)
    protocol.trade(carol, "BTC", 0.4, subaccount=1)
    check()
    chain.mine(3 * 3600)
    set_price("ETH", 2150)
    set_price("BTC", 29_000)
    check()
    protocol.lp_deposit(lp, 150_000)
    protocol.trade(alice, "ETH", -20)  # flip
    protocol.trade(bob, "BTC", -0.3)
    protocol.trade(carol, "ETH", 5, subaccount=1)
    check()
    chain.mine(8 * 3600)
    set_price("ETH", 1980)
    protocol.trade(bob, "ETH", 3)
    protocol.withdraw(alice, 1_000)
    check()
    protocol.lp_withdraw(lp, 50_000)
    for o, s in subaccounts:
        for m in ("ETH", "BTC"):
            protocol.close_position(o, m, s)
    check()
    assert protocol.open_interest("ETH") == (0.0, 0.0)
    assert invariants.traders_pnl(protocol) == 0
