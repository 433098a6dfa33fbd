"""The stateful fuzz suite over the whole protocol (DESIGN §5): deposits and withdrawals; trades
that open, increase, reduce, flip and close across three markets and several subaccounts,
some isolated; time from seconds to days; oracle moves, gaps, stale feeds and disagreeing
reporters; LPs; liquidations; ADL while a bankrupt subaccount exists; trigger orders; and the
owner changing parameters. Every §5 invariant is checked after every step (stateful_base.py).

Run longer with `HYPOTHESIS_PROFILE=campaign` or `python -m tests.fuzz.campaign`.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from sim.units import WAD
from tests.fuzz import strategies as S
from tests.fuzz.settings import fuzz_settings
from tests.fuzz.stateful_base import ProtocolMachine, _sign, event, note


class ProtocolFuzz(ProtocolMachine):
    """Rules draw intents (tests/fuzz/strategies.py) and hand them to the helpers."""

    @initialize(setup=S.setups(), deposits=st.lists(S.deposits(), max_size=4),
                book=st.lists(S.trades(), min_size=2, max_size=8))
    def deploy_and_open_book(self, setup: S.Setup, deposits: list[S.Deposit], book: list[S.Trade]) -> None:
        """Deploy, then a starting book: some deposits and positions, so that a short run
        already reaches liquidations and bankruptcies."""
        self.deploy(setup)
        for i, trader in enumerate(self.traders):  # every subaccount starts with some collateral
            for sub in S.SUBACCOUNTS:
                self.deposit(trader, sub, 5_000.0 * (1 + i + 2 * sub))
        for d in deposits:
            self.deposit(self.traders[d.trader], d.subaccount, d.usd)
        for t in book:  # each position in the book, and an opposite one for ADL to find later
            self.trade(*self.resolve_trade(t), slippage=t.slippage)
            mirror = S.Trade((t.trader + 1) % len(self.traders), t.subaccount, t.market, "open", -t.side,
                             t.leverage / 2, t.fraction, t.dust, 0.05)
            self.trade(*self.resolve_trade(mirror))

    # ---------------------------------------------------------------- collateral
    @rule(d=S.deposits())
    def deposit_collateral(self, d: S.Deposit) -> None:
        self.deposit(self.traders[d.trader], d.subaccount, d.usd)

    @rule(w=S.withdrawals())
    def withdraw_collateral(self, w: S.Withdrawal) -> None:
        owner = self.traders[w.trader]
        positive = max(self.account(owner, w.subaccount).collateral, 0) // 10**12
        tokens = {"fraction": int(positive * w.fraction), "all": positive, "beyond": positive + 1}[w.mode]
        self.withdraw(owner, w.subaccount, tokens)

    @rule(trader=S.traders, subaccount=S.subaccounts, isolated=st.booleans())
    def isolate(self, trader: int, subaccount: int, isolated: bool) -> None:
        self.set_isolated(self.traders[trader], subaccount, isolated)

    # ---------------------------------------------------------------- trading
    @rule(t=S.trades())
    def trade_position(self, t: S.Trade) -> None:
        self.trade(*self.resolve_trade(t), slippage=t.slippage)

    @rule(t=S.trades())
    def trade_again(self, t: S.Trade) -> None:
        """A second trading rule: trades are most of what a venue sees."""
        self.trade(*self.resolve_trade(t), slippage=t.slippage)

    @precondition(lambda self: self.protocol is not None and self.bankrupt())
    @rule(t=S.trades())
    def trade_against_bankrupt(self, t: S.Trade) -> None:
        """Take the side opposite a bankrupt position, so that ADL has targets to find."""
        bankrupt = self.bankrupt()[t.pick % len(self.bankrupt())]
        market = self.account(*bankrupt).markets[0]
        against = -_sign(self.size(*bankrupt, market))
        trader = t.trader
        if (self.traders[trader], t.subaccount) == bankrupt:
            trader = (trader + 1) % len(self.traders)
        opening = S.Trade(trader, t.subaccount, S.MARKET_NAMES[market], "open", against, t.leverage, t.fraction,
                          t.dust, t.slippage)
        self.trade(*self.resolve_trade(opening), slippage=t.slippage)

    # ---------------------------------------------------------------- oracle and time
    @rule(move=S.price_moves())
    def move_price_feed(self, move: S.PriceMove) -> None:
        self.move_price(move)

    @rule(move=S.price_moves(kinds=("gap", "crash")))
    def gap_price_feed(self, move: S.PriceMove) -> None:
        """Gaps up to ±60%, on their own rule so that every run meets some."""
        self.move_price(move)

    @rule(step=S.time_steps())
    def pass_time(self, step: S.TimeStep) -> None:
        self.advance_time(step.seconds, step.refresh)

    # ---------------------------------------------------------------- LPs
    @rule(d=S.lp_deposits())
    def lp_deposit_collateral(self, d: S.LpDeposit) -> None:
        self.lp_deposit(self.lps[d.lp], d.usd)

    @rule(w=S.lp_withdrawals())
    def lp_withdraw_shares(self, w: S.LpWithdrawal) -> None:
        self.lp_withdraw(self.lps[w.lp], w.fraction)

    # ---------------------------------------------------------------- keepers
    @precondition(lambda self: self.protocol is not None and self.liquidatable())
    @rule(liq=S.liquidations())
    def liquidate_unhealthy(self, liq: S.Liquidation) -> None:
        owner, sub = self.liquidatable()[liq.pick % len(self.liquidatable())]
        self._liquidate_one(owner, sub, liq)

    @precondition(lambda self: self.protocol is not None and self.with_positions())
    @rule(liq=S.liquidations(anyone=True))
    def liquidate_anyone(self, liq: S.Liquidation) -> None:
        """Any subaccount with a position: healthy ones must refuse (§5.5 from the other side)."""
        owner, sub = self.with_positions()[liq.pick % len(self.with_positions())]
        self._liquidate_one(owner, sub, liq)

    def _liquidate_one(self, owner: str, sub: int, liq: S.Liquidation) -> None:
        markets = [m for m in range(len(S.MARKETS)) if self.model.sizes.get((owner, sub, m), 0)]
        market = markets[liq.market_pick % len(markets)]
        max_size = None
        if liq.max_fraction is not None:
            max_size = abs(self.model.sizes[(owner, sub, market)]) * liq.max_fraction / WAD
        self.liquidate(owner, sub, market, max_size)

    @precondition(lambda self: self.protocol is not None and (self.liquidatable() or self.bankrupt()))
    @rule(adl=S.deleveragings())
    def keepers_sweep(self, adl: S.Deleveraging) -> None:
        """What competing keepers do in a block: liquidate every liquidatable subaccount
        (its largest-notional market first), then deleverage every bankrupt one against the
        best-ranked target."""
        for owner, sub in self.liquidatable():
            markets = [m for m in range(len(S.MARKETS)) if self.model.sizes.get((owner, sub, m), 0)]
            market = max(markets, key=lambda m: abs(self.model.sizes[(owner, sub, m)]) * self.index(m)[0])
            self.liquidate(owner, sub, market)
        for bankrupt in self.bankrupt():
            self._deleverage_one(bankrupt, adl)

    @precondition(lambda self: self.protocol is not None and self.bankrupt())
    @rule(adl=S.deleveragings())
    def deleverage_bankrupt(self, adl: S.Deleveraging) -> None:
        self._deleverage_one(self.bankrupt()[adl.pick % len(self.bankrupt())], adl)

    def _deleverage_one(self, bankrupt: tuple[str, int], adl: S.Deleveraging) -> None:
        market = self.account(*bankrupt).markets[0]
        bsize = self.size(*bankrupt, market)
        target = None
        if adl.ranked:
            ranking = self.protocol.adl_ranking(market, against_size=bsize / WAD)
            if ranking:
                target = (ranking[0].owner, ranking[0].subaccount)
            event(f"adl: ranking has {'targets' if ranking else 'no target'}")
        if target is None:
            opposite = [s for s in self.with_positions()
                        if _sign(self.model.sizes.get((*s, market), 0)) == -_sign(bsize)] or self.with_positions()
            target = opposite[adl.target_pick % len(opposite)]
        size = None if adl.fraction is None else abs(bsize) * adl.fraction / WAD
        self.deleverage(bankrupt, target, market, size)

    # ---------------------------------------------------------------- trigger orders
    @rule(order=S.trigger_placements())
    def place_trigger_order(self, order: S.TriggerPlacement) -> None:
        owner, sub = self.traders[order.trader], order.subaccount
        market = self.protocol.market(order.market)
        position = self.size(owner, sub, market)
        held = sorted(k for k, v in self.model.sizes.items() if v != 0)
        if position == 0 and held and not order.stray:
            owner, sub, market = held[order.pick % len(held)]
            position = self.size(owner, sub, market)
        side = -(_sign(position) or 1)  # reduce-only: against the position (a sell with none)
        size = side * max(1, int(abs(position) * order.fraction))
        index = self.index(market)[0] / WAD
        trigger = index * (1 + order.distance)
        limit = {"none": None, "loose": index * (1.2 if side > 0 else 0.8), "tight": index}[order.limit]
        self.place_trigger(owner, sub, market, size, trigger, order.kind, limit, order.keeper_fee)

    @precondition(lambda self: self.protocol is not None and self.model.orders)
    @rule(pick=S.picks)
    def execute_trigger_order(self, pick: int) -> None:
        ids = sorted(self.model.orders)
        self.execute_trigger(ids[pick % len(ids)])

    @precondition(lambda self: self.protocol is not None and self.model.orders)
    @rule(pick=S.picks)
    def cancel_trigger_order(self, pick: int) -> None:
        ids = sorted(self.model.orders)
        self.cancel_trigger(ids[pick % len(ids)])

    # ---------------------------------------------------------------- the owner
    @rule(config=S.market_params())
    def change_market_params(self, config) -> None:
        self.set_market_params(config)

    @rule(change=S.status_changes())
    def change_market_status(self, change: S.StatusChange) -> None:
        self.set_market_status(self.protocol.market(change.market), change.paused, change.reduce_only)
        note(f"status {change}")


TestProtocolFuzz = ProtocolFuzz.TestCase
TestProtocolFuzz.settings = fuzz_settings()


class LiquidationFuzz(ProtocolMachine):
    """The same machine cut down to what reaches liquidations, bad debt and ADL: leveraged
    trades, price moves, time, keepers and the owner's parameters, so each run goes deeper."""

    deploy_and_open_book = ProtocolFuzz.deploy_and_open_book
    deposit_collateral = ProtocolFuzz.deposit_collateral
    withdraw_collateral = ProtocolFuzz.withdraw_collateral
    trade_position = ProtocolFuzz.trade_position
    trade_again = ProtocolFuzz.trade_again
    trade_against_bankrupt = ProtocolFuzz.trade_against_bankrupt
    move_price_feed = ProtocolFuzz.move_price_feed
    gap_price_feed = ProtocolFuzz.gap_price_feed
    pass_time = ProtocolFuzz.pass_time
    liquidate_unhealthy = ProtocolFuzz.liquidate_unhealthy
    liquidate_anyone = ProtocolFuzz.liquidate_anyone
    keepers_sweep = ProtocolFuzz.keepers_sweep
    deleverage_bankrupt = ProtocolFuzz.deleverage_bankrupt
    change_market_params = ProtocolFuzz.change_market_params
    _liquidate_one = ProtocolFuzz._liquidate_one
    _deleverage_one = ProtocolFuzz._deleverage_one


TestLiquidationFuzz = LiquidationFuzz.TestCase
TestLiquidationFuzz.settings = fuzz_settings()
