"""The refusal predicates (tests/fuzz/refusals.py) on hand-built states, both ways: each says
yes where its reason holds and the contract refuses, and no just inside the line, where the
contract lets the action through. The counterfactual ones change nothing: the chain is where
it was after they answer.

(test_over_strict.py shows the "no" side inside the state machine; the "yes" side of most
predicates runs in every ci example, but some states are rare there: a Vault in debt to the
Exchange, a disputed band at a margin check, an ADL target with no room.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sim.chain import make_chain
from sim.protocol import MarketConfig, OracleConfig, Protocol, ProtocolConfig
from sim.units import WAD, to_usdc
from tests.fuzz.refusals import Refusals
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT

# imf 20%, unrealised PnL may leave (the Mango switch), no taker fee, no price impact: round numbers
SOL = MarketConfig(name="SOL", initial_price=100.0, imf=0.2, mmf=0.1, taker_fee=0.0, skew_scale=10**9,
                   max_oi=10**6, allow_unrealized_withdrawal=True)
# the same with impact (skew scale 10,000 SOL), for the skew bound, and a liquidation limit of
# 0.0005 x 10,000 x 4 = 20 SOL a block
SOL_IMPACT = SOL.model_copy(update={"skew_scale": 10_000.0, "taker_fee": 0.0005, "liquidation_limit_scalar": 4.0})
DIME = 10**17  # USD 1e18: the figures below hold to the dime (price impact and a block of funding aside)
GUARDED = OracleConfig(max_age=3_600, min_reporters=2, max_deviation=0.1, breach_timeout=300)


def _deploy(*markets: MarketConfig, **config) -> tuple[Protocol, Refusals, list[str]]:
    chain = make_chain("revm")
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=markets, **config))
    people = [chain.new_account(name) for name in ("alice", "bob", "carol", "keeper", "lp")]
    for who in people:
        protocol.mint(who, 10_000_000)
    return protocol, Refusals(protocol, protocol.deployer), people


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Protocol, Refusals, str]]:
    """Alice: $10,000 of collateral, long 400 SOL from $100 ($40,000, 4x); SOL then at $150
    ($20,000 of unrealised profit); a Vault of $1,000 with no reserve."""
    protocol, refusals, (alice, *_) = _deploy(SOL, vault_liquidity=1_000.0, reserve_factor=0.0)
    protocol.deposit(alice, 10_000)
    protocol.trade(alice, "SOL", 400)
    protocol.report_all("SOL", 150.0)
    yield protocol, refusals, alice
    protocol.chain.close()


@pytest.fixture
def state(world) -> Iterator[tuple[Protocol, Refusals, str]]:
    protocol = world[0]
    snap = protocol.snapshot()
    yield world
    protocol.revert(snap)


def _balances(protocol: Protocol, alice: str) -> tuple:
    return (protocol.usdc.call("balanceOf", protocol.vault.address), protocol.exchange.call("accounts", alice, 0),
            protocol.exchange.call("health", alice, 0), protocol.usdc.call("totalSupply"),
            protocol.exchange.call("vault_debt"), protocol.vault.call("reserve_factor"))


def _withdraw(protocol: Protocol, who: str, usd: float) -> Callable[[], None]:
    return lambda: protocol.withdraw(who, usd)


def test_a_vault_that_cannot_lend_unrealised_pnl(state) -> None:
    """Withdrawing $15,000 takes $5,000 of profit the Vault ($1,000) must lend: refused;
    $10,500 needs $500: allowed."""
    protocol, r, alice = state
    assert r.vault_cannot_lend(alice, 0, to_usdc(15_000))
    with reverts("vault: insufficient liquidity"):
        _withdraw(protocol, alice, 15_000)()
    assert not r.vault_cannot_lend(alice, 0, to_usdc(10_500))
    _withdraw(protocol, alice, 10_500)()


def test_a_trade_below_initial_margin(state) -> None:
    """Equity $30,000. 400 SOL more makes 800 at $150: $120,000 of notional, $24,000 of
    initial margin, allowed; 700 more makes $165,000 and $33,000, refused."""
    protocol, r, alice = state

    def buy(units: int):
        return lambda: protocol.exchange.transact("trade", 0, 0, units * WAD, MAX_UINT, sender=alice)

    before = _balances(protocol, alice)
    assert r.below_initial_margin_after(alice, 0, buy(700))
    assert _balances(protocol, alice) == before  # the counterfactual left nothing behind
    with reverts("exchange: below initial margin"):
        buy(700)()
    assert not r.below_initial_margin_after(alice, 0, buy(400))
    buy(400)()


def test_a_vault_in_debt_to_the_exchange(state) -> None:
    """Alice closes: +$20,000, of which the $1,000 Vault pays all it has and owes the rest
    ($19,000 of `vault_debt`); the Exchange holds her $10,000 and that $1,000, against $30,000
    of collateral. Withdrawing $12,000 needs $1,000 of the debt, which the empty Vault cannot
    pay: refused (`exchange: vault illiquid`); $11,000: allowed. Once the Vault holds $5,000
    (a donation), the Exchange collects what it needs first: $12,000 goes through."""
    protocol, r, alice = state
    protocol.close_position(alice, "SOL")
    assert protocol.exchange.call("vault_debt") == pytest.approx(19_000 * WAD, abs=DIME)
    before = _balances(protocol, alice)
    assert r.exchange_illiquid(alice, 0, to_usdc(12_000)) and not r.vault_cannot_lend(alice, 0, to_usdc(12_000))
    assert _balances(protocol, alice) == before
    with reverts("exchange: vault illiquid"):
        _withdraw(protocol, alice, 12_000)()
    assert not r.exchange_illiquid(alice, 0, to_usdc(11_000))
    snap = protocol.snapshot()
    _withdraw(protocol, alice, 11_000)()
    protocol.revert(snap)
    protocol.usdc.transact("mint", protocol.vault.address, to_usdc(5_000), sender=protocol.deployer)
    assert not r.exchange_illiquid(alice, 0, to_usdc(12_000))
    _withdraw(protocol, alice, 12_000)()  # the Exchange collected $1,000 of its debt first
    assert protocol.exchange.call("vault_debt") == pytest.approx(18_000 * WAD, abs=DIME)


def test_a_redemption_worth_less_than_a_token_unit(state) -> None:
    """An LP's micro-share is worth a token unit at $1 a share, and nothing once alice's
    profit has taken the share price below $1: refused (`vault: zero amount`)."""
    protocol, r, alice = state
    lp = protocol.chain.new_account("lp")
    protocol.report_all("SOL", 100.0)
    protocol.lp_deposit(lp, 100_000)
    assert not r.lp_payout_zero(10**12)
    snap = protocol.snapshot()
    protocol.vault.transact("withdraw", 10**12, sender=lp)
    protocol.revert(snap)
    protocol.report_all("SOL", 150.0)  # the Vault owes alice $20,000 of its $101,000
    assert protocol.vault.call("share_price") < WAD
    assert r.lp_payout_zero(10**12) and not r.lp_payout_zero(10**18)
    with reverts("vault: zero amount"):
        protocol.vault.transact("withdraw", 10**12, sender=lp)


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[Protocol, Refusals, list[str]]]:
    """Alice: $10,000, long 400 SOL from $100 (4x, $8,000 of initial margin); the feed guarded
    at 10% with two reporters needed; a Vault of $100,000 with no reserve."""
    protocol, refusals, people = _deploy(SOL, oracle=GUARDED, reporters=3, vault_liquidity=100_000.0,
                                         reserve_factor=0.0)
    alice = people[0]
    protocol.deposit(alice, 10_000)
    protocol.trade(alice, "SOL", 400)
    protocol.chain.mine(12)
    yield protocol, refusals, people
    protocol.chain.close()


def test_a_withdrawal_is_margined_at_the_worse_end_of_a_disputed_band(guarded) -> None:
    """SOL reported at $89 (beyond the 10% guard): the feed holds $100 and is invalid, and the
    band is $89-$100. At $100 alice has $10,000 of equity and $8,000 of initial margin; at $89,
    $5,600 and $7,120. `worst_health` reads the $89 end (and changes nothing): a $1,000
    withdrawal, fine at $100, is refused; with the band closed again at $100 it goes through."""
    protocol, r, (alice, *_) = guarded
    snap = protocol.snapshot()
    try:
        protocol.report_all("SOL", 89.0)
        assert protocol.oracle.call("price_band", 0)[1:] == (89 * WAD, 100 * WAD, False)
        assert r.worst_health(alice, 0)[:2] == pytest.approx((5_600 * WAD, 7_120 * WAD), abs=DIME)
        assert protocol.exchange.call("health", alice, 0)[:2] == pytest.approx((10_000 * WAD, 8_000 * WAD), abs=DIME)
        assert r.withdrawal_below_initial_margin(alice, 0, to_usdc(1_000))
        with reverts("exchange: below initial margin"):
            _withdraw(protocol, alice, 1_000)()
        protocol.chain.mine(12)
        protocol.report_all("SOL", 100.0)  # back inside the guard: valid, no band
        assert not r.withdrawal_below_initial_margin(alice, 0, to_usdc(1_000))
        _withdraw(protocol, alice, 1_000)()
    finally:
        protocol.revert(snap)


def test_a_trade_that_would_use_the_vaults_reserve(guarded) -> None:
    """A reserve of 50% of open interest against the Vault's $100,000 allows $200,000 of it:
    alice holds $40,000, so bob may add $160,000 (1,600 SOL) and not 1,700; a trade beyond both
    the reserve and bob's margin is judged on the reserve alone (the counterfactual lowers
    his margin fractions too)."""
    protocol, r, (alice, bob, *_) = guarded
    snap = protocol.snapshot()
    try:
        protocol.vault.transact("set_reserve_factor", WAD // 2, sender=protocol.deployer)
        protocol.deposit(bob, 40_000)

        def buy(units: int):
            return lambda: protocol.exchange.transact("trade", 0, 0, units * WAD, MAX_UINT, sender=bob)

        before = _balances(protocol, bob)
        assert r.vault_reserve_exceeded_after(bob, 0, 0, buy(1_700))
        assert _balances(protocol, bob) == before
        with reverts("exchange: vault reserve exceeded"):
            buy(1_700)()
        assert r.below_initial_margin_after(bob, 0, buy(2_100))  # $210,000 needs $42,000 of margin
        assert r.vault_reserve_exceeded_after(bob, 0, 0, buy(2_100))
        assert not r.vault_reserve_exceeded_after(bob, 0, 0, buy(1_600))
        buy(1_600)()
    finally:
        protocol.revert(snap)


@pytest.fixture(scope="module")
def impact() -> Iterator[tuple[Protocol, Refusals, list[str]]]:
    """SOL with price impact (skew scale 10,000) and a liquidation limit of 20 SOL a block.
    Alice and bob long 100 SOL each on $2,500 (4x); carol short 400 on $1,000,000."""
    protocol, refusals, people = _deploy(SOL_IMPACT, vault_liquidity=1_000_000.0, reserve_factor=0.0)
    alice, bob, carol = people[:3]
    for who, usd, size in ((alice, 2_500, 100), (bob, 2_500, 100), (carol, 1_000_000, -400)):
        protocol.deposit(who, usd)
        protocol.trade(who, "SOL", size)
    protocol.chain.mine(12)
    yield protocol, refusals, people
    protocol.chain.close()


def test_a_trigger_order_the_skew_moved_against_in_its_block(impact) -> None:
    """Alice's take-profit sells 50 SOL. In a block where carol has sold 200 first, the skew
    is below the block's highest: refused (`exchange: skew moved this block`); in the next
    block, carol's sale is the block's skew and it executes."""
    protocol, r, (alice, _, carol, keeper, _) = impact
    snap = protocol.snapshot()
    try:
        order = protocol.place_trigger(alice, "SOL", -50, 101.0, kind="take_profit", limit_price=50.0)
        protocol.chain.mine(12)
        protocol.report_all("SOL", 102.0)
        assert not r.skew_moved(0, -50 * WAD)
        protocol.trade(carol, "SOL", -200)
        assert r.skew_moved(0, -50 * WAD)
        with reverts("exchange: skew moved this block"):
            protocol.execute_trigger(keeper, order)
        protocol.chain.mine(12)
        assert not r.skew_moved(0, -50 * WAD)
        assert protocol.execute_trigger(keeper, order)
    finally:
        protocol.revert(snap)


def test_the_per_block_liquidation_limit(impact) -> None:
    """SOL at $80: alice and bob are below maintenance. The first liquidation closes the block's
    20 SOL; the second, in the same block, is refused (`liquidator: limit reached`); in the
    next block it goes through."""
    protocol, r, (alice, bob, _, keeper, _) = impact
    snap = protocol.snapshot()
    try:
        protocol.report_all("SOL", 80.0)
        assert all(protocol.liquidator.call("is_liquidatable", who, 0) for who in (alice, bob))
        assert not r.liquidation_limit_reached(0)
        assert protocol.liquidate(keeper, alice, "SOL") == 20.0
        assert r.liquidation_limit_reached(0)
        with reverts("liquidator: limit reached"):
            protocol.liquidate(keeper, bob, "SOL")
        protocol.chain.mine(12)
        assert not r.liquidation_limit_reached(0)
        assert protocol.liquidate(keeper, bob, "SOL") > 0
    finally:
        protocol.revert(snap)


@pytest.fixture(scope="module")
def bankrupt() -> Iterator[tuple[Protocol, Refusals, list[str]]]:
    """No insurance fund. Alice long 1,000 SOL on $20,100 (5x); bob short 500 on $10,100 (5x),
    carol short 500 on $100,000; SOL falls to $62: alice is $18,000 under water and, liquidated,
    bankrupt; bob has $29,100 of equity."""
    protocol, refusals, people = _deploy(SOL, vault_liquidity=1_000_000.0, reserve_factor=0.0)
    alice, bob, carol, keeper = people[:4]
    for who, usd, size in ((alice, 20_100, 1_000), (bob, 10_100, -500), (carol, 100_000, -500)):
        protocol.deposit(who, usd)
        protocol.trade(who, "SOL", size)
    protocol.report_all("SOL", 62.0)
    protocol.liquidate(keeper, alice, "SOL")
    assert protocol.exchange.call("accounts", alice, 0)[3]
    yield protocol, refusals, people
    protocol.chain.close()


def test_an_adl_target_with_no_room_above_maintenance(bankrupt) -> None:
    """Bob takes his profit out at $62, down to initial margin ($6,200 on 500 SOL); at $68 he
    has $3,200 of equity against $3,400 of maintenance margin, though his short still shows a
    profit. Alice's bankruptcy price is then $79.90 ($11,900 / 1,000 above mark): each unit
    closed there costs a target $11.90 against mark and frees only $6.80 of its maintenance
    margin, so bob has room for none (`liquidator: target equity too low`); carol has room for
    all of it."""
    protocol, r, (alice, bob, carol, keeper, _) = bankrupt
    snap = protocol.snapshot()
    try:
        protocol.withdraw(bob, 22_900)
        protocol.chain.mine(12)
        protocol.report_all("SOL", 68.0)
        equity, _, maintenance, _ = protocol.exchange.call("health", bob, 0)
        assert (equity, maintenance) == pytest.approx((3_200 * WAD, 3_400 * WAD), abs=DIME)
        assert protocol.lens.call("position_pnl", bob, 0, 0) > 0
        assert protocol.liquidator.call("bankruptcy_price", alice, 0, 0) == pytest.approx(79.9 * WAD, abs=DIME)
        assert r.adl_target_equity_too_low((alice, 0), (bob, 0), 0, MAX_UINT)
        with reverts("liquidator: target equity too low"):
            protocol.deleverage(keeper, (alice, 0), (bob, 0), "SOL")
        assert not r.adl_target_equity_too_low((alice, 0), (carol, 0), 0, MAX_UINT)
        protocol.deleverage(keeper, (alice, 0), (carol, 0), "SOL")
    finally:
        protocol.revert(snap)


def test_a_bankrupt_that_recovered(bankrupt) -> None:
    """Under water at $62, alice's position is ADL's to close; back at $85 her equity is $5,100
    again: ADL is refused (`liquidator: bankrupt recovered`) and she is discharged instead."""
    protocol, r, (alice, bob, _, keeper, _) = bankrupt
    snap = protocol.snapshot()
    try:
        assert not r.bankrupt_recovered(alice, 0)
        protocol.chain.mine(12)
        protocol.report_all("SOL", 85.0)
        assert r.bankrupt_recovered(alice, 0)
        with reverts("liquidator: bankrupt recovered"):
            protocol.deleverage(keeper, (alice, 0), (bob, 0), "SOL")
        protocol.discharge(keeper, alice)
        assert not protocol.exchange.call("accounts", alice, 0)[3]
    finally:
        protocol.revert(snap)


def test_predicates_leave_no_trace(state) -> None:
    """Every counterfactual predicate answers from a snapshot it rolls back."""
    protocol, r, alice = state
    before = _balances(protocol, alice)
    events = protocol.chain.events_since(0)[1]
    block = (protocol.chain.block_number, protocol.chain.timestamp)
    r.worst_health(alice, 0)
    r.vault_reserve_exceeded_after(alice, 0, 0, lambda: protocol.trade(alice, "SOL", 10))
    r.negative_equity_after(alice, 0, lambda: protocol.close_position(alice, "SOL"))
    r.attempt(lambda: protocol.close_position(alice, "SOL"))
    assert _balances(protocol, alice) == before
    assert protocol.chain.events_since(0)[1] == events
    assert (protocol.chain.block_number, protocol.chain.timestamp) == block
