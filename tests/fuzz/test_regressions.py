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

from tests.fuzz import strategies as S
from tests.fuzz.stateful_base import ProtocolMachine
from tests.fuzz.test_stateful import LiquidationFuzz, ProtocolFuzz


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
    """An unexpected revert (the machine's revert policy fails on it), found reading
    TriggerOrders.execute while widening keeper fees to the size of a subaccount's equity,
    and pinned by this replay: a triggered stop-loss (5x long ETH, a $700
    keeper fee, ETH -17.5%) passed TriggerOrders' check that collateral covers the fee, then
    its trade realised the loss, and charging the fee afterwards reverted with
    "exchange: fee exceeds collateral", so the stop-loss could never execute. Fix
    (TriggerOrders.execute): charge the fee before the trade, while the collateral just
    checked is there."""
    replay(ProtocolFuzz, [
        ("deploy_and_open_book", dict(setup=S.Setup(100_000.0, 4_000_000.0, 0.0), deposits=[], book=[])),
        ("trade_position", dict(t=_trade(0, 0, "ETH", "open", 1, 5.0))),
        ("place_trigger_order", dict(order=S.TriggerPlacement(0, 0, "ETH", "stop_loss", -0.02, 1.0, 700.0, "none"))),
        ("move_price_feed", dict(move=_move("ETH", "medium", -0.175))),
        ("execute_trigger_order", dict(pick=0)),
    ])
