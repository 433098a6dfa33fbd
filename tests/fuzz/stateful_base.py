"""The protocol state machine's base: the deployed contracts on revm, a small off-chain model,
the action helpers and the DESIGN §5 invariants (curve-stablecoin's stateful_base.py style).

Every protocol action goes through a helper here, which sends it through the facade
(sim/protocol.py), updates the model from what happened, and records what the invariants
must check about it. Rules (tests/fuzz/test_stateful.py) call helpers, never contracts.

A revert is fine when it is expected: each helper names the reasons its action may revert
with, and for each the condition that makes it right ("exchange: oracle invalid" only when
the feed is invalid and the trade adds risk), read from the chain's views or asked of a
counterfactual (tests/fuzz/refusals.py). Any other reason, a reason whose condition does not
hold, or a revert without a reason fails the run.

Beside DESIGN §5.1-5.8 (`inv1`-`inv8`), two of §5b's economic invariants are checked after
every step: `inv11_every_shortfall_recorded` and `inv12_always_closable`. The others (no free
lunch, LPs not robbed, share maths, the oracle guard) need an attacker's sequences of its own
actions in one block: tests/fuzz/attacker.py checks them.

Every path an action takes is named (`path`): hypothesis' event statistics show them, and
`PathCounts` counts the examples that reached each, for tests/fuzz/test_coverage.py.

The model holds only what the chain cannot be trusted to say about itself: every position
size (from Trade, Liquidation and Deleverage events), every wallet's token balance (from the
amounts the helpers moved and the fees keepers were paid), the markets' configurations and
statuses, the active trigger orders, and the records each §5 invariant consumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event as _hypothesis_event
from hypothesis import note as _hypothesis_note
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant

from sim.chain import Chain, Reverted, make_chain
from sim.protocol import SEED_LP, TRIGGER_KINDS, MarketConfig, Protocol
from sim.units import to_wad
from tests.fuzz import strategies as S
from tests.fuzz.refusals import Refusals, sip279_fill
from tests.utils import invariants
from tests.utils.constants import MAX_POSITIONS, MAX_UINT, PRECISION, USDC, WAD

Subaccount = tuple[str, int]

# The refusals a reduce-only close may meet that are the trader's own doing (§5b.12): never the
# Vault's liquidity, its reserve or anyone else's state.
TRADERS_OWN_REFUSALS = frozenset({
    "exchange: negative equity, liquidate instead", "exchange: market paused", "exchange: account bankrupt",
    "exchange: price above limit", "exchange: price below limit", "exchange: skew moved this block"})
# Slack, in wei, between the Liquidator's and the Exchange's rounding of one fill against mark.
FILL_ROUNDING_WEI = 2


def event(name: str) -> None:
    """hypothesis' event(), and nothing when a regression test drives the machine by hand."""
    if currently_in_test_context():
        _hypothesis_event(name)


def note(text: str) -> None:
    if currently_in_test_context():
        _hypothesis_note(text)


class PathCounts:
    """The paths each example (a run from deployment to teardown under hypothesis) of each
    machine class reached in this process; `reset` before a run to keep only that run's."""

    examples: dict[str, list[frozenset[str]]] = {}

    @classmethod
    def reset(cls, machine: str) -> None:
        cls.examples[machine] = []

    @classmethod
    def add(cls, machine: str, paths: set[str]) -> None:
        if currently_in_test_context():  # not the regression tests' replays
            cls.examples.setdefault(machine, []).append(frozenset(paths))

    @classmethod
    def reaching(cls, machine: str, names: tuple[str, ...]) -> int:
        """Examples of `machine` that reached any of the paths `names`."""
        return sum(1 for paths in cls.examples.get(machine, []) if paths.intersection(names))


class RunStats:
    """Steps and examples run in this process (the campaign reports them)."""

    steps = 0
    examples = 0

    @classmethod
    def reset(cls) -> None:
        cls.steps = cls.examples = 0

    @classmethod
    def checked(cls, machine: object) -> None:
        """Count one invariant check of `machine`: hypothesis checks once before an example's
        first step (counted as an example) and once after every step (a step)."""
        if getattr(machine, "_run_stats_started", False):
            cls.steps += 1
        else:
            cls.examples += 1
            machine._run_stats_started = True  # type: ignore[attr-defined]


@dataclass(frozen=True)
class HealthView:
    equity: int
    initial_margin: int
    maintenance_margin: int
    notional: int


@dataclass(frozen=True)
class AccountView:
    collateral: int
    markets: tuple[int, ...]
    isolated: bool
    bankrupt: bool
    deficit: int


@dataclass(frozen=True)
class OrderModel:
    owner: str
    subaccount: int
    market: int
    size: int
    limit_price: int  # 1e18 USD
    keeper_fee: int  # tokens


@dataclass
class Records:
    """What one step's actions left for the invariants to check; cleared as they are checked."""

    margin: list[tuple[str, HealthView]] = field(default_factory=list)  # §5.4
    liquidations: list[dict[str, Any]] = field(default_factory=list)  # §5.5
    bad_debts: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # §5.6: (BadDebt args, equity at fill)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)  # §5.7
    risk_changes: list[dict[str, Any]] = field(default_factory=list)  # §5.8
    closes_refused: list[tuple[str, str]] = field(default_factory=list)  # §5b.12: (the close, its reason)
    touched: set[Subaccount] = field(default_factory=set)  # §5b.11: subaccounts an event named


@dataclass
class Model:
    sizes: dict[tuple[str, int, int], int] = field(default_factory=dict)
    subaccounts: set[Subaccount] = field(default_factory=set)
    wallets: dict[str, int] = field(default_factory=dict)
    prices: list[float] = field(default_factory=list)
    configs: list[MarketConfig] = field(default_factory=list)
    status: list[tuple[bool, bool]] = field(default_factory=list)  # (paused, reduce_only)
    orders: dict[int, OrderModel] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)  # the protocol's events since deployment
    records: Records = field(default_factory=Records)


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def equity_at_fill(equity: int, delta: int, price: int, mark: int) -> int:
    """A subaccount's equity at mark, moved to what it is once `delta` fills at `price`
    instead of at mark (USD 1e18): the shortfall a close leaves is measured at its fill."""
    return equity - (delta * (price - mark)) // WAD


def adds_risk(old: int, new: int) -> bool:
    """The Exchange's rule: the position grows, or changes side."""
    return abs(new) > abs(old) or (new != 0 and (new > 0) != (old > 0))


class ProtocolMachine(RuleBasedStateMachine):
    """The whole protocol on revm, deployed by `deploy` (an @initialize rule of the subclass)."""

    backend = "revm"

    def __init__(self) -> None:
        super().__init__()
        self.chain: Chain | None = None
        self.protocol: Protocol | None = None
        self.model = Model()
        self._cursor = 0
        self._cache: dict[str, Any] = {}
        self.paths: set[str] = set()  # the paths this example reached
        self.whales = 0  # whale storylines run (each opens a fresh subaccount)

    def check_invariants(self, settings, output, runtimes) -> None:
        """Hypothesis calls this once before the first step and once after every step."""
        RunStats.checked(self)
        super().check_invariants(settings, output, runtimes)

    def teardown(self) -> None:
        PathCounts.add(type(self).__name__, self.paths)
        if self.chain is not None:
            self.chain.close()

    def path(self, name: str) -> None:
        """Name the path an action took: a hypothesis event, and counted for test_coverage.py."""
        self.paths.add(name)
        event(name)

    # ================================================================ set-up
    def deploy(self, setup: S.Setup) -> None:
        """Deploy the protocol, fund the actors, isolate every trader's subaccount 2."""
        self.chain = make_chain(self.backend)
        self.protocol = Protocol.deploy(self.chain, setup.config())
        p = self.protocol
        self.refusals = Refusals(p, p.deployer)
        self.traders = [self.chain.new_account(t) for t in S.TRADERS]
        self.lps = [self.chain.new_account(lp) for lp in S.LPS]
        self.keeper = self.chain.new_account("keeper")
        self.owner = p.deployer
        self.seed_lp = self.chain.new_account(SEED_LP)  # the Vault's first liquidity (setup.vault_liquidity)
        self.holders = [*self.traders, *self.lps, self.keeper, self.owner, self.seed_lp]
        for t in self.traders:
            p.mint(t, S.TRADER_WALLET)
            p.set_isolated(t, S.ISOLATED_SUBACCOUNT, True)
        for lp in self.lps:
            p.mint(lp, S.LP_WALLET)
        self.model.wallets = {a: p.usdc.call("balanceOf", a) for a in self.holders}
        self.model.prices = [m.initial_price for m in S.MARKETS]
        self.model.configs = list(S.MARKETS)
        self.model.status = [(False, False) for _ in S.MARKETS]
        self._collect_events()
        note(f"deployed: {setup}")

    # ================================================================ reading the chain
    def health(self, owner: str, sub: int) -> HealthView:
        return HealthView(*self.protocol.exchange.call("health", owner, sub))

    def account(self, owner: str, sub: int) -> AccountView:
        c, markets, isolated, bankrupt, deficit = self.protocol.exchange.call("accounts", owner, sub)
        return AccountView(c, tuple(markets), isolated, bankrupt, deficit)

    def size(self, owner: str, sub: int, market: int) -> int:
        return self.protocol.exchange.call("positions", owner, sub, market)[0]

    def index(self, market: int) -> tuple[int, bool]:
        return self.protocol.exchange.call("index_price", market)

    def subaccounts(self) -> list[Subaccount]:
        return sorted(self.model.subaccounts)

    def with_positions(self) -> list[Subaccount]:
        return [s for s in self.subaccounts() if any(self.model.sizes.get((*s, m), 0) for m in range(len(S.MARKETS)))]

    def liquidatable(self) -> list[Subaccount]:
        """Subaccounts the Liquidator says are below maintenance margin (cached per step)."""
        if "liquidatable" not in self._cache:
            self._cache["liquidatable"] = [
                s for s in self.with_positions() if self.protocol.liquidator.call("is_liquidatable", *s)]
        return self._cache["liquidatable"]

    def bankrupt(self) -> list[Subaccount]:
        if "bankrupt" not in self._cache:
            self._cache["bankrupt"] = [s for s in self.with_positions() if self.account(*s).bankrupt]
        return self._cache["bankrupt"]

    # ================================================================ bookkeeping
    def _collect_events(self) -> list[Any]:
        """Take the new events into the model: position sizes, and the feed and status each
        position change met (for §5.8)."""
        self._cache.clear()
        events, self._cursor = self.chain.events_since(self._cursor)
        p = self.protocol
        ours = {p.exchange.address, p.liquidator.address, p.vault.address, p.insurance_fund.address,
                p.trigger_orders.address, p.oracle.address}
        events = [e for e in events if e.address in ours]
        self.model.events.extend(events)
        sizes = self.model.sizes
        for e in events:
            a = e.args
            for owner, sub in (("owner", "subaccount"), ("bankrupt_owner", "bankrupt_subaccount"),
                               ("target_owner", "target_subaccount")):
                if owner in a and sub in a:
                    self.model.records.touched.add((a[owner], a[sub]))
            if e.name == "Trade":
                key = (a["owner"], a["subaccount"], a["market"])
                old = sizes.get(key, 0)
                assert old + a["size_delta"] == a["new_size"], f"Trade event {a} does not follow size {old}"
                sizes[key] = a["new_size"]
                valid = self.index(a["market"])[1]
                self.model.records.risk_changes.append(
                    {"event": a, "old": old, "valid": valid, "status": self.model.status[a["market"]]})
            elif e.name == "Liquidation":
                key = (a["owner"], a["subaccount"], a["market"])
                old = sizes.get(key, 0)
                sizes[key] = old + a["size"]
                assert not adds_risk(old, sizes[key]), f"liquidation added risk: {old} -> {sizes[key]}"
            elif e.name == "DeviationBreach":
                self.path("oracle: feed breached")
            elif e.name == "BreachCleared":
                self.path("oracle: breach accepted")
            elif e.name == "Deleverage":
                bkey = (a["bankrupt_owner"], a["bankrupt_subaccount"], a["market"])
                tkey = (a["target_owner"], a["target_subaccount"], a["market"])
                for key, delta in ((bkey, a["size"]), (tkey, -a["size"])):
                    old = sizes.get(key, 0)
                    sizes[key] = old + delta
                    assert not adds_risk(old, sizes[key]), f"ADL added risk to {key}: {old} -> {sizes[key]}"
        return events

    def _expect(self, action: str, exc: Reverted, conditions: dict[str, bool | Callable[[], bool]]) -> None:
        """A revert is fine only with a reason this action may give, and only when that
        reason's condition holds. A condition is a bool, or a predicate (refusals.py) that is
        asked only when its reason is the one given."""
        reason = exc.reason
        assert reason is not None, f"{action} reverted without a reason: {exc}"
        assert reason in conditions, f"{action}: unexpected revert {reason!r}"
        condition = conditions[reason]
        holds = condition() if callable(condition) else condition
        assert holds, f"{action} reverted with {reason!r} but that is not the case"
        self.path(f"{action} reverted: {reason}")
        note(f"{action} reverted: {reason}")

    def _fee_events(self, events: list[Any]) -> None:
        """Keeper fees: the only tokens a keeper ever receives."""
        p = self.protocol
        for e in events:
            if e.name == "Liquidation" and e.address == p.liquidator.address:
                self.model.wallets[e.args["keeper"]] += e.args["keeper_fee"]
            elif e.name == "FeeCharged" and e.address == p.exchange.address:
                self.model.wallets[e.args["receiver"]] += e.args["amount"]

    # ================================================================ actions: collateral
    def mint(self, owner: str, usd: float) -> None:
        """New tokens for a wallet (the faucet), for storylines that need more than it holds."""
        self.protocol.mint(owner, usd)
        self.model.wallets[owner] += int(round(usd * USDC))
        self._collect_events()

    def deposit(self, owner: str, sub: int, usd: float) -> None:
        tokens = int(round(usd * USDC))
        acct = self.account(owner, sub)
        self.model.subaccounts.add((owner, sub))
        try:
            self.protocol.deposit(owner, usd, sub)
        except Reverted as exc:
            self._expect("deposit", exc, {"exchange: account bankrupt": acct.bankrupt,
                                          "exchange: zero amount": tokens == 0})
            return
        self._collect_events()
        self.model.wallets[owner] -= tokens
        self.path("deposit")
        note(f"deposit {owner[:8]}/{sub}: {usd}")

    def withdraw(self, owner: str, sub: int, tokens: int) -> None:
        """Withdraw `tokens` (6 decimals); §5.4 and §5.7 are recorded for the invariants."""
        if tokens <= 0:
            self.path("withdraw: nothing to withdraw")
            return
        acct = self.account(owner, sub)
        allowed = bool(acct.markets) and all(self.model.configs[m].allow_unrealized_withdrawal for m in acct.markets)
        r = self.refusals
        try:
            self.protocol.withdraw(owner, tokens / USDC, sub)
        except Reverted as exc:
            self._expect("withdraw", exc, {
                "exchange: account bankrupt": acct.bankrupt,
                "exchange: withdrawal exceeds collateral": lambda: r.withdrawal_exceeds_collateral(owner, sub, tokens),
                "exchange: below initial margin": lambda: r.withdrawal_below_initial_margin(owner, sub, tokens),
                # the Exchange collects what the Vault owes it before it pays out collateral
                "exchange: vault illiquid": lambda: r.exchange_illiquid(owner, sub, tokens),
                # only a withdrawal of unrealised PnL draws on the Vault
                "vault: insufficient liquidity": lambda: r.vault_cannot_lend(owner, sub, tokens),
            })
            return
        self._collect_events()
        self.model.wallets[owner] += tokens
        self.model.records.margin.append((f"withdraw {tokens} from {owner}/{sub}", self.health(owner, sub)))
        self.model.records.withdrawals.append(
            {"who": (owner, sub), "tokens": tokens, "collateral_before": acct.collateral, "allowed": allowed})
        self.path("withdraw: takes unrealised pnl" if tokens * PRECISION > max(acct.collateral, 0) else "withdraw")
        note(f"withdraw {owner[:8]}/{sub}: {tokens} tokens")

    def set_isolated(self, owner: str, sub: int, isolated: bool) -> None:
        acct = self.account(owner, sub)
        try:
            self.protocol.set_isolated(owner, sub, isolated)
        except Reverted as exc:
            self._expect("set_isolated", exc, {"exchange: close positions first": bool(acct.markets)})
            return
        self._collect_events()
        self.path("set_isolated")

    # ================================================================ actions: trading
    def trade(self, owner: str, sub: int, market: int, size_delta: int, slippage: float = 0.05) -> None:
        """Trade `size_delta` wei of base units; §5.4 is recorded for a trade that adds risk."""
        if size_delta == 0:
            self.path("trade: nothing to do")
            return
        self.model.subaccounts.add((owner, sub))
        old = self.size(owner, sub, market)
        new = old + size_delta
        risk = adds_risk(old, new)
        acct = self.account(owner, sub)
        valid = self.index(market)[1]
        paused, reduce_only = self.model.status[market]
        opens_market = old == 0 and market not in acct.markets
        kind = "flip" if risk and old != 0 and _sign(new) != _sign(old) else (
            "increase" if risk and old != 0 else "open" if risk else "close" if new == 0 else "reduce")
        r = self.refusals
        limit = r.facade_limit(market, size_delta, slippage)

        def again() -> None:
            self.protocol.trade_wad(owner, market, size_delta, sub, slippage=slippage)

        try:
            again()
        except Reverted as exc:
            if not risk:
                self.model.records.closes_refused.append((f"trade ({kind}) {owner}/{sub} m{market}", exc.reason))
            self._expect(f"trade ({kind})", exc, {
                "exchange: market paused": paused,
                "exchange: account bankrupt": acct.bankrupt,
                "exchange: market reduce-only": risk and reduce_only,
                "exchange: oracle invalid": risk and not valid,
                "exchange: price above limit": size_delta > 0 and (lambda: r.fill_beyond_limit(market, size_delta, limit)),
                "exchange: price below limit": size_delta < 0 and (lambda: r.fill_beyond_limit(market, size_delta, limit)),
                "exchange: open interest cap": risk and (lambda: r.open_interest_cap_passed(market, old, new)),
                "exchange: too many positions": opens_market and (acct.isolated or len(acct.markets) >= MAX_POSITIONS),
                # the Vault's free tokens must cover reserve_factor x all open interest once it grows
                "exchange: vault reserve exceeded": (
                    risk and (lambda: r.vault_reserve_exceeded_after(owner, sub, market, again))),
                "exchange: below initial margin": risk and (lambda: r.below_initial_margin_after(owner, sub, again)),
                "exchange: negative equity, liquidate instead": (
                    not risk and (lambda: r.negative_equity_after(owner, sub, again))),
            })
            return
        self._collect_events()
        if risk:
            self.model.records.margin.append((f"trade {size_delta} {owner}/{sub} m{market}", self.health(owner, sub)))
        self.path(f"trade: {kind}")
        note(f"trade {owner[:8]}/{sub} m{market}: {old} -> {new} ({kind})")

    def resolve_trade(self, intent: S.Trade) -> tuple[str, int, int, int]:
        """(owner, subaccount, market, size delta in wei) for a trade intent."""
        owner, sub = self.traders[intent.trader], intent.subaccount
        market = self.protocol.market(intent.market)
        size = self.size(owner, sub, market)
        if size == 0 and intent.kind in ("reduce", "flip", "close"):
            held = sorted(k for k, v in self.model.sizes.items() if v != 0)
            if held:
                owner, sub, market = held[intent.pick % len(held)]
                size = self.size(owner, sub, market)
        h = self.health(owner, sub)
        equity = h.equity
        price = max(self.index(market)[0], 1)
        lev = int(intent.leverage * WAD)
        base = lev * max(equity, 100 * WAD) // price  # notional = leverage x equity (at least $100)
        side = _sign(size) or intent.side
        if intent.kind == "dust":
            delta = intent.side * intent.dust
        elif intent.kind == "open":
            delta = intent.side * base
        elif intent.kind == "lever":  # notional = fraction of (equity - IM) / imf, on the position's side
            imf = int(self.model.configs[market].imf * WAD)
            room = max(equity - h.initial_margin, 0) * int(intent.fraction * WAD) // imf
            delta = side * (room * WAD // price)
        elif intent.kind == "increase":
            delta = side * base
        elif intent.kind == "reduce":
            delta = -_sign(size) * max(1, int(abs(size) * intent.fraction)) if size else 0
        elif intent.kind == "close":
            delta = -size
        else:  # flip
            delta = -size - side * base
        return owner, sub, market, delta

    # ================================================================ actions: LPs
    def lp_deposit(self, lp: str, usd: float) -> None:
        """Deposit at the ask NAV (virtual shares included)."""
        tokens = int(round(usd * USDC))
        r = self.refusals
        try:
            self.protocol.lp_deposit(lp, usd)
        except Reverted as exc:
            self._expect("lp_deposit", exc, {"vault: insolvent": r.lp_vault_insolvent_at_ask,
                                             "vault: zero shares": lambda: r.lp_shares_for(tokens) == 0})
            return
        self._collect_events()
        self.model.wallets[lp] -= tokens
        self.path("lp_deposit")

    def lp_withdraw(self, lp: str, fraction: float, dust: bool = False) -> None:
        """Redeem `fraction` of the LP's shares (`dust`: one micro-share) at the bid NAV."""
        shares = self.protocol.vault.call("shares", lp)
        # shares in micro-units (exact through the facade), never more than the LP holds: a float
        # product rounds 1,000,000.000001e18 shares up past what is held
        amount = min(int(shares * fraction), shares) // 10**12
        if dust and shares >= 10**12:
            amount = 1
        if amount == 0:
            self.path("lp_withdraw: no shares")
            return
        nav = self.protocol.vault.call("nav")
        share_amount = amount * 10**12
        r = self.refusals
        try:
            paid = self.protocol.lp_withdraw(lp, amount / 10**6)
        except Reverted as exc:
            self._expect("lp_withdraw", exc, {
                "vault: insolvent": nav <= 0,
                "vault: zero amount": lambda: r.lp_payout_zero(share_amount),
                "vault: below reserve": lambda: r.lp_withdrawal_below_reserve(share_amount),
                "vault: insufficient liquidity": lambda: r.lp_withdrawal_beyond_balance(share_amount)})
            return
        events = self._collect_events()
        [w] = [e.args for e in events if e.name == "Withdraw" and e.address == self.protocol.vault.address]
        assert w["shares"] == amount * 10**12 and round(paid * USDC) == w["amount"], (w, paid)
        self.model.wallets[lp] += w["amount"]
        self.path("lp_withdraw")

    # ================================================================ actions: oracle and time
    def report(self, market: int, price: float, reporter: int | None = None) -> None:
        """Reporters (all of them, or one) report `price`; reports never revert."""
        price = float(f"{price:.8g}")
        if reporter is None:
            self.protocol.report_all(market, price)
        else:
            self.protocol.report_price(market, price, self.protocol.reporters[reporter])
        self._collect_events()

    def move_price(self, move: S.PriceMove) -> None:
        market = self.protocol.market(move.market)
        initial = S.MARKETS[market].initial_price
        price = min(max(self.model.prices[market] * (1 + move.move), initial * S.PRICE_FLOOR), initial * S.PRICE_CEILING)
        self.model.prices[market] = price
        if move.kind in ("small", "medium", "gap"):
            self.report(market, price)
        elif move.kind == "crash":  # the gap persists past the breach timeout: the feed takes it
            self.report(market, price)
            self.chain.mine(S.ORACLE.breach_timeout)
            for m, p in enumerate(self.model.prices):
                self.report(m, p)
        elif move.kind == "disagree":
            for i, spread in enumerate(move.spreads):
                self.report(market, price * (1 + spread), i)
        else:
            self.report(market, price, move.reporter)
        valid = self.index(market)[1]
        self.path(f"price {move.kind}: feed {'valid' if valid else 'invalid'}")
        note(f"price m{market} {move.kind} -> {price:.6g} (feed valid: {valid})")

    def advance_time(self, seconds: int, refresh: bool) -> None:
        self.chain.mine(seconds)
        if refresh:
            for market, price in enumerate(self.model.prices):
                self.report(market, price)
        self._collect_events()
        self.path("time: " + ("seconds" if seconds < 60 else "minutes" if seconds < 3_600 else "hours" if seconds < 86_400
                          else "days") + (" then reports" if refresh else ", feeds left alone"))

    # ================================================================ actions: keepers
    def liquidate(self, owner: str, sub: int, market: int, max_size: float | None = None) -> None:
        """Liquidate; §5.5 and §5.6 are recorded with the health just before, §5.6 at the fill."""
        before = self.health(owner, sub)
        acct = self.account(owner, sub)
        size = self.size(owner, sub, market)
        mark = self.protocol.exchange.call("mark_price", market)
        index = self.index(market)[0]
        state = self.protocol.exchange.call("market_states", market)
        window = self.protocol.liquidator.call("windows", market)
        r = self.refusals

        def again() -> float:
            return self.protocol.liquidate(self.keeper, owner, market, sub, max_size=max_size)

        try:
            closed = again()
        except Reverted as exc:
            self._expect("liquidate", exc, {
                "liquidator: liquidations paused": lambda: r.liquidations_paused(market),
                "liquidator: account bankrupt": acct.bankrupt,
                "liquidator: no position": size == 0,
                "liquidator: not liquidatable": before.equity >= before.maintenance_margin,
                "liquidator: zero size": max_size is not None and to_wad(max_size) == 0,
                "liquidator: limit reached": lambda: r.liquidation_limit_reached(market),
            })
            return
        events = self._collect_events()
        self._fee_events(events)
        after = self.health(owner, sub)
        acct_after = self.account(owner, sub)
        closed_wad = sum(abs(e.args["size"]) for e in events if e.name == "Liquidation")
        # all it could: the whole position, the keeper's cap, or the rest of the block's limit
        whole = (closed_wad == abs(size) or (max_size is not None and closed_wad == to_wad(max_size))
                 or r.liquidation_limit_reached(market))
        self.model.records.liquidations.append({
            "who": (owner, sub, market), "before": before, "after": after, "closed": closed,
            "partial": bool(acct_after.markets) and not acct_after.bankrupt, "whole": whole})
        fills = [e.args for e in events if e.name == "Liquidation"]
        if fills:  # a close: it is what the Liquidator returned, and the block's window counts it
            [fill] = fills
            delta, price = fill["size"], fill["price"]
            assert abs(delta) / WAD == closed, f"the Liquidator returned {closed} but closed {fill}"
            used = window[1] if window[0] == self.chain.block_number else 0
            assert self.protocol.liquidator.call("windows", market) == (self.chain.block_number, used + abs(delta)), (
                f"the liquidation window does not count the {abs(delta)} closed: {window} -> "
                f"{self.protocol.liquidator.call('windows', market)}")
        else:  # bankrupt: the close it would have made is the whole position at its fill
            delta = -size
            scale = self.protocol.exchange.call("markets", market)[5]
            price = sip279_fill(index, state[0] - state[1], scale, delta)
        for e in events:
            if e.name == "BadDebt":
                self.model.records.bad_debts.append((e.args, equity_at_fill(before.equity, delta, price, mark)))
        kind = "bankruptcy" if acct_after.bankrupt else "partial" if acct_after.markets else "full"
        self.path(f"liquidate: {kind}" + (" with bad debt" if any(e.name == "BadDebt" for e in events) else ""))
        note(f"liquidate {owner[:8]}/{sub} m{market}: closed {closed} ({kind})")

    def deleverage(self, bankrupt: Subaccount, target: Subaccount, market: int, size: float | None) -> bool:
        """ADL `size` (None: all it can) of a bankrupt position against `target`; whether it went
        through. ADL never leaves its target below maintenance margin, nor nearer it than it was."""
        bacct = self.account(*bankrupt)
        bsize = self.size(*bankrupt, market)
        tsize = self.size(*target, market)
        tpnl = self.protocol.lens.call("position_pnl", *target, market)
        tacct = self.account(*target)
        tbefore = self.health(*target)
        bbefore = self.health(*bankrupt)
        mark = self.protocol.exchange.call("mark_price", market)
        deficit = self.protocol.exchange.call("market_states", market)[8]
        size_wad = MAX_UINT if size is None else to_wad(size)
        r = self.refusals

        try:
            self.protocol.deleverage(self.keeper, bankrupt, target, market, size)
        except Reverted as exc:
            self._expect("deleverage", exc, {
                "liquidator: not bankrupt": not bacct.bankrupt,
                "liquidator: no bankrupt position": bsize == 0,
                "liquidator: target not opposite": tsize == 0 or _sign(tsize) == _sign(bsize),
                "liquidator: target bankrupt": tacct.bankrupt,
                "liquidator: target not profitable": tpnl <= 0,
                "liquidator: bankrupt recovered": lambda: r.bankrupt_recovered(*bankrupt),
                "liquidator: zero size": size_wad == 0,
                "liquidator: target equity too low": (
                    lambda: r.adl_target_equity_too_low(bankrupt, target, market, size_wad)),
            })
            return False
        events = self._collect_events()
        [d] = [e.args for e in events if e.name == "Deleverage"]
        after = self.account(*bankrupt)
        assert self.protocol.exchange.call("market_states", market)[8] == deficit - d["deficit_covered"]
        assert after.deficit == bacct.deficit - d["deficit_covered"]
        if after.markets:
            assert after.bankrupt, "a bankrupt subaccount left bankruptcy with its position open"
        else:
            assert not after.bankrupt and after.deficit == 0, f"fully deleveraged but still {after}"
        # a target at or above maintenance margin stays there; one below it (cross-margined
        # losses elsewhere) comes no nearer liquidation, to the fills' token-unit rounding
        tafter = self.health(*target)
        assert tafter.equity >= tafter.maintenance_margin or (
            tafter.equity - tafter.maintenance_margin >= tbefore.equity - tbefore.maintenance_margin - PRECISION), (
            f"ADL took its target {target} below maintenance margin: {tbefore} -> {tafter}")
        for e in events:
            if e.name == "BadDebt":  # a side's last position, closed under water
                bad = (e.args["owner"], e.args["subaccount"])
                assert bad in (bankrupt, target), e.args
                equity, delta = (bbefore.equity, d["size"]) if bad == bankrupt else (tbefore.equity, -d["size"])
                self.model.records.bad_debts.append((e.args, equity_at_fill(equity, delta, d["price"], mark)))
        self.path("deleverage: " + ("closed" if not after.markets else "partial"))
        note(f"deleverage {bankrupt[0][:8]}/{bankrupt[1]} vs {target[0][:8]}/{target[1]} m{market}: {d['size']}")
        return True

    def discharge(self, bankrupt: Subaccount) -> bool:
        """A bankrupt subaccount whose equity has come back to zero or more leaves bankruptcy,
        and its share of the deficit leaves the market; whether it went through."""
        acct = self.account(*bankrupt)
        deficit = self.protocol.exchange.call("market_states", acct.markets[0])[8] if acct.markets else 0
        try:
            self.protocol.discharge(self.keeper, *bankrupt)
        except Reverted as exc:
            self._expect("discharge", exc, {
                "liquidator: not bankrupt": not acct.bankrupt,
                "liquidator: still under water": lambda: self.health(*bankrupt).equity < 0,
            })
            return False
        events = self._collect_events()
        [d] = [e.args for e in events if e.name == "Discharge"]
        after = self.account(*bankrupt)
        assert not after.bankrupt and after.deficit == 0 and d["deficit"] == acct.deficit, (acct, after, d)
        assert self.protocol.exchange.call("market_states", d["market"])[8] == deficit - acct.deficit
        self.path("discharge")
        return True

    def place_trigger(self, owner: str, sub: int, market: int, size: int, trigger_price: float, kind: str,
                      limit_price: float | None, keeper_fee: float, missing_limit: bool = False) -> None:
        """Place an order (`limit_price` None: the facade's default, the trigger moved 1% against
        the order). `missing_limit`: sent with no limit at all (0 for a sell, the maximum for a
        buy), which every order must have: refused."""
        if missing_limit:
            try:
                self.protocol.trigger_orders.transact(
                    "place", sub, market, size, to_wad(trigger_price), 0 if size < 0 else MAX_UINT,
                    TRIGGER_KINDS[kind], int(round(keeper_fee * USDC)), sender=owner)
            except Reverted as exc:
                self._expect("place_trigger", exc, {"triggers: no limit price": True})
                return
            raise AssertionError(f"an order with no limit price was placed: {owner}/{sub} m{market} {size}")
        order_id = self.protocol.place_trigger(owner, market, size / WAD, trigger_price, kind=kind, subaccount=sub,
                                               limit_price=limit_price, keeper_fee=keeper_fee)
        self._collect_events()
        stored = self.protocol.trigger_orders.call("orders", order_id)
        assert stored[0] == owner and stored[8] is True, stored
        self.model.orders[order_id] = OrderModel(owner, sub, market, stored[3], stored[5], stored[7])
        self.path(f"trigger placed: {kind}")

    def execute_trigger(self, order_id: int) -> None:
        """Execute an order; one that is not active (executed, cancelled or never placed)
        must be refused. The trade comes first, then the keeper's fee out of the equity it
        left: the keeper gets the order's fee, or all of that equity (in whole token units)."""
        order = self.model.orders.get(order_id)
        if order is None:
            self._refuse_inactive_order("execute_trigger", order_id,
                                        lambda: self.protocol.execute_trigger(self.keeper, order_id))
            return
        triggered = self.protocol.trigger_orders.call("is_triggered", order_id)
        old = self.size(order.owner, order.subaccount, order.market)
        acct = self.account(order.owner, order.subaccount)
        fill_size = -old if abs(order.size) > abs(old) else order.size  # reduce-only: at most the position
        r = self.refusals

        def again() -> bool:
            return self.protocol.execute_trigger(self.keeper, order_id)

        try:
            executed = again()
        except Reverted as exc:
            if triggered:  # the order's close was tried
                self.model.records.closes_refused.append((f"trigger order {order_id}", exc.reason))
            beyond_limit = lambda: r.fill_beyond_limit(order.market, fill_size, order.limit_price)  # noqa: E731
            self._expect("execute_trigger", exc, {
                "triggers: not triggered": not triggered,
                "exchange: market paused": lambda: r.market_paused(order.market),
                "exchange: account bankrupt": acct.bankrupt,
                "exchange: price above limit": fill_size > 0 and beyond_limit,
                "exchange: price below limit": fill_size < 0 and beyond_limit,
                # no keeper can sandwich the order inside its block
                "exchange: skew moved this block": lambda: r.skew_moved(order.market, fill_size),
                "exchange: negative equity, liquidate instead": (
                    lambda: r.negative_equity_after(order.owner, order.subaccount, again)),
            })
            return
        events = self._collect_events()
        self._fee_events(events)
        del self.model.orders[order_id]
        new = self.size(order.owner, order.subaccount, order.market)
        assert not adds_risk(old, new), f"trigger order {order_id} added risk: {old} -> {new}"
        if executed:
            [e] = [e.args for e in events if e.name == "OrderExecuted"]
            assert e["size"] == fill_size and new == old + fill_size, (e, old, new)
            if e["keeper_fee"] != order.keeper_fee:  # the equity left after the trade was less than the fee
                equity = r.worst_health(order.owner, order.subaccount)[0]
                assert e["keeper_fee"] < order.keeper_fee and 0 <= equity < PRECISION, (
                    f"trigger order {order_id} paid its keeper {e['keeper_fee']} of {order.keeper_fee} and left "
                    f"equity {equity}: the fee is all the equity left, or the whole fee")
                self.path("trigger executed: fee capped at the equity left")
            self.path("trigger executed")
        else:
            [c] = [e.args for e in events if e.name == "OrderCancelled"]
            assert c["reason"] == "no position to reduce" and (old == 0 or _sign(old) == _sign(order.size)), (c, old)
            self.path(f"trigger cancelled: {c['reason']}")

    def cancel_trigger(self, order_id: int, owner: str) -> None:
        """The owner cancels an order; one that is not active must be refused."""
        order = self.model.orders.pop(order_id, None)
        if order is None:
            self._refuse_inactive_order("cancel_trigger", order_id, lambda: self.protocol.cancel_trigger(owner, order_id))
            return
        self.protocol.cancel_trigger(order.owner, order_id)
        self._collect_events()
        self.path("trigger cancelled by owner")

    def _refuse_inactive_order(self, action: str, order_id: int, send: Callable[[], Any]) -> None:
        try:
            send()
        except Reverted as exc:
            self._expect(action, exc, {
                "triggers: order not active": lambda: not self.protocol.trigger_orders.call("orders", order_id)[8]})
            return
        raise AssertionError(f"{action} went through on order {order_id}, which is not active")

    # ================================================================ actions: the owner
    def set_market_params(self, config: MarketConfig) -> None:
        market = self.protocol.market(config.name)
        self.protocol.set_market_params(config)
        self.model.configs[market] = config
        self._collect_events()
        self.path("owner: market params")
        note(f"params m{market}: {config}")

    def set_reserve_factor(self, reserve_factor: float) -> None:
        self.protocol.vault.transact("set_reserve_factor", to_wad(reserve_factor), sender=self.owner)
        self._collect_events()
        self.path("owner: reserve factor " + ("off" if reserve_factor == 0 else "set"))
        note(f"reserve factor {reserve_factor}")

    def set_market_status(self, market: int, paused: bool, reduce_only: bool) -> None:
        self.protocol.set_market_status(market, paused, reduce_only)
        self.model.status[market] = (paused, reduce_only)
        self._collect_events()
        self.path(f"owner: status paused={paused} reduce_only={reduce_only}")

    # ================================================================ invariants (DESIGN §5)
    @invariant()
    def inv1_tokens(self) -> None:
        """§5.1: the Exchange holds exactly the positive collateral, the Vault is owed exactly
        the negative; the fund's balance follows its books; every wallet holds what the model
        says it should; nothing is created or lost."""
        if self.protocol is None:
            return
        invariants.token_conservation(self.protocol, self.model.subaccounts, self.holders)
        invariants.insurance_fund_books(self.protocol, self.model.events)
        for holder, expected in self.model.wallets.items():
            held = self.protocol.usdc.call("balanceOf", holder)
            assert held == expected, f"wallet {holder} holds {held}, the model says {expected}"

    @invariant()
    def inv2_zero_sum(self) -> None:
        """§5.2: traders' PnL and funding and the Vault's sum to zero at one mark."""
        if self.protocol is None:
            return
        invariants.zero_sum(self.protocol, self.model.subaccounts)

    @invariant()
    def inv3_open_interest(self) -> None:
        """§5.3: open interest is the sum of positions, and every position is what its
        events say (the model), listed in its subaccount's markets."""
        if self.protocol is None:
            return
        invariants.open_interest(self.protocol, self.model.subaccounts)
        invariants.positions_match(self.protocol, self.model.sizes)

    @invariant()
    def inv4_user_actions_keep_initial_margin(self) -> None:
        """§5.4: no trade that adds risk and no withdrawal leaves its subaccount below
        initial margin (health read right after the action)."""
        for what, h in self.model.records.margin:
            assert h.equity >= h.initial_margin, f"{what} left equity {h.equity} below initial margin {h.initial_margin}"
        self.model.records.margin.clear()

    @invariant()
    def inv5_liquidation_only_below_maintenance(self) -> None:
        """§5.5: a liquidation succeeds only below maintenance margin, and a partial one never
        lowers the margin ratio of a solvent subaccount. The exception is the Liquidator's:
        when the fill's impact against mark exceeds the equity behind even a sliver of the
        position, no part of it can close without lowering the ratio, and it closes all it
        may (the position, the keeper's cap or the block's limit); the account is insolvent
        at the price it can be closed at, and its last liquidation records the shortfall."""
        for r in self.model.records.liquidations:
            before, after = r["before"], r["after"]
            assert before.equity < before.maintenance_margin, f"liquidated at or above maintenance: {r}"
            if r["partial"] and before.equity > 0 and not r["whole"]:
                # equity / notional must not fall: compared cross-multiplied, exactly. The fill
                # settles realised PnL in whole tokens, rounding it down by less than one token
                # unit; the Liquidator's fee cap leaves room for that, except when the equity
                # behind the closed notional is itself below one token unit (a dust close).
                closed_equity = before.equity * (before.notional - after.notional) // before.notional
                dust = PRECISION * before.notional if closed_equity < PRECISION else 0
                assert after.equity * before.notional + dust >= before.equity * after.notional, (
                    f"partial liquidation lowered the margin ratio: {r}")
        self.model.records.liquidations.clear()

    @invariant()
    def inv6_bad_debt_accounting(self) -> None:
        """§5.6: insurance paid plus recorded deficit plus what the Vault wrote off equals the
        negative equity closed, measured at the close's fill (to the whole token unit the
        shortfall is rounded up to); only a bankruptcy leaves a deficit, and only a flat
        account a write-off. Each market's deficit is what was recorded minus what ADL covered
        and discharges removed, and is the bankrupt subaccounts' shares; the fund paid exactly
        what the BadDebt events say."""
        if self.protocol is None:
            return
        for args, equity in self.model.records.bad_debts:
            parts = args["insurance_paid"] + args["deficit"] + args["written_off"]
            assert parts == args["amount"], f"BadDebt does not add up: {args}"
            assert args["deficit"] == 0 or args["written_off"] == 0, f"a deficit and a write-off at once: {args}"
            assert -equity - FILL_ROUNDING_WEI <= args["amount"] < -equity + PRECISION + FILL_ROUNDING_WEI, (
                f"bad debt {args['amount']} is not the negative equity at the fill ({-equity})")
        self.model.records.bad_debts.clear()
        invariants.bad_debt_accounting(self.protocol, self.model.events)
        # the fund pays the Exchange for bad debt, and keepers their minimum fee
        fund, exchange = self.protocol.insurance_fund.address, self.protocol.exchange.address
        payments = [e.args for e in self.model.events if e.name == "Paid" and e.address == fund]
        paid = sum(e.args["insurance_paid"] for e in self.model.events if e.name == "BadDebt")
        assert sum(a["paid"] for a in payments if a["receiver"] == exchange) * PRECISION == paid
        assert self.protocol.insurance_fund.call("total_paid") == sum(a["paid"] for a in payments)
        shares: dict[int, int] = {}
        for s in self.bankrupt():
            acct = self.account(*s)
            shares[acct.markets[0]] = shares.get(acct.markets[0], 0) + acct.deficit
        for m in range(len(S.MARKETS)):
            deficit = self.protocol.exchange.call("market_states", m)[8]
            assert deficit == shares.get(m, 0), f"market {m}: deficit {deficit} != bankrupt shares {shares.get(m, 0)}"

    @invariant()
    def inv7_withdrawals_take_no_unrealised_pnl(self) -> None:
        """§5.7: a withdrawal takes at most the positive collateral, unless every market the
        subaccount holds allows unrealised PnL out."""
        for w in self.model.records.withdrawals:
            assert w["allowed"] or w["tokens"] * PRECISION <= w["collateral_before"], f"withdrawal took PnL: {w}"
        self.model.records.withdrawals.clear()

    @invariant()
    def inv8_no_risk_added_while_feed_invalid(self) -> None:
        """§5.8: while a market's feed is invalid no trade adds risk in it (nor while the
        market is paused or reduce-only)."""
        for r in self.model.records.risk_changes:
            a = r["event"]
            risk = adds_risk(r["old"], a["new_size"])
            assert not (risk and not r["valid"]), f"trade added risk while the feed was invalid: {a}"
            paused, reduce_only = r["status"]
            assert not paused, f"trade in a paused market: {a}"
            assert not (risk and reduce_only), f"trade added risk in a reduce-only market: {a}"
        self.model.records.risk_changes.clear()

    # ================================================================ economic invariants (DESIGN §5b)
    @invariant()
    def inv11_every_shortfall_recorded(self) -> None:
        """§5b.11: no subaccount holds negative collateral without a position to cover it:
        every shortfall a close left went to the insurance fund, the deficit or a write-off.
        A subaccount's collateral and positions change only by an Exchange or Liquidator event
        that names it (a trade, a fee, a liquidation, ADL, bad debt...), so the subaccounts the
        step's events named are the ones to read: by induction, all of them hold it."""
        touched, self.model.records.touched = self.model.records.touched, set()
        if self.protocol is None:
            return
        for owner, sub in sorted(touched):
            acct = self.account(owner, sub)
            assert acct.markets or acct.collateral >= 0, (
                f"{owner}/{sub} holds no position and collateral {acct.collateral}: a shortfall nobody recorded")

    @invariant()
    def inv12_always_closable(self) -> None:
        """§5b.12: a reduce-only close is never refused for lack of Vault liquidity: every close
        the step's rules had refused was refused for the trader's own reasons, and the open
        position with the largest unrealised profit (the close the Vault pays most for) can be
        closed whole now, with no price limit, unless its own subaccount's state refuses it."""
        refused, self.model.records.closes_refused = self.model.records.closes_refused, []
        for what, reason in refused:
            assert reason in TRADERS_OWN_REFUSALS, f"{what} refused with {reason!r}, which is not the trader's doing"
        if self.protocol is None:
            return
        profits = [(self.protocol.lens.call("position_pnl", *key), key)
                   for key, size in sorted(self.model.sizes.items()) if size != 0]
        if not profits:
            return
        _, (owner, sub, market) = max(profits)
        size = self.size(owner, sub, market)
        r = self.refusals

        def close() -> None:
            self.protocol.exchange.transact("trade", sub, market, -size, 0 if size > 0 else MAX_UINT, sender=owner)

        outcome = r.attempt(close)
        if not outcome.reverted:
            return
        conditions: dict[str, Callable[[], bool]] = {
            "exchange: market paused": lambda: r.market_paused(market),
            "exchange: account bankrupt": lambda: self.account(owner, sub).bankrupt,
            "exchange: negative equity, liquidate instead": lambda: r.negative_equity_after(owner, sub, close),
        }
        assert outcome.reason in conditions, f"closing {owner}/{sub} m{market} whole was refused: {outcome.reason!r}"
        assert conditions[outcome.reason](), f"closing {owner}/{sub} m{market} refused with {outcome.reason!r} wrongly"
