"""The attacker state machine (issue 10): one controller, `mallory`, with three subaccounts and
LP shares, against a market with victims (traders with positions and stop-losses, LPs), and
rules that are the outside review's attack primitives. Balanced books are not enough, so after
every step the economic invariants (DESIGN §5b) are checked beside the accounting ones:

- `inv9_no_free_lunch`: an attack rule plays a whole attack and unwinds it (closes,
  redeems, withdraws). Within one block and at a constant oracle price, mallory must not end
  with more tokens than it started with, beyond the keeper fees it earned for liquidating
  accounts that were liquidatable before it acted and for executing triggered orders. Where an
  attack needs time (a breach that must persist), its exposure is hedged or the check is the
  one that matters: no value left at a price the protocol knew was disputed.
- `inv10_lps_not_robbed`: between two steps in one block, with no price accepted and no bad
  debt, the LP share price does not fall.
- `inv11_every_shortfall_recorded`: no subaccount holds negative collateral without a
  position to cover it: every shortfall went to the fund, the deficit or a write-off.
- `inv12_always_closable`: a reduce-only close never fails for lack of Vault liquidity.
- `inv13_share_maths`: an LP deposit redeemed at once returns no more than was put in, and a
  donation cannot round the next depositor's shares down.
- `inv_oracle_guard`: inside one block the accepted price stays within `max_deviation` of the
  price before the block.

`AttackerMachine.defences` switches defences off for tests/fuzz/test_defence_mutations.py: with
one off, a short campaign must find the attack it stops (the fuzzer's mutation score).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sim.chain import Chain, Reverted, make_chain
from sim.protocol import MarketConfig, OracleConfig, Protocol, ProtocolConfig
from sim.units import WAD
from tests.utils import invariants
from tests.fuzz.stateful_base import RunStats, event, note

ATTACKER = "mallory"
VICTIMS = ("alice", "bob", "carol")
LPS = ("lp-0", "lp-1")
SUBACCOUNTS = 3  # mallory's subaccounts per attack; each attack starts on three fresh ones
ETH, BTC = 0, 1
PRICES = (2_000.0, 30_000.0)
BRIBED = 2  # reporters mallory controls in `walk_reporters`, of three
GUARD = 0.1
BREACH_TIMEOUT = 300
TOKEN = 10**12  # one token unit (6 decimals) in 1e18 USD


@dataclass(frozen=True)
class Defences:
    """The defences a mutation test can switch off, each at its safe value here."""

    nav_at_close_price: bool = True
    worse_price_when_invalid: bool = True
    liquidation_limit_scalar: float = 1.0
    deviation_guard: float = GUARD


def attack_config(defences: Defences, vault_liquidity: float, insurance_fund: float) -> ProtocolConfig:
    """ETH with an oracle mark and visible impact; BTC with a premium mark, thin (the
    liquidation limit is 2 BTC a block); a guarded oracle of three reporters, two needed.
    Open interest stays within a quarter of each skew scale, as any sane market's does."""
    markets = (
        MarketConfig(name="ETH", initial_price=PRICES[ETH], skew_scale=10_000.0, max_oi=2_500.0, taker_fee=0.0005,
                     mark_mode="oracle", liquidation_limit_scalar=defences.liquidation_limit_scalar),
        MarketConfig(name="BTC", initial_price=PRICES[BTC], skew_scale=2_000.0, max_oi=500.0, taker_fee=0.001,
                     mark_mode="premium", liquidation_limit_scalar=defences.liquidation_limit_scalar),
    )
    oracle = OracleConfig(max_age=3_600, min_reporters=2, max_deviation=defences.deviation_guard,
                          breach_timeout=BREACH_TIMEOUT,
                          observation_spacing=60, worse_price_when_invalid=defences.worse_price_when_invalid)
    return ProtocolConfig(markets=markets, oracle=oracle, reporters=3, reserve_factor=0.1,
                          insurance_fund=insurance_fund, vault_liquidity=vault_liquidity,
                          nav_at_close_price=defences.nav_at_close_price)


@dataclass
class Findings:
    """Economic invariant violations found by the last step, by invariant."""

    free_lunch: list[str] = field(default_factory=list)
    lps_robbed: list[str] = field(default_factory=list)
    closes_refused: list[str] = field(default_factory=list)
    share_maths: list[str] = field(default_factory=list)
    oracle_walked: list[str] = field(default_factory=list)


class AttackerMachine(RuleBasedStateMachine):
    """mallory against victims on revm. Each attack rule is one attack, played and unwound."""

    defences = Defences()

    def __init__(self) -> None:
        super().__init__()
        self.chain: Chain | None = None
        self.protocol: Protocol | None = None
        self.findings = Findings()
        self.subaccounts: set[tuple[str, int]] = set()
        self.events: list[Any] = []
        self._cursor = 0
        self._share_mark: tuple[int, int, int, int] | None = None  # (block, timestamp, share price, events seen)
        self.base = 0  # mallory's first subaccount for the current attack
        # what mallory did in the current block, all its attacks in it together: (block,
        # wallet when the block's first attack began, income allowed since, wallet at the end
        # of the last attack)
        self._block: tuple[int, int, int, int] | None = None
        self._kept_shares = 0  # LP shares an earlier attack left (the reserve kept them): not this attack's

    def teardown(self) -> None:
        if self.chain is not None:
            self.chain.close()

    # ================================================================ set-up
    @initialize(vault=st.sampled_from([0.0, 2_000_000.0, 2_000_000.0]), insurance=st.sampled_from([0.0, 50_000.0]),
                book=st.lists(st.tuples(st.integers(0, 2), st.sampled_from([ETH, BTC]), st.sampled_from([-1, 1]),
                                        st.floats(1.0, 8.0)), min_size=2, max_size=5))
    def deploy(self, vault: float, insurance: float, book: list[tuple[int, int, int, float]]) -> None:
        """Deploy; fund mallory, the victims and the LPs; the victims open a book (and each a
        stop-loss), so that there is skew to exploit and someone to liquidate."""
        self.chain = make_chain("revm")
        self.protocol = p = Protocol.deploy(self.chain, attack_config(self.defences, vault, insurance))
        self.mallory = self.chain.new_account(ATTACKER)
        self.victims = [self.chain.new_account(v) for v in VICTIMS]
        self.lps = [self.chain.new_account(lp) for lp in LPS]
        self.keeper = self.chain.new_account("keeper")
        p.mint(self.mallory, 20_000_000)
        for v in self.victims:
            p.mint(v, 2_000_000)
            p.deposit(v, 200_000)
            self.subaccounts.add((v, 0))
        for lp in self.lps:
            p.mint(lp, 3_000_000)
        if vault > 0:
            p.lp_deposit(self.lps[0], 1_000_000)
        self.holders = [self.mallory, *self.victims, *self.lps, self.keeper, p.deployer,
                        self.chain.new_account("seed-lp")]
        for victim, market, side, leverage in book:
            self._victim_trade(victim, market, side, leverage)
        for i, victim in enumerate(self.victims):
            self._victim_stop(i)
        self._collect()
        note(f"deployed: vault {vault}, insurance {insurance}, book {book}, defences {self.defences}")

    # ================================================================ reading and bookkeeping
    def _collect(self) -> list[Any]:
        new, self._cursor = self.chain.events_since(self._cursor)
        self.events.extend(new)
        return new

    def wallet(self) -> int:
        return self.protocol.usdc.call("balanceOf", self.mallory)

    def size(self, owner: str, sub: int, market: int) -> int:
        return self.protocol.exchange.call("positions", owner, sub, market)[0]

    def share_price(self) -> int:
        return self.protocol.vault.call("share_price")

    def _try(self, what: str, action) -> Any:
        """Run an action mallory may be refused; a refusal is a path, not a failure, unless it
        is a close refused for lack of liquidity (`inv12_always_closable`)."""
        try:
            return action()
        except Reverted as exc:
            event(f"{what} refused: {exc.reason}")
            if what.startswith("close") and exc.reason in ("vault: insufficient liquidity", "exchange: vault illiquid"):
                self.findings.closes_refused.append(f"{what}: {exc.reason}")
            return None

    def _close(self, owner: str, sub: int, market: int) -> None:
        size = self.size(owner, sub, market)
        if size:
            self._try(f"close m{market}", lambda: self.protocol.trade_wad(owner, market, -size, sub, slippage=0.5))

    def sub(self, i: int) -> int:
        """mallory's `i`-th subaccount in the current attack."""
        return self.base + i

    def fresh(self) -> int:
        """Start an attack clean: whatever an earlier one left (an account walked away from
        under water, shares the reserve kept) stays out of this one's measure. Returns
        mallory's wallet, the attack's starting point.

        Attacks in one block are judged together (the invariant is about any sequence of
        mallory's actions within a block): one attack can prepare the skew another exploits.
        Capital that arrives between them (a mint, a leftover redemption) is not profit."""
        p = self.protocol
        if p.vault.call("shares", self.mallory):
            self._try("lp redeem", lambda: p.lp_withdraw(self.mallory))
        self._kept_shares = p.vault.call("shares", self.mallory)
        self.base += SUBACCOUNTS
        self.subaccounts |= {(self.mallory, self.sub(i)) for i in range(SUBACCOUNTS)}
        now = self.wallet()
        block = self.chain.block_number
        if self._block is None or self._block[0] != block:
            self._block = (block, now, 0, now)
        else:
            _, start, allowed, last_end = self._block
            self._block = (block, start + max(now - last_end, 0), allowed, now)
        return now

    def unwind(self) -> None:
        """mallory closes every position, redeems every share, withdraws every token it can.
        An account left under water is walked away from: what it held is not counted."""
        p = self.protocol
        subs = [self.sub(i) for i in range(SUBACCOUNTS)]
        for sub in subs:
            for market in (ETH, BTC):
                self._close(self.mallory, sub, market)
        self.redeem_own()
        for sub in subs:
            tokens = p.exchange.call("accounts", self.mallory, sub)[0] // TOKEN
            if tokens > 0 and not p.account_markets(self.mallory, sub):
                self._try("withdraw", lambda: p.withdraw(self.mallory, tokens / 1e6, sub))

    def redeem_own(self) -> float | None:
        """Redeem the LP shares mallory took in this attack (USD paid, or None). Shares an
        earlier attack could not redeem stay out of this one's measure: redeemed here once
        the reserve lets them go, they would count as this attack's profit (a campaign found
        exactly that: 117k "earned" by a sandwich that redeemed an older attack's shares)."""
        p, m = self.protocol, self.mallory
        own = p.vault.call("shares", m) - self._kept_shares
        if own <= 0:
            return None
        return self._try("lp redeem", lambda: p.vault.transact("withdraw", own, sender=m).return_value / 1e6)

    def keeper_fees(self, events: list[Any], accounts: set[tuple[str, int]] | None) -> int:
        """Keeper fees mallory earned in `events`: for liquidating an account in `accounts`
        (None: any) and for executing trigger orders. A fee for liquidating an account that
        only mallory's own actions made liquidatable is not allowed income."""
        p = self.protocol
        earned = 0
        for e in events:
            if e.name == "Liquidation" and e.address == p.liquidator.address and e.args["keeper"] == self.mallory:
                if accounts is None or (e.args["owner"], e.args["subaccount"]) in accounts:
                    earned += e.args["keeper_fee"]
            elif e.name == "OrderExecuted" and e.args["keeper"] == self.mallory:
                earned += e.args["keeper_fee"]
        return earned

    def next_block(self) -> None:
        """After an attack that spanned blocks, start the next in a block of its own: its last
        block's trades (closing legs opened blocks before, at other prices) are no part of a
        within-block sequence."""
        self.chain.mine(12)

    def judge(self, attack: str, start: int, allowed: int = 0) -> None:
        """After an attack is unwound: mallory's tokens beyond its start and its allowed income
        are a free lunch."""
        end = self.wallet()
        profit = end - start - allowed
        if self._block is not None and self._block[0] == self.chain.block_number:
            # the attack began and ended in this block: judge the block's attacks together
            block, block_start, block_allowed, _ = self._block
            block_allowed += allowed
            self._block = (block, block_start, block_allowed, end)
            profit = end - block_start - block_allowed
        event(f"{attack}: {'profit' if profit > 0 else 'no profit'}")
        note(f"{attack}: profit {profit / 1e6:.6f} USD beyond {allowed / 1e6:.6f} allowed")
        if profit > 0:
            self.findings.free_lunch.append(f"{attack} paid mallory {profit / 1e6:,.6f} USD")

    def liquidatable(self) -> set[tuple[str, int]]:
        p = self.protocol
        return {s for s in sorted(self.subaccounts) if p.liquidator.call("is_liquidatable", *s)}

    def _victim_trade(self, victim: int, market: int, side: int, leverage: float) -> None:
        p, owner = self.protocol, self.victims[victim]
        equity = p.equity(owner)
        price = p.index_price(market)[0]
        size = side * max(equity, 1_000.0) * leverage / price
        self._try("victim trade", lambda: p.trade(owner, market, size))

    def _victim_stop(self, victim: int) -> None:
        """A stop-loss 2% beyond the index on the victim's largest position, default limit."""
        p, owner = self.protocol, self.victims[victim]
        sizes = [(abs(self.size(owner, 0, m)) * p.index_price(m)[0], m) for m in (ETH, BTC)]
        notional, market = max(sizes)
        size = self.size(owner, 0, market)
        if size == 0:
            return
        index = p.index_price(market)[0]
        trigger = index * (0.98 if size > 0 else 1.02)
        self._try("place stop", lambda: p.place_trigger(owner, market, -size / WAD, trigger, keeper_fee=5.0))

    def report(self, market: int, price: float, reporters: list[str] | None = None) -> None:
        p = self.protocol
        for r in reporters or p.reporters:
            p.report_price(market, float(f"{price:.10g}"), r)

    # ================================================================ attack rules
    @rule(market=st.sampled_from([ETH, BTC]), lp_usd=st.integers(10, 2_000).map(lambda k: k * 1_000.0),
          notional=st.integers(50, 4_000).map(lambda k: k * 1_000.0), side=st.sampled_from([-1, 1]),
          lp_first=st.booleans())
    def skew_then_redeem(self, market: int, lp_usd: float, notional: float, side: int, lp_first: bool) -> None:
        """F1: as LP, trade a large skew, redeem at the NAV it moved, unwind (or the mirror:
        trade, deposit at the NAV it moved, unwind, redeem). One block, a constant price."""
        p, m = self.protocol, self.mallory
        start = self.fresh()
        size = side * notional / p.index_price(market)[0]
        p.deposit(m, notional / 2, self.sub(0))
        if lp_first:
            self._try("lp deposit", lambda: p.lp_deposit(m, lp_usd))
            self._try("trade", lambda: p.trade(m, market, size, self.sub(0)))
            self.redeem_own()
        else:
            self._try("trade", lambda: p.trade(m, market, size, self.sub(0)))
            self._try("lp deposit", lambda: p.lp_deposit(m, lp_usd))
        self.unwind()
        self.judge("skew then redeem", start)

    @rule(gap=st.sampled_from([-0.5, -0.35, -0.2, 0.2, 0.35, 0.5]), notional=st.integers(20, 500).map(lambda k: k * 1_000.0),
          variant=st.sampled_from(["hedged close", "withdraw", "lp redeem"]))
    def settle_during_breach(self, gap: float, notional: float, variant: str) -> None:
        """F2: the feed reports a gap beyond the guard (invalid, the new median public). mallory
        takes value out at the disputed price, waits for the level to be accepted, unwinds.
        It spans blocks, so the next attack starts in a block of its own."""
        self._settle_during_breach(gap, notional, variant)
        self.next_block()

    def _settle_during_breach(self, gap: float, notional: float, variant: str) -> None:
        p, m = self.protocol, self.mallory
        chain = self.chain
        price = p.index_price(ETH)[0]
        if not p.index_price(ETH)[1]:
            return
        new = price * (1 + gap)
        start = self.fresh()
        size = notional / price
        funding_received = 0
        if variant == "hedged close":
            # unlevered legs: no gap here puts either under water, so walking away from a
            # bankrupt leg (a different, insured risk) is never what pays
            long, short = self.sub(0), self.sub(1)
            p.deposit(m, notional, long)
            p.deposit(m, notional, short)
            if self._try("open long", lambda: p.trade(m, ETH, size, long)) is None:
                self.unwind()
                return
            if self._try("open short", lambda: p.trade(m, ETH, -size, short)) is None:
                self.unwind()
                return
            self.report(ETH, new)
            self._close(m, long if gap < 0 else short, ETH)
        elif variant == "withdraw":
            sub = self.sub(0)
            p.deposit(m, notional / 3, sub)
            side = 1 if gap < 0 else -1  # the position the gap hurts
            if self._try("open", lambda: p.trade(m, ETH, side * size, sub)) is None:
                self.unwind()
                return
            self.report(ETH, new)
            taken = 0.0
            for fraction in (0.9, 0.6, 0.4, 0.2, 0.1, 0.05):
                amount = round(p.collateral(m, sub) * fraction, 2)
                if amount > 0 and self._try("withdraw", lambda: p.withdraw(m, amount, sub)) is not None:
                    taken = amount
                    break
            event(f"breach withdraw: {'took' if taken else 'refused'}")
        else:  # lp redeem, with the victims' skew on the Vault's books
            if self._try("lp deposit", lambda: p.lp_deposit(m, notional)) is None:
                return
            self.report(ETH, new)
            shares = p.vault.call("shares", m) - self._kept_shares
            redeemed = self.redeem_own()
        before = len(self.events)
        self._collect()
        chain.mine(BREACH_TIMEOUT)
        self.report(ETH, new)
        chain.mine(12)
        self.report(ETH, new)  # accepted
        if not p.index_price(ETH)[1]:
            self.unwind()
            return
        if variant == "withdraw":
            h = p.health(m, sub)
            # margined at the worse price, it is still at initial margin (funding over the
            # wait aside) once that price is accepted
            if taken and h.notional and h.equity < h.initial_margin * 0.999 - 1e-3:
                self.findings.free_lunch.append(
                    f"withdrew {taken} at a disputed price: equity {h.equity:,.2f} < initial margin "
                    f"{h.initial_margin:,.2f} once {new:,.2f} was accepted")
            self.unwind()
            return
        if variant == "lp redeem":
            if redeemed:
                worth = shares * self.share_price() / WAD / WAD
                if redeemed > worth * 1.001 + 0.01:  # funding moved NAV a little over the wait
                    self.findings.free_lunch.append(
                        f"redeemed {redeemed:,.2f} during a breach for shares worth {worth:,.2f} once accepted")
            self.unwind()
            return
        self.unwind()
        for e in self._collect() + self.events[before:]:
            if e.name == "Trade" and e.args["owner"] == m:
                funding_received += max(-e.args["funding_paid"], 0) // TOKEN + 1
        self.judge(f"hedged pair across a {gap:+.0%} breach", start, funding_received)

    @rule(size=st.floats(0.5, 60.0), side=st.sampled_from([-1, 1]))
    def push_mark_then_liquidate(self, size: float, side: int) -> None:
        """F3: trade BTC (premium mark) to push the mark, liquidate whoever is liquidatable,
        trade back, unwind. Only fees for accounts liquidatable before mallory acted count."""
        p, m = self.protocol, self.mallory
        already = self.liquidatable()
        start = self.fresh()
        first = len(self.events)
        self._collect()
        p.deposit(m, size * 30_000 / 2, self.sub(0))
        self._try("push", lambda: p.trade(m, BTC, side * size, self.sub(0)))
        for owner, sub in sorted(self.subaccounts):
            if owner != m and p.liquidator.call("is_liquidatable", owner, sub):
                for market in (ETH, BTC):
                    if self.size(owner, sub, market):
                        self._try("liquidate", lambda: p.liquidate(m, owner, market, sub))
        self.unwind()
        new = self._collect()
        made = {(e.args["owner"], e.args["subaccount"]) for e in new
                if e.name == "Liquidation" and e.args["keeper"] == m} - already
        if made:
            self.findings.free_lunch.append(f"liquidated {sorted(made)}, made liquidatable by mallory's own trade")
        self.judge("push the mark then liquidate", start, self.keeper_fees(new, already))
        del first

    @rule(market=st.sampled_from([ETH, BTC]), side=st.sampled_from([-1, 1]), leverage=st.floats(7.0, 9.5),
          move=st.floats(0.06, 0.09), notional=st.integers(50, 1_000).map(lambda k: k * 1_000.0),
          push=st.floats(0.05, 1.0))
    def sandwich_liquidation(self, market: int, side: int, leverage: float, move: float, notional: float,
                             push: float) -> None:
        """F3's other half: a victim's leveraged position becomes liquidatable (a move within
        the guard, in a new block). mallory trades the way the liquidation will (selling
        before a long's), liquidates, trades back and unwinds: only the keeper fee counts."""
        p, m = self.protocol, self.mallory
        victim = self.victims[1]
        sub = 100 + self.base  # a fresh subaccount of the victim's, so only this position counts
        self.subaccounts.add((victim, sub))
        p.mint(victim, notional / leverage)
        p.deposit(victim, notional / leverage, sub)
        price = p.index_price(market)[0]
        if self._try("victim opens", lambda: p.trade(victim, market, side * notional / price, sub)) is None:
            return
        self.chain.mine(12)
        for mk in (ETH, BTC):
            index = p.index_price(mk)[0]
            self.report(mk, index * (1 - side * move) if mk == market else index)
        if not p.liquidator.call("is_liquidatable", victim, sub):
            event("sandwich liquidation: victim not liquidatable")
            return
        size = self.size(victim, sub, market)
        # a long's liquidation sells: mallory sells first and buys back after
        front = -(1 if size > 0 else -1) * abs(size) / WAD * push * 10
        margin = abs(front) * p.index_price(market)[0]
        p.mint(m, margin)  # before the attack's start: capital, not profit
        start = self.fresh()
        self._collect()
        p.deposit(m, margin, self.sub(0))
        self._try("front-run", lambda: p.trade(m, market, front, self.sub(0)))
        self._try("liquidate", lambda: p.liquidate(m, victim, market, sub))
        self.unwind()
        self.judge("sandwich a liquidation", start, self.keeper_fees(self._collect(), {(victim, sub)}))

    @rule(size=st.floats(0.5, 40.0))
    def sandwich_trigger(self, size: float) -> None:
        """F12: a victim's stop-loss is triggered; mallory trades against it, executes it,
        trades back and unwinds. Only the order's keeper fee counts."""
        p, m = self.protocol, self.mallory
        p.index.sync()
        triggered = [oid for oid in sorted(p.index.orders) if p.trigger_orders.call("is_triggered", oid)]
        if not triggered:
            event("sandwich trigger: nothing triggered")
            return
        order_id = triggered[0]
        order = p.trigger_orders.call("orders", order_id)
        market, order_size = order[2], order[3]
        start = self.fresh()
        self._collect()
        side = 1 if order_size < 0 else -1  # push the fill against the order
        p.deposit(m, size * PRICES[market] / 2, self.sub(0))
        self._try("front-run", lambda: p.trade(m, market, -side * size, self.sub(0)))
        self._try("execute", lambda: p.execute_trigger(m, order_id))
        self.unwind()
        self.judge("sandwich a trigger", start, self.keeper_fees(self._collect(), set()))

    @rule(notional=st.integers(1, 50).map(lambda k: k * 1_000.0))
    def adl_after_recovery(self, notional: float) -> None:
        """F6: against a bankrupt position whose price came back, open an opposite position
        and ADL it at the old bankruptcy price."""
        p, m = self.protocol, self.mallory
        bankrupt = [s for s in sorted(self.subaccounts) if p.exchange.call("accounts", *s)[3]]
        if not bankrupt:
            event("adl after recovery: nobody bankrupt")
            return
        owner, sub = bankrupt[0]
        market = p.account_markets(owner, sub)[0]
        bsize = self.size(owner, sub, market)
        start = self.fresh()
        mine = self.sub(0)
        p.deposit(m, notional, mine)
        size = -(1 if bsize > 0 else -1) * notional / p.index_price(market)[0]
        self._try("open opposite", lambda: p.trade(m, market, size, mine))
        self._try("deleverage", lambda: p.deleverage(m, (owner, sub), (m, mine), market))
        self.unwind()
        self.judge("ADL against a bankrupt", start)

    @rule(donation=st.integers(1, 100).map(lambda k: k * 1_000.0), deposit=st.floats(0.3, 3.0))
    def donate_then_deposit(self, donation: float, deposit: float) -> None:
        """F7: in an empty Vault, deposit a dust amount, burn all but a wei of the shares,
        donate, and let a victim deposit; the victim redeems at once."""
        p, m = self.protocol, self.mallory
        if p.vault.call("total_shares") != 0:
            return
        start = self.fresh()
        victim_lp = self.lps[1]
        self._try("dust deposit", lambda: p.lp_deposit(m, 1.0))
        shares = p.vault.call("shares", m)
        if shares > 1:
            self._try("burn", lambda: p.vault.transact("withdraw", shares - 1, sender=m))
        p.usdc.transact("transfer", p.vault.address, int(donation * 1e6), sender=m)
        put = round(donation * deposit, 2)
        before = p.token_balance(victim_lp)
        if self._try("victim deposit", lambda: p.lp_deposit(victim_lp, put)) is not None:
            got = self._try("victim redeem", lambda: p.lp_withdraw(victim_lp))
            lost = before - p.token_balance(victim_lp)
            if got is not None and lost > 0.01:
                self.findings.share_maths.append(f"a donation of {donation:,.0f} cost the next depositor {lost:,.6f}")
        self.unwind()
        self.judge("donate then deposit", start)

    @rule(step=st.floats(0.02, 0.09), rounds=st.integers(2, 12), up=st.booleans())
    def walk_reporters(self, step: float, rounds: int, up: bool) -> None:
        """F8: two bribed reporters step the price, each step inside the guard, in one block."""
        p = self.protocol
        self.chain.mine(12)
        for market in (ETH, BTC):
            self.report(market, p.index_price(market)[0])
        self.chain.mine(12)
        reference = p.index_price(ETH)[0]
        price = reference
        for _ in range(rounds):
            price *= (1 + step) if up else (1 - step)
            self.report(ETH, price, p.reporters[:BRIBED])
        index, valid = p.index_price(ETH)
        if valid and abs(index - reference) > GUARD * reference * 1.000001:
            self.findings.oracle_walked.append(f"walked {reference:,.2f} to {index:,.2f} in one block")
        for _ in range(2):  # honest reports restore the price
            self.chain.mine(BREACH_TIMEOUT + 12)
            self.report(ETH, reference)

    @rule(usd=st.integers(1, 500_000).map(float))
    def lp_round_trip(self, usd: float) -> None:
        """Share maths: deposit and redeem at once returns no more than was put in."""
        p, m = self.protocol, self.mallory
        if p.vault.call("shares", m):
            return
        start = self.fresh()
        if p.vault.call("shares", m):
            return
        if self._try("lp deposit", lambda: p.lp_deposit(m, usd)) is None:
            return
        self._try("lp redeem", lambda: p.lp_withdraw(m))
        if self.wallet() > start:
            self.findings.share_maths.append(f"an LP round trip of {usd:,.0f} returned {(self.wallet() - start) / 1e6} more")

    # ================================================================ the market goes on
    @rule(victim=st.integers(0, 2), market=st.sampled_from([ETH, BTC]), side=st.sampled_from([-1, 1]),
          leverage=st.floats(1.0, 9.5))
    def victim_trades(self, victim: int, market: int, side: int, leverage: float) -> None:
        self._victim_trade(victim, market, side, leverage)

    @rule(victim=st.integers(0, 2))
    def victim_places_stop(self, victim: int) -> None:
        self._victim_stop(victim)

    @rule(market=st.sampled_from([ETH, BTC]), move=st.floats(-0.08, 0.08))
    def price_moves(self, market: int, move: float) -> None:
        """A new block, and every reporter reports a move within the guard."""
        self.chain.mine(12)
        p = self.protocol
        for m in (ETH, BTC):
            index = p.index_price(m)[0]
            self.report(m, index * (1 + move) if m == market else index)

    @rule(market=st.sampled_from([ETH, BTC]), gap=st.sampled_from([-0.5, -0.3, 0.3, 0.6]))
    def gap_accepted(self, market: int, gap: float) -> None:
        """A real gap: beyond the guard, persisting past the timeout, accepted."""
        p = self.protocol
        price = p.index_price(market)[0] * (1 + gap)
        price = min(max(price, PRICES[market] * 0.1), PRICES[market] * 10)
        self.chain.mine(12)
        self.report(market, price)
        self.chain.mine(BREACH_TIMEOUT)
        for m in (ETH, BTC):
            self.report(m, price if m == market else p.index_price(m)[0])
        self.chain.mine(12)
        for m in (ETH, BTC):
            self.report(m, price if m == market else p.index_price(m)[0])

    @rule()
    def honest_keepers(self) -> None:
        """Liquidate the liquidatable, deleverage the bankrupt, discharge the recovered."""
        p = self.protocol
        for owner, sub in sorted(self.liquidatable()):
            for market in p.account_markets(owner, sub):
                self._try("keeper liquidate", lambda: p.liquidate(self.keeper, owner, market, sub))
        for owner, sub in sorted(self.subaccounts):
            acct = p.exchange.call("accounts", owner, sub)
            if not acct[3]:
                continue
            if p.equity(owner, sub) >= 0:
                self._try("discharge", lambda: p.discharge(self.keeper, owner, sub))
                continue
            market = acct[1][0]
            for target in p.adl_ranking(market, against_size=self.size(owner, sub, market) / WAD):
                if not p.exchange.call("accounts", owner, sub)[3]:
                    break
                self._try("deleverage", lambda: p.deleverage(self.keeper, (owner, sub),
                                                             (target.owner, target.subaccount), market))

    @rule(lp=st.integers(0, 1), usd=st.integers(1_000, 1_000_000).map(float), redeem=st.booleans())
    def lp_moves(self, lp: int, usd: float, redeem: bool) -> None:
        p, who = self.protocol, self.lps[lp]
        if redeem and p.vault.call("shares", who):
            self._try("lp redeem", lambda: p.lp_withdraw(who, p.vault.call("shares", who) / 2 / WAD))
        else:
            self._try("lp deposit", lambda: p.lp_deposit(who, usd))

    # ================================================================ invariants
    def _none_found(self, kind: str, label: str) -> None:
        """Fail with what the rules found of `kind` (a Findings list) since the last check, and clear it."""
        found = getattr(self.findings, kind)
        setattr(self.findings, kind, [])
        assert not found, f"{label}: " + "; ".join(found)

    def check_invariants(self, settings, output, runtimes) -> None:
        RunStats.checked(self)
        super().check_invariants(settings, output, runtimes)

    @invariant()
    def inv9_no_free_lunch(self) -> None:
        self._none_found("free_lunch", "free lunch")

    @invariant()
    def inv10_lps_not_robbed(self) -> None:
        """Between two checks in one block, with no price accepted and no bad debt or
        bankruptcy in between, the LP share price (at the bid) does not fall."""
        if self.protocol is None:
            return
        self._collect()
        now = (self.chain.block_number, self.chain.timestamp, self.share_price(), len(self.events))
        mark, self._share_mark = self._share_mark, now
        if mark is None or mark[:2] != now[:2]:
            return
        if any(e.name in ("PriceAccepted", "BadDebt", "Bankruptcy", "BreachCleared") for e in self.events[mark[3]:]):
            return
        # rounding dust: the fills, the fees' token units and the bankrupt books' products
        # each round by a wei or so; a billionth of a dollar of NAV is far beyond it and far
        # below any attack
        dust = 10**9 * WAD // (self.protocol.vault.call("total_shares") + WAD) + 1
        assert now[2] + dust >= mark[2], (
            f"the LP share price fell from {mark[2]} to {now[2]} in one block at a constant price")

    @invariant()
    def inv11_every_shortfall_recorded(self) -> None:
        if self.protocol is None:
            return
        for owner, sub in sorted(self.subaccounts):
            collateral, markets, *_ = self.protocol.exchange.call("accounts", owner, sub)
            assert markets or collateral >= 0, f"{owner}/{sub} holds no position and collateral {collateral}: unrecorded"

    @invariant()
    def inv12_always_closable(self) -> None:
        self._none_found("closes_refused", "closes refused")

    @invariant()
    def inv13_share_maths(self) -> None:
        self._none_found("share_maths", "share maths")

    @invariant()
    def inv_oracle_guard(self) -> None:
        self._none_found("oracle_walked", "oracle")

    @invariant()
    def accounting(self) -> None:
        """DESIGN §5.1, 5.3 and 5.6 after every step, as in the other machines."""
        if self.protocol is None:
            return
        self._collect()
        invariants.token_conservation(self.protocol, self.subaccounts, self.holders)
        invariants.open_interest(self.protocol, self.subaccounts)
        invariants.bad_debt_accounting(self.protocol, self.events)


def with_defences(**changes: Any) -> type[AttackerMachine]:
    """An AttackerMachine class with some defences switched off."""
    defences = replace(Defences(), **changes)
    return type(f"AttackerMachine_{'_'.join(changes)}", (AttackerMachine,), {"defences": defences})
