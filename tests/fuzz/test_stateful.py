"""The stateful fuzz suite over the whole protocol (DESIGN §5): deposits and withdrawals; trades
that open, increase, reduce, flip and close across three markets and several subaccounts,
some isolated; time from seconds to days; oracle moves, gaps, stale feeds and disagreeing
reporters; LPs, LP runs on a reserve and bank runs on the Vault; liquidations (over several
blocks where the per-block limit holds them back); ADL while a bankrupt subaccount exists and
discharge once it recovers; trigger orders; and the owner changing parameters. Every §5
invariant, and §5b's "every shortfall recorded" and "always closable", is checked after every
step (stateful_base.py), and every refusal against its reason (refusals.py).

Every rule is valid in every state (no preconditions, nothing filtered): each resolves its
drawn intent against the chain. Liquidation, bankruptcy, ADL and trigger execution are
reached by construction through the whale storyline (`whale_crash`), a reserve-limited LP
withdrawal through `lp_run`; test_coverage.py asserts that the `ci` run reaches them.

Run longer with `HYPOTHESIS_PROFILE=campaign` or `python -m tests.fuzz.campaign`.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from sim.units import WAD, to_wad
from tests.fuzz import strategies as S
from tests.fuzz.settings import fuzz_settings
from tests.fuzz.stateful_base import ProtocolMachine, _sign, note
from tests.utils.constants import PRECISION, USDC


MAX_RESERVE_FACTOR = 100.0  # Vault.vy's bound
WHALE_RESERVE_FACTOR = 0.1  # the most reserve a whale storyline keeps (set-up draws up to 2.0)
KEEPER_BLOCKS = 8  # blocks the keepers come back for a liquidation the per-block limit held back
BLOCK_SECONDS = 12


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
        for lp, stake in zip(self.lps, S.LP_STAKES):  # and every LP with a stake in the Vault
            self.lp_deposit(lp, stake)
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

    @rule(t=S.trades())
    def trade_against_bankrupt(self, t: S.Trade) -> None:
        """Take the side opposite a bankrupt position, so that ADL has targets to find (with
        no bankrupt subaccount, opposite the `pick`-th open position, which may become one)."""
        against = self.bankrupt() or self.with_positions()
        if not against:
            self.trade(*self.resolve_trade(t), slippage=t.slippage)
            return
        owner, sub = against[t.pick % len(against)]
        markets = self.account(owner, sub).markets
        market = markets[t.pick % len(markets)]
        trader = t.trader
        if self.traders[trader] == owner and t.subaccount == sub:
            trader = (trader + 1) % len(self.traders)
        opening = S.Trade(trader, t.subaccount, S.MARKET_NAMES[market], "open", -_sign(self.size(owner, sub, market)),
                          t.leverage, t.fraction, t.dust, t.slippage)
        self.trade(*self.resolve_trade(opening), slippage=t.slippage)

    @rule(c=S.cap_trades())
    def trade_to_the_cap(self, c: S.CapTrade) -> None:
        """The open-interest cap at its boundary (strategies.CapTrade)."""
        market = self.protocol.market(c.market)
        state = self.protocol.exchange.call("market_states", market)
        cap = self.protocol.exchange.call("markets", market)[6]
        room = max(cap - (state[0] if c.side > 0 else state[1]), 0)
        size = room + 1 if c.beyond else int(room * c.fraction)
        if size == 0:
            self.path("cap: no room")
            return
        owner, sub = self.traders[c.trader], S.WHALE_SUBACCOUNTS + self.whales
        self.whales += 1
        price = self.index(market)[0]
        collateral = round(size * price // WAD * 3 * self.model.configs[market].imf / WAD + 1_000.0, 2)
        self.mint(owner, collateral)
        self.deposit(owner, sub, collateral)
        self.trade(owner, sub, market, c.side * size)

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
        self.lp_withdraw(self.lps[w.lp], w.fraction, dust=w.dust)

    @rule(lp=S.lps, run=S.lp_runs)
    def lp_run(self, lp: int, run: S.LpRun) -> None:
        """An LP rushes for the exit with all its shares, after the owner sizes the reserve
        from the open interest so that it holds the exit back (what stays would be half the
        payout short of it) or lets it go (with twice the payout to spare), by construction
        rather than by luck; or (`everyone`) a bank run (`vault_run`)."""
        if run == "everyone":
            self.vault_run()
            return
        who = self.lps[lp]
        payout = self.refusals.lp_payout(self.protocol.vault.call("shares", who)) * PRECISION
        held = self.protocol.usdc.call("balanceOf", self.protocol.vault.address) * PRECISION
        reserve = max(held - (payout // 2 if run == "held back" else 2 * payout), 0)
        open_interest = self.protocol.exchange.call("open_interest_notional")
        if open_interest == 0:
            self.path("lp run: no open interest to reserve against")
        else:
            self.set_reserve_factor(min(round(reserve / open_interest, 6), MAX_RESERVE_FACTOR))
        self.lp_withdraw(who, 1.0)

    def vault_run(self) -> None:
        """The owner drops the reserve, and every LP, the seed LP of set-up included, redeems
        all it can: the Vault is left with about what the traders' book is worth to them, so
        that profit it cannot pay at once becomes its debt to the Exchange, which withdrawals
        collect first (the Vault's illiquid paths; §5b.12 says closes still go through)."""
        self.set_reserve_factor(0.0)
        for lp in (*self.lps, self.seed_lp):
            self.lp_withdraw(lp, 1.0)

    # ---------------------------------------------------------------- keepers
    # No rule has a precondition: each resolves its intent against the state, and where there
    # is nothing for it to act on it asks what must be refused (a healthy subaccount, one
    # that is not bankrupt, an order that is not active), so every drawn step is valid.
    @rule(liq=S.liquidations())
    def liquidate_unhealthy(self, liq: S.Liquidation) -> None:
        """The `pick`-th liquidatable subaccount (with none, any one: it must be refused)."""
        candidates = self.liquidatable() or self.with_positions() or self.subaccounts()
        self._liquidate_one(*candidates[liq.pick % len(candidates)], liq)

    @rule(liq=S.liquidations(anyone=True))
    def liquidate_anyone(self, liq: S.Liquidation) -> None:
        """Any subaccount with a position: healthy ones must refuse (§5.5 from the other side)."""
        candidates = self.with_positions() or self.subaccounts()
        self._liquidate_one(*candidates[liq.pick % len(candidates)], liq)

    def _liquidate_one(self, owner: str, sub: int, liq: S.Liquidation) -> None:
        markets = [m for m in range(len(S.MARKETS)) if self.model.sizes.get((owner, sub, m), 0)]
        if not markets:
            self.liquidate(owner, sub, liq.market_pick % len(S.MARKETS))  # no position: refused
            return
        market = markets[liq.market_pick % len(markets)]
        max_size = None
        if liq.max_fraction is not None:
            max_size = abs(self.model.sizes[(owner, sub, market)]) * liq.max_fraction / WAD
        self.liquidate(owner, sub, market, max_size)

    @rule(adl=S.deleveragings())
    def keepers_sweep(self, adl: S.Deleveraging) -> None:
        """What competing keepers do: in each block, liquidate every liquidatable subaccount
        (its largest-notional market first); while the markets' per-block liquidation limits
        leave some of that for later, come back the next block (up to KEEPER_BLOCKS). Then
        discharge every bankrupt subaccount that has recovered, deleverage every other one
        against the ranked targets in turn until it is closed or no target is left, and
        execute every triggered order (those refused, once more the next block)."""
        triggered = self._triggered_orders()
        if not (self.liquidatable() or self.bankrupt() or triggered):
            self.path("keepers: nothing to do")
            return
        for block in range(KEEPER_BLOCKS):
            if block:
                self.chain.mine(BLOCK_SECONDS)
                self._collect_events()
                self.path("keepers: back the next block")
            liquidatable = self.liquidatable()
            for owner, sub in liquidatable:
                markets = [m for m in range(len(S.MARKETS)) if self.model.sizes.get((owner, sub, m), 0)]
                market = max(markets, key=lambda m: abs(self.model.sizes[(owner, sub, m)]) * self.index(m)[0])
                self.liquidate(owner, sub, market)
            limited = {m for m in range(len(S.MARKETS)) if self.refusals.liquidation_limit_reached(m)}
            if not any(self.model.sizes.get((*s, m), 0) for s in self.liquidatable() for m in limited):
                break
        for bankrupt in self.bankrupt():
            if self.health(*bankrupt).equity >= 0:
                self.discharge(bankrupt)
            else:
                self._deleverage_fully(bankrupt, adl.fraction)
        for order_id in self._triggered_orders():
            self.execute_trigger(order_id)
        if self._triggered_orders():  # refused (an earlier order moved the skew, say): once more next block
            self.chain.mine(BLOCK_SECONDS)
            self._collect_events()
            self.path("keepers: triggers again the next block")
            for order_id in self._triggered_orders():
                self.execute_trigger(order_id)

    def _deleverage_fully(self, bankrupt: tuple[str, int], first_fraction: float | None) -> None:
        """ADL a first slice of `first_fraction` of the bankrupt position (None: all it can),
        then the rest, against the best-ranked target each time."""
        market = self.account(*bankrupt).markets[0]
        fraction = first_fraction
        for _ in range(len(self.with_positions())):
            bsize = self.size(*bankrupt, market)
            ranking = self.protocol.adl_ranking(market, against_size=bsize / WAD)
            self.path(f"adl: ranking has {'targets' if ranking else 'no target'}")
            size = None if fraction is None else abs(bsize) * fraction / WAD
            if not ranking or not self.deleverage(bankrupt, (ranking[0].owner, ranking[0].subaccount), market, size):
                return
            if not self.account(*bankrupt).bankrupt:
                return
            fraction = None

    @rule(adl=S.deleveragings())
    def deleverage_bankrupt(self, adl: S.Deleveraging) -> None:
        """The `pick`-th bankrupt subaccount (with none, any one: it must be refused)."""
        candidates = self.bankrupt() or self.with_positions() or self.subaccounts()
        self._deleverage_one(candidates[adl.pick % len(candidates)], adl)

    def _deleverage_one(self, bankrupt: tuple[str, int], adl: S.Deleveraging) -> None:
        markets = self.account(*bankrupt).markets
        market = markets[0] if markets else adl.target_pick % len(S.MARKETS)
        bsize = self.size(*bankrupt, market)
        target = None
        if adl.ranked:
            ranking = self.protocol.adl_ranking(market, against_size=bsize / WAD)
            if ranking:
                target = (ranking[0].owner, ranking[0].subaccount)
            self.path(f"adl: ranking has {'targets' if ranking else 'no target'}")
        if target is None:
            opposite = [s for s in self.with_positions()
                        if _sign(self.model.sizes.get((*s, market), 0)) == -_sign(bsize)] or self.with_positions()
            target = opposite[adl.target_pick % len(opposite)] if opposite else self.subaccounts()[0]
        size = None if adl.fraction is None else abs(bsize) * adl.fraction / WAD
        self.deleverage(bankrupt, target, market, size)

    @rule(w=S.whale_crashes())
    def whale_crash(self, w: S.WhaleCrash) -> None:
        """Liquidations, bankruptcy and ADL by construction (strategies.WhaleCrash): a whale,
        its counterparties, a move the feed accepts, the keepers' sweep."""
        market = self.protocol.market(w.market)
        self._reopen(market)
        config = self.model.configs[market]
        leverage = w.leverage_share / config.imf
        fund = self.protocol.insurance_fund.call("token_balance") / USDC
        plan = self._whale_plan(market, w, leverage, fund)
        if plan is None:
            self.path("whale: the price band leaves no room for the move")
            return
        side, move, collateral = plan
        sub = S.WHALE_SUBACCOUNTS + self.whales
        self.whales += 1
        whale = self.traders[w.trader]
        self.mint(whale, collateral)
        self.deposit(whale, sub, collateral)
        price = self.index(market)[0]
        size = side * int(leverage * WAD) * int(collateral * WAD) // price
        self.trade(whale, sub, market, size)
        if self.size(whale, sub, market) == 0:
            self.path("whale: could not open")
            return
        for i in (1, 2):  # the counterparties, from fresh subaccounts with ample collateral
            counterparty = self.traders[(w.trader + i) % len(self.traders)]
            target = -side * int(abs(size) * w.target_share)
            margin = round(abs(target) * price / WAD / WAD * 2 * config.imf + 10_000.0, 2)
            self.mint(counterparty, margin)
            self.deposit(counterparty, sub, margin)
            self.trade(counterparty, sub, market, target)
            if self.size(counterparty, sub, market):  # a take-profit half-way to the move, on half the position
                self.place_trigger(counterparty, sub, market, -target // 2, price / WAD * (1 + move / 2),
                                   "take_profit", None, 1.0)
        self.move_price(S.PriceMove(w.market, "crash", move, (0.0,) * S.REPORTERS, 0))
        self.path(f"whale: crashed ({w.depth})")
        if w.cut:
            self.trade(whale, sub, market, -self.size(whale, sub, market) // 2)
        self.keepers_sweep(w.adl)

    def _whale_plan(self, market: int, w: S.WhaleCrash, leverage: float,
                    fund: float) -> tuple[int, float, float] | None:
        """(side, price move, collateral) that take the whale to `w.depth`, within the
        machine's price band (on the other side if the band leaves too little room), or None.

        At leverage L a move of x against the whale leaves equity C (1 - L x) on collateral C:
        bankrupt: the largest move, and C such that the shortfall C (L x - 1) is twice the
        fund; under water: C = $10,000 and a shortfall of half the fund (bankrupt when the
        fund holds under $200); below maintenance: C = $10,000 and equity of about half the
        maintenance margin, where a partial liquidation works (a full one in premium mode)."""
        price, initial = self.model.prices[market], S.MARKETS[market].initial_price
        room = {1: 1 - max(initial * S.PRICE_FLOOR / price, 0.1), -1: min(initial * S.PRICE_CEILING / price, 3.0) - 1}
        depth = "bankrupt" if w.depth == "under_water" and fund < 200 else w.depth
        if depth == "bankrupt":
            move, collateral = max(room.values()), 0.0
        elif depth == "under_water":
            move, collateral = (1 + fund / 20_000 / 2) / leverage, 10_000.0
        else:
            half_mm = self.model.configs[market].mmf * leverage / 2
            move, collateral = (1 - half_mm) / (leverage - half_mm), 10_000.0
        side = w.side if room[w.side] >= move else -w.side
        if depth == "bankrupt":
            move = room[side]
            loss = leverage * move - 1  # the shortfall per unit of collateral
            if loss < 0.2:
                return None
            collateral = 2 * fund / loss + 1_000.0
        if room[side] < move:
            return None
        return side, -side * move, round(collateral, 2)

    def _reopen(self, market: int) -> None:
        """The owner reopens the market, lowers a reserve that would hold the whale's trade back
        (an LP run's), and the reporters bring its feed back to valid."""
        if self.model.status[market] != (False, False):
            self.set_market_status(market, False, False)
        if self.protocol.vault.call("reserve_factor") > to_wad(WHALE_RESERVE_FACTOR):
            self.set_reserve_factor(WHALE_RESERVE_FACTOR)
        if not self.index(market)[1]:
            self.advance_time(S.ORACLE.breach_timeout, refresh=True)
            self.advance_time(S.ORACLE.breach_timeout, refresh=True)

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
        loose = index * (1.2 if side > 0 else 0.8)
        limit = {"default": None, "missing": None, "loose": loose, "tight": index}[order.limit]
        self.place_trigger(owner, sub, market, size, trigger, order.kind, limit, order.keeper_fee,
                           missing_limit=order.limit == "missing")

    @rule(pick=S.picks)
    def execute_trigger_order(self, pick: int) -> None:
        """What a keeper does: the `pick`-th triggered order (with none, the `pick`-th active
        one, which may not be triggered; with none, an inactive one: it must be refused)."""
        triggered = self._triggered_orders()
        self.execute_trigger(triggered[pick % len(triggered)] if triggered else self._order_id(pick))

    @rule(pick=S.picks)
    def cancel_trigger_order(self, pick: int) -> None:
        """The `pick`-th active order, by its owner (with none, an inactive one: refused)."""
        order_id = self._order_id(pick)
        order = self.model.orders.get(order_id)
        self.cancel_trigger(order_id, order.owner if order else self.traders[pick % len(self.traders)])

    def _triggered_orders(self) -> list[int]:
        return [i for i in sorted(self.model.orders) if self.protocol.trigger_orders.call("is_triggered", i)]

    def _order_id(self, pick: int) -> int:
        ids = sorted(self.model.orders) or list(range(max(self.protocol.trigger_orders.call("order_count"), 1)))
        return ids[pick % len(ids)]

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
    trade_to_the_cap = ProtocolFuzz.trade_to_the_cap
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
    _deleverage_fully = ProtocolFuzz._deleverage_fully
    whale_crash = ProtocolFuzz.whale_crash
    _whale_plan = ProtocolFuzz._whale_plan
    _reopen = ProtocolFuzz._reopen
    _triggered_orders = ProtocolFuzz._triggered_orders


TestLiquidationFuzz = LiquidationFuzz.TestCase
TestLiquidationFuzz.settings = fuzz_settings()
