"""The refusal predicates (tests/fuzz/refusals.py) on hand-built states, both ways: each says
yes where its reason holds, and no just inside the line. The counterfactual ones change
nothing: the chain is where it was after they answer.

(test_over_strict.py shows the "no" side inside the state machine; the "yes" side of most
predicates runs in every ci example, but a Vault running dry is rare there.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.chain import make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig
from sim.units import WAD, to_usdc
from tests.fuzz.refusals import Refusals
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT

# imf 20%, unrealised PnL may leave (the Mango switch), no taker fee: round numbers
SOL = MarketConfig(name="SOL", initial_price=100.0, imf=0.2, mmf=0.1, taker_fee=0.0, skew_scale=10**9,
                   max_oi=10**6, allow_unrealized_withdrawal=True)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Protocol, Refusals, str]]:
    """Alice: $10,000 of collateral, long 400 SOL from $100 ($40,000, 4x); SOL then at $150
    ($20,000 of unrealised profit); a Vault of $1,000."""
    chain = make_chain("revm")
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=(SOL,), vault_liquidity=1_000.0))
    alice = chain.new_account("alice")
    protocol.mint(alice, 10_000)
    protocol.deposit(alice, 10_000)
    protocol.trade(alice, "SOL", 400)
    protocol.report_all("SOL", 150.0)
    yield protocol, Refusals(protocol, protocol.deployer), alice
    chain.close()


@pytest.fixture
def state(world) -> Iterator[tuple[Protocol, Refusals, str]]:
    protocol = world[0]
    snap = protocol.snapshot()
    yield world
    protocol.revert(snap)


def _balances(protocol: Protocol, alice: str) -> tuple:
    return (protocol.usdc.call("balanceOf", protocol.vault.address), protocol.exchange.call("accounts", alice, 0),
            protocol.exchange.call("health", alice, 0), protocol.usdc.call("totalSupply"))


def test_a_vault_that_cannot_lend_unrealised_pnl(state) -> None:
    """Withdrawing $15,000 takes $5,000 of profit the Vault ($1,000) must lend: refused, and
    both the view predicate and the counterfactual one say so; $10,500 needs $500: allowed."""
    protocol, r, alice = state
    before = _balances(protocol, alice)
    tokens = to_usdc(15_000)

    def withdraw() -> None:
        protocol.withdraw(alice, tokens / 10**6)

    assert r.vault_cannot_lend(alice, 0, tokens) and r.vault_runs_dry(withdraw)
    assert _balances(protocol, alice) == before  # the counterfactual left nothing behind
    with reverts("vault: insufficient liquidity"):
        withdraw()
    tokens = to_usdc(10_500)
    assert not r.vault_cannot_lend(alice, 0, tokens) and not r.vault_runs_dry(withdraw)
    withdraw()


def test_a_trade_below_initial_margin(state) -> None:
    """Equity $30,000. 400 SOL more makes 800 at $150: $120,000 of notional, $24,000 of
    initial margin, allowed; 700 more makes $165,000 and $33,000, refused."""
    protocol, r, alice = state

    def buy(units: int):
        return lambda: protocol.exchange.transact("trade", 0, 0, units * WAD, MAX_UINT, sender=alice)

    before = _balances(protocol, alice)
    assert r.below_initial_margin_after(alice, 0, buy(700))
    assert _balances(protocol, alice) == before
    with reverts("exchange: below initial margin"):
        buy(700)()
    assert not r.below_initial_margin_after(alice, 0, buy(400))
    buy(400)()
