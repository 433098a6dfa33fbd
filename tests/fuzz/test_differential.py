"""Differential test: the same hypothesis-drawn sequence of actions on revm and on py-evm (the
reference EVM) gives identical return values and revert reasons, events, token balances and
storage-level views (DESIGN §3: the same scenario and seed give the same state on both).

py-evm is about ten times slower than revm, so examples are few (`DIFFERENTIAL_EXAMPLES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sim.chain import Reverted, make_chain
from sim.protocol import Protocol
from tests.fuzz import strategies as S
from tests.fuzz.settings import fuzz_settings, profile_name
from tests.utils import invariants
from tests.utils.constants import WAD

DIFFERENTIAL_EXAMPLES = {"ci": 4, "dev": 2, "campaign": 40}
Action = tuple  # ("kind", intent)

actions = st.one_of(
    S.deposits().map(lambda d: ("deposit", d)),
    S.withdrawals().map(lambda w: ("withdraw", w)),
    S.trades().map(lambda t: ("trade", t)),
    S.trades().map(lambda t: ("trade", t)),
    S.price_moves(kinds=("small", "medium", "gap", "disagree", "single")).map(lambda m: ("price", m)),
    S.time_steps().map(lambda t: ("time", t)),
    S.lp_deposits().map(lambda d: ("lp_deposit", d)),
    S.lp_withdrawals().map(lambda w: ("lp_withdraw", w)),
    S.liquidations(anyone=True).map(lambda liq: ("liquidate", liq)),
    S.trigger_placements().map(lambda o: ("trigger", o)),
    S.picks.map(lambda pick: ("execute", pick)),
)


@dataclass
class Transcript:
    """Everything one run observed, in order."""

    steps: list[Any] = field(default_factory=list)  # (action, outcome: return value or ("reverted", reason))
    events: list[Any] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Applies actions through the facade; every choice it makes depends only on chain reads,
    so two correct EVMs make the same choices."""

    def __init__(self, backend: str, setup: S.Setup) -> None:
        self.chain = make_chain(backend)
        self.p = Protocol.deploy(self.chain, setup.config())
        self.traders = [self.chain.new_account(t) for t in S.TRADERS]
        self.lps = [self.chain.new_account(lp) for lp in S.LPS]
        self.keeper = self.chain.new_account("keeper")
        for t in self.traders:
            self.p.mint(t, S.TRADER_WALLET)
            self.p.deposit(t, 20_000.0)
        for lp in self.lps:
            self.p.mint(lp, S.LP_WALLET)
        self.prices = [m.initial_price for m in S.MARKETS]
        self.transcript = Transcript()
        self._cursor = 0

    def run(self, program: list[Action]) -> Transcript:
        for action in program:
            try:
                outcome = self.apply(*action)
            except Reverted as exc:
                outcome = ("reverted", exc.reason, exc.data)
            self.transcript.steps.append((action, outcome))
            events, self._cursor = self.chain.events_since(self._cursor)
            self.transcript.events.extend(events)
        self.transcript.final = self.views()
        self.chain.close()
        return self.transcript

    def apply(self, kind: str, x: Any) -> Any:
        p = self.p
        if kind == "deposit":
            return p.deposit(self.traders[x.trader], x.usd, x.subaccount)
        if kind == "withdraw":
            owner = self.traders[x.trader]
            positive = max(p.exchange.call("accounts", owner, x.subaccount)[0], 0) // 10**12
            tokens = max(1, int(positive * x.fraction))
            return p.withdraw(owner, tokens / 10**6, x.subaccount)
        if kind == "trade":
            owner = self.traders[x.trader]
            market = p.market(x.market)
            size = p.exchange.call("positions", owner, x.subaccount, market)[0]
            equity = max(p.exchange.call("health", owner, x.subaccount)[0], 100 * WAD)
            base = int(x.leverage * WAD) * equity // max(p.exchange.call("index_price", market)[0], 1)
            delta = {"close": -size, "reduce": -size // 2, "dust": x.side * x.dust}.get(x.kind, x.side * base)
            if delta == 0:
                return None
            return p.trade_wad(owner, market, delta, x.subaccount, slippage=x.slippage)
        if kind == "price":
            m = p.market(x.market)
            self.prices[m] = max(self.prices[m] * (1 + x.move), S.MARKETS[m].initial_price * S.PRICE_FLOOR)
            price = float(f"{self.prices[m]:.8g}")
            if x.kind == "single":
                return p.report_price(m, price, p.reporters[x.reporter])
            if x.kind == "disagree":
                return [p.report_price(m, float(f"{price * (1 + s):.8g}"), r) for s, r in zip(x.spreads, p.reporters)]
            return p.report_all(m, price)
        if kind == "time":
            self.chain.mine(x.seconds)
            if x.refresh:
                for m, price in enumerate(self.prices):
                    p.report_all(m, float(f"{price:.8g}"))
            return self.chain.timestamp
        if kind == "lp_deposit":
            return p.lp_deposit(self.lps[x.lp], x.usd)
        if kind == "lp_withdraw":
            shares = p.vault.call("shares", self.lps[x.lp]) * x.fraction // 10**12
            return p.lp_withdraw(self.lps[x.lp], max(shares, 1) / 10**6)
        if kind == "liquidate":
            held = [(t, s, m) for t in self.traders for s in S.SUBACCOUNTS for m in range(len(S.MARKETS))
                    if p.exchange.call("positions", t, s, m)[0] != 0]
            if not held:
                return None
            owner, sub, market = held[x.pick % len(held)]
            return p.liquidate(self.keeper, owner, market, sub)
        if kind == "trigger":
            owner = self.traders[x.trader]
            market = p.market(x.market)
            size = p.exchange.call("positions", owner, x.subaccount, market)[0]
            side = -1 if size >= 0 else 1
            index = p.exchange.call("index_price", market)[0] / WAD
            return p.place_trigger(owner, market, side * max(abs(size) / WAD * x.fraction, 0.001),
                                   index * (1 + x.distance), x.kind, x.subaccount, keeper_fee=x.keeper_fee)
        if kind == "execute":
            count = p.trigger_orders.call("order_count")
            return p.execute_trigger(self.keeper, x % count) if count else None
        raise ValueError(f"unknown action {kind!r}")

    def views(self) -> dict[str, Any]:
        """Balances and the contracts' storage, read through their views and getters."""
        p, ex = self.p, self.p.exchange
        holders = [*self.traders, *self.lps, self.keeper, p.deployer, *(c.address for c in p.contracts.values())]
        markets = range(len(S.MARKETS))
        subaccounts = [(t, s) for t in self.traders for s in S.SUBACCOUNTS]
        return {
            "balances": [p.usdc.call("balanceOf", h) for h in holders],
            "supply": p.usdc.call("totalSupply"),
            "accounts": [ex.call("accounts", t, s) for t, s in subaccounts],
            "health": [ex.call("health", t, s) for t, s in subaccounts],
            "positions": [ex.call("positions", t, s, m) for t, s in subaccounts for m in markets],
            "markets": [(ex.call("markets", m), ex.call("market_states", m), ex.call("mark_price", m),
                         p.lens.call("funding_rate", m), ex.call("index_price", m)) for m in markets],
            # the traders' PnL from the markets' aggregates (accrued in a snapshot, rolled back)
            "exchange": (ex.call("vault_receivable"), ex.call("vault_debt"), invariants.traders_pnl(p),
                         ex.call("open_interest_notional")),
            "vault": (p.vault.call("nav_bounds"), p.vault.call("share_price"), p.vault.call("total_shares"),
                      [p.vault.call("shares", lp) for lp in self.lps]),
            "fund": (p.insurance_fund.call("total_paid"), p.insurance_fund.call("token_balance")),
            "oracle": [(p.oracle.call("latest", m), p.oracle.call("price_band", m), p.oracle.call("state", m),
                        p.oracle.call("median", m), p.oracle.call("twap", m, 600)) for m in markets],
            "orders": [p.trigger_orders.call("orders", i) for i in range(p.trigger_orders.call("order_count"))],
            "liquidatable": [p.liquidator.call("is_liquidatable", t, s) for t, s in subaccounts],
            "liquidator": [(p.liquidator.call("windows", m), p.liquidator.call("bankrupt_books", m, True),
                            p.liquidator.call("bankrupt_books", m, False)) for m in markets],
            "clock": (self.chain.block_number, self.chain.timestamp),
        }


@fuzz_settings(max_examples=DIFFERENTIAL_EXAMPLES.get(profile_name(), 4), stateful_step_count=1)
@given(setup=S.setups(), program=st.lists(actions, min_size=5, max_size=14))
def test_revm_and_pyevm_agree(setup: S.Setup, program: list[Action]):
    revm = Runner("revm", setup).run(program)
    pyevm = Runner("pyevm", setup).run(program)
    for i, (a, b) in enumerate(zip(revm.steps, pyevm.steps, strict=True)):
        assert a == b, f"step {i} {a[0]}: revm {a[1]!r} != pyevm {b[1]!r}"
    assert len(revm.events) == len(pyevm.events), (len(revm.events), len(pyevm.events))
    for a, b in zip(revm.events, pyevm.events):
        assert a == b, f"event differs:\nrevm  {a}\npyevm {b}"
    for key in revm.final:
        assert revm.final[key] == pyevm.final[key], f"{key}: revm {revm.final[key]} != pyevm {pyevm.final[key]}"
