"""Every failure the fuzz suite found, as a named test that replays its (shrunk) program on the
state machine, checking every invariant after every step as hypothesis does.

Each test names the invariant it broke, the bug, and the fix in the contracts. The bad-input
catalogue's findings (reasonless reverts, unknown markets answered with another market's
price) are pinned by tests/unit/test_bad_inputs.py itself. The campaign's bankrupt ADL target
(§5.6, seed 3006) is pinned as a plain unit test, cut down by hand when hypothesis' shrinker
gave up: tests/unit/test_adl.py::test_a_bankrupt_position_is_never_an_adl_target.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.chain import make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig
from sim.units import WAD
from tests.fuzz import strategies as S
from tests.fuzz.stateful_base import ProtocolMachine
from tests.fuzz.test_stateful import LiquidationFuzz, ProtocolFuzz
from tests.utils.constants import PRECISION, USDC


def replay(machine: type[ProtocolMachine], steps: list[tuple[str, dict[str, Any]]]) -> ProtocolMachine:
    """Run `steps` (rule name, arguments) on a fresh machine, every invariant after each."""
    state = machine()
    try:
        for name, kwargs in steps:
            getattr(state, name)(**kwargs)
            for inv in sorted(n for n in dir(state) if n[:3] == "inv" and n[3:4].isdigit()):
                getattr(state, inv)()
    finally:
        state.teardown()
    return state


def _book(*trades: S.Trade) -> list[S.Trade]:
    return list(trades)


def _trade(trader: int, subaccount: int, market: str, kind: str, side: int, leverage: float,
           fraction: float = 0.5, slippage: float = 0.05) -> S.Trade:
    return S.Trade(trader, subaccount, market, kind, side, leverage, fraction, 1, slippage)


def _move(market: str, kind: str, move: float) -> S.PriceMove:
    return S.PriceMove(market, kind, move, (0.0, 0.0, 0.0), 0)


SWEEP = S.Deleveraging(pick=0, ranked=True, target_pick=0, fraction=None)


def test_partial_liquidation_fee_cap_left_no_room_for_settlement_rounding():
    """§5.5, found by the campaign (seed 2002; the replay here is that program cut down by
    hand: hypothesis' shrinker gave up after five minutes). A subaccount long ETH and BTC falls
    below maintenance with equity under 2.5% of notional, so the Liquidator caps the fee at
    equity x closed / notional. The fill then settles realised PnL rounded down to a whole
    token, and the margin ratio fell by that dust (0.14 token units in the campaign's case).
    Fix (Liquidator.liquidate): the cap keeps one token unit back for the settlement."""
    replay(LiquidationFuzz, [
        ("deploy_and_open_book", dict(setup=S.Setup(100_000.0, 4_000_000.0, 0.0), deposits=[], book=_book(
            _trade(0, 0, "ETH", "lever", 1, 1.0, fraction=0.3),
            _trade(0, 0, "BTC", "lever", 1, 1.0, fraction=0.9)))),
        ("move_price_feed", dict(move=_move("ETH", "medium", -0.09))),
        ("move_price_feed", dict(move=_move("BTC", "medium", -0.09))),
        ("keepers_sweep", dict(adl=SWEEP)),
    ])


def test_partial_liquidation_in_premium_mark_mode_moved_the_mark_against_the_rest():
    """§5.5, found probing what the liquidation machine reached too rarely (partial
    liquidations in premium mark mode with a small skew scale): in a market whose mark
    moves with skew (premium mode, here BTC with a skew scale of 50), closing part of a long
    lowers the skew and so the mark, and what remains of the position loses with it: here the
    margin ratio of a solvent subaccount fell from 5.2% to 4.4% (about $1,100 of equity);
    deeper in, some came out under water. Fix (Liquidator.liquidate): in premium mode a liquidation closes
    the whole position in that market."""
    btc = S.MARKETS[1].model_copy(update={"skew_scale": 50.0})
    replay(LiquidationFuzz, [
        ("deploy_and_open_book", dict(setup=S.Setup(100_000.0, 4_000_000.0, 0.0),
                                      deposits=[S.Deposit(0, 0, 15_000.0)], book=[])),
        ("change_market_params", dict(config=btc)),
        ("trade_position", dict(t=_trade(0, 0, "BTC", "open", 1, 7.5))),
        ("move_price_feed", dict(move=_move("BTC", "medium", -0.12))),
        ("keepers_sweep", dict(adl=SWEEP)),
    ])


def test_stop_loss_whose_loss_leaves_less_than_its_keeper_fee_still_executes():
    """Issue 17 item 4 (and the review's F11), found reading TriggerOrders.execute while
    widening keeper fees to the size of a subaccount's equity: a triggered stop-loss (5x long
    ETH on $5,000, a $700 keeper fee, ETH -17.5%) could not execute, because its fee was
    charged against collateral that its own loss then took away. Fix (TriggerOrders.execute,
    Exchange.charge_fee): the trade comes first, then the fee out of the equity it left, no
    more than that equity. So the stop-loss closes the whole position and its keeper gets all
    that is left: the $5,000 less the loss (12.5 ETH from $2,000 to $1,650, $4,375) and the
    taker fees, about $600, rather than $700; the subaccount keeps less than a token unit."""
    state = replay(ProtocolFuzz, [
        ("deploy_and_open_book", dict(setup=S.Setup(100_000.0, 4_000_000.0, 0.0), deposits=[], book=[])),
        ("trade_position", dict(t=_trade(0, 0, "ETH", "open", 1, 5.0))),
        ("place_trigger_order", dict(order=S.TriggerPlacement(0, 0, "ETH", "stop_loss", -0.02, 1.0, 700.0, "loose"))),
        ("move_price_feed", dict(move=_move("ETH", "medium", -0.175))),
        ("execute_trigger_order", dict(pick=0)),
    ])
    alice, keeper = state.traders[0], state.keeper
    events = state.model.events
    [executed] = [e.args for e in events if e.name == "OrderExecuted"]
    trades = [e.args for e in events if e.name == "Trade" and (e.args["owner"], e.args["subaccount"]) == (alice, 0)]
    [opened, closed] = trades
    assert executed["size"] == -opened["new_size"] and closed["new_size"] == 0  # the whole position closed
    # the collateral the trades left: the $5,000 deposited plus each fill's realised PnL (whole
    # token units, rounded down) less its fee; with nothing left open, that is the equity
    left = 5_000 * USDC + sum((t["realized_pnl"] - t["funding_paid"]) // PRECISION - t["fee"] for t in trades)
    assert 550 * USDC < left < 650 * USDC  # the hand figure: $5,000 - $4,375 - fees
    assert executed["keeper_fee"] == left  # the keeper got all of it, short of its $700
    [charged] = [e.args for e in events if e.name == "FeeCharged"]
    assert charged["amount"] == left and charged["receiver"] == keeper
    assert state.model.wallets[keeper] == left  # and it reached the keeper's wallet (inv1 checked the chain)


# ---------------------------------------------------------------- contract bugs this suite found in issue 10's contracts
# Each failed on the contracts as first changed for issue 10, and the stateful machines tripped
# on it (the invariant or check named in each). Fixes: a flat account left under water by ADL is
# bad debt like any other (Exchange._cover_if_flat); a partial close that no halving fits closes
# as much as it may, priced as it closes (Liquidator.liquidate); fees reach the keeper and the
# fund from the trader's own tokens (Exchange._charge).

def _fund(p: Protocol, who: str, minted: float, deposited: float) -> None:
    """`who` gets `minted` USDC and deposits `deposited` of it into its first subaccount."""
    p.mint(who, minted)
    p.deposit(who, deposited)


def _world(*markets: MarketConfig, **config) -> tuple[Protocol, list[str]]:
    chain = make_chain("revm")
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=markets, **config))
    people = [chain.new_account(name) for name in ("alice", "bob", "keeper")]
    return protocol, people


def test_adl_of_a_bankrupt_short_beyond_zero_records_its_shortfall():
    """inv11_every_shortfall_recorded (§5b.11, the review's F4), found by both ci machines: a
    short's bankruptcy price is mark - |equity| / |size|, and Liquidator._bankruptcy_price clamps
    it at 0. When the subaccount's loss per unit left is more than the mark (a loss realised in
    another market of the cross-margined subaccount, or earlier chunks of a liquidation the
    per-block limit split), the ADL fill at 0 does not bring its equity to zero: it ends with no
    position, collateral -$6,015 and no BadDebt, while the whole $6,017 deficit leaves the market
    as "covered". Here alice shorts $2 of ETH and $40,000 of SOL on $10,000; SOL +40% is
    liquidated first (ETH remains), so the loss is realised into collateral; the ETH dust is
    then the last position, bankrupt, and deleveraged against bob at 0."""
    eth = MarketConfig(name="ETH", initial_price=2_000.0, skew_scale=10**9, max_oi=10**6)
    sol = MarketConfig(name="SOL", initial_price=100.0, skew_scale=10**9, max_oi=10**6, imf=0.2, mmf=0.1)
    p, (alice, bob, keeper) = _world(eth, sol, vault_liquidity=1_000_000.0)
    try:
        for who in (alice, bob):
            _fund(p, who, 100_000, 10_000)
        p.trade(alice, "ETH", -0.001)
        p.trade(alice, "SOL", -400)
        p.trade(bob, "ETH", 0.001)
        p.chain.mine(12)
        p.report_all("ETH", 2_010.0)  # bob's long is in profit: an ADL target
        p.report_all("SOL", 120.0)
        p.chain.mine(12)
        p.report_all("SOL", 140.0)
        p.report_all("ETH", 2_010.0)
        p.liquidate(keeper, alice, "SOL")
        p.liquidate(keeper, alice, "ETH")
        assert p.exchange.call("accounts", alice, 0)[3]  # bankrupt
        assert p.liquidator.call("bankruptcy_price", alice, 0, 0) == 0  # clamped: mark - 6,017 / 0.001 < 0
        p.deleverage(keeper, (alice, 0), (bob, 0), "ETH")
        collateral, markets, *_ = p.exchange.call("accounts", alice, 0)
        assert markets or collateral >= 0, f"flat with collateral {collateral / 1e18:,.2f} and no bad debt recorded"
    finally:
        p.chain.close()


def test_a_partial_liquidation_that_no_halving_fits_returns_what_it_closed():
    """The liquidation helper's check (the Liquidator returns, and the block's window counts,
    what the Liquidation event closed) and §5.5, found by LiquidationFuzz: when the fill is worse
    than mark by more than equity / notional per unit (a long liquidated against a large short
    skew in an oracle-mark market), no halving of the partial close fits its share of equity;
    the loop's 16th iteration halves `close` without re-pricing it, so the Exchange closes
    `delta` (twice `close`) while the Liquidator returns `close`, adds it to the block's
    window, sizes the fee and the keeper minimum on it; and the close lowers a solvent
    subaccount's margin ratio (5.83692% -> 5.83668%)."""
    eth = MarketConfig(name="ETH", initial_price=2_000.0, skew_scale=1_000.0, max_oi=10**6,
                       liquidation_limit_scalar=100.0)
    p, (alice, bob, keeper) = _world(eth, vault_liquidity=10_000_000.0, reserve_factor=0.0)
    try:
        _fund(p, alice, 100_000, 2_500)
        _fund(p, bob, 10_000_000, 1_000_000)
        p.trade(alice, "ETH", 10)
        p.trade(bob, "ETH", -210)  # skew -200: a sell fills about 20% below index
        p.chain.mine(12)
        p.report_all("ETH", 1_870.0)  # alice: equity $1,091, maintenance $1,169
        before = p.exchange.call("health", alice, 0)
        cursor = p.chain.events_since(0)[1]
        closed = p.liquidate(keeper, alice, "ETH")
        liquidations = [e.args for e in p.chain.events_since(cursor)[0] if e.name == "Liquidation"]
        closed_by_events = sum(-e["size"] for e in liquidations) / WAD
        assert closed == closed_by_events == p.liquidator.call("windows", 0)[1] / WAD
        after = p.exchange.call("health", alice, 0)
        if p.account_markets(alice) and not p.exchange.call("accounts", alice, 0)[3]:  # a partial liquidation
            assert after[0] * before[3] >= before[0] * after[3], "the partial close lowered the margin ratio"
    finally:
        p.chain.close()


def test_a_keeper_is_paid_the_fee_its_trader_pays_while_the_vault_is_in_debt():
    """The trigger helper's check (the keeper gets the order's fee, or all the equity the trade
    left), found by ProtocolFuzz after a bank run: charge_fee takes the fee from the trader's
    collateral, whose tokens go to the Vault (`_settle_with_vault`), which first settles what
    the Vault owes the Exchange; the Vault, empty, then pays the keeper min(fee, balance) = 0.
    Bob pays the $100 fee of his take-profit, FeeCharged says 0 and the keeper gets nothing:
    the fee went to the Vault's debt. Liquidation fees (keeper and fund shares) and the
    taker fee's fund share take the same road."""
    eth = MarketConfig(name="ETH", initial_price=2_000.0, skew_scale=10**9, max_oi=10**6, taker_fee=0.0)
    p, (alice, bob, keeper) = _world(eth, vault_liquidity=1_000.0, reserve_factor=0.0)
    try:
        for who in (alice, bob):
            _fund(p, who, 100_000, 20_000)
        p.trade(alice, "ETH", 50)
        p.trade(bob, "ETH", 5)
        order = p.place_trigger(bob, "ETH", -5, 2_100.0, kind="take_profit", keeper_fee=100.0)
        p.chain.mine(12)
        p.report_all("ETH", 2_200.0)
        p.close_position(alice, "ETH")  # +$10,000 against a $1,000 Vault: it owes the Exchange $9,000
        assert p.exchange.call("vault_debt") > 0 and p.usdc.call("balanceOf", p.vault.address) == 0
        p.chain.mine(12)
        before = p.exchange.call("accounts", bob, 0)[0]
        cursor = p.chain.events_since(0)[1]
        p.execute_trigger(keeper, order)
        events = p.chain.events_since(cursor)[0]
        [trade] = [e.args for e in events if e.name == "Trade"]
        realised = (trade["realized_pnl"] - trade["funding_paid"]) // PRECISION * PRECISION
        taken = before + realised - p.exchange.call("accounts", bob, 0)[0]
        assert taken == 100 * USDC * PRECISION  # bob paid the whole fee
        assert p.usdc.call("balanceOf", keeper) == 100 * USDC, "the keeper did not get the fee bob paid"
    finally:
        p.chain.close()


def test_liquidation_at_a_zero_premium_mark_reverts_with_no_division_by_zero():
    """The liquidation helper's "reverted without a reason", found by a `make fuzz` campaign
    (LiquidationFuzz, seed 1): in `premium` mark mode the mark is index x (1 + skew /
    skew_scale), the premium clamped at -100%. Once the owner lowered BTC's skew_scale below the
    short open interest, the mark was 0, so every position's notional and margin were 0; a dust
    long under water was liquidatable, and the Liquidator divided by its notional (0): a panic,
    not a reason. It now closes the position whole, as for any account whose equity cannot be
    shared out over its notional."""
    btc = MarketConfig(name="BTC", initial_price=30_000.0, skew_scale=1_000.0, max_oi=1_000.0, mark_mode="premium",
                       liquidation_limit_scalar=0.0, min_keeper_fee=0.0)
    p, (alice, bob, keeper) = _world(btc, vault_liquidity=10_000_000.0, reserve_factor=0.0)
    try:
        _fund(p, alice, 100_000, 1_000)
        _fund(p, bob, 10_000_000, 2_000_000)
        p.trade(alice, "BTC", 0.1)
        p.trade(bob, "BTC", -60)  # skew -59.9
        p.set_market_params(btc.model_copy(update={"skew_scale": 50.0}))  # the short skew is beyond the scale
        p.chain.mine(12)
        p.report_all("BTC", 30_000.0)
        assert p.exchange.call("mark_price", 0) == 0
        health = p.exchange.call("health", alice, 0)
        assert health[3] == 0 and health[0] < 0  # notional 0 at a zero mark, equity under water
        assert p.liquidator.call("is_liquidatable", alice, 0)
        closed = p.liquidate(keeper, alice, "BTC")
        assert closed in (0.0, 0.1)  # closed whole, or declared bankrupt: never a panic
        assert closed == 0.0 or p.position(alice, "BTC").size_wad == 0
    finally:
        p.chain.close()
