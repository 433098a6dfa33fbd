"""The bad-input catalogue: every external function of every contract, fed what it must refuse.

For each function with inputs: zero and maximum values, unknown markets, assets, orders and
subaccounts, the wrong caller (access control), and, through the facade, negative numbers
where the contracts take unsigned ones. Each case either reverts with its reason or is a
documented no-op, and every token balance and book entry is the same after it as before
(`Fingerprint`). A coverage test checks that every external function with inputs has a case.

Re-entry: the protocol deployed on a malicious token (tests/contracts/ReentrantToken.vy) that
calls back into the protocol from inside each token transfer. Every contract runs under
`# pragma nonreentrancy on`, whose lock is a bare `assert` in transient storage: the
re-entered call reverts with *empty* revert data, no reason string. In bubble mode the token
passes that failure up, so the whole action reverts with no data and nothing changes; in
record mode the token logs it and the action completes with every invariant intact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sim.protocol
from sim.chain import Chain, Reverted, compile_contract, compile_project, deploy, make_chain
from sim.protocol import ROLES, MarketConfig, Protocol, ProtocolConfig
from sim.units import WAD, to_usdc, to_wad
from tests.unit.conftest import CONFIG
from tests.utils import invariants
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT, PRECISION
from tests.utils.pools import PoolSet, deploy_pool

MAX_INT = 2**255 - 1
MIN_INT = -(2**255)
UNKNOWN = 99  # a market, asset or order id nothing has created
REENTRANT_TOKEN = Path(__file__).resolve().parents[1] / "contracts" / "ReentrantToken.vy"
NOOP = "no-op"  # the case must succeed and change no balance and no book entry
NO_VALUE = object()  # a transaction's case: no return value to check
ZERO_ADDRESS = "0x" + "00" * 20


# ---------------------------------------------------------------- the state every case starts from
@pytest.fixture(scope="module")
def deployed(chain: Chain) -> Protocol:
    """A thin insurance fund (1,000 USD), so that a crash can make a subaccount bankrupt."""
    return Protocol.deploy(chain, CONFIG.model_copy(update={"insurance_fund": 1_000.0}))


@pytest.fixture(scope="module")
def pools(chain: Chain, deployed: Protocol) -> PoolSet:
    """A SpotPool beside the protocol: 1,000 base tokens against 2,000,000 USD."""
    return deploy_pool(chain, chain.new_account("pool-seeder"))


@dataclass
class Ctx:
    """A busy protocol: alice long 2 ETH, bob short 30 ETH, an LP, a stop-loss order; and a
    seeded SpotPool that alice can trade on (funded and approved)."""

    protocol: Protocol
    chain: Chain
    alice: str
    bob: str
    keeper: str
    lp: str
    owner: str
    stranger: str
    order: int
    pools: PoolSet

    @property
    def ex(self):
        return self.protocol.exchange

    def contract(self, name: str):
        """A protocol contract by name, or the SpotPool and its base token."""
        if name == "SpotPool":
            return self.pools.pool
        if name == "MockAsset":
            return self.pools.base
        return self.protocol.contracts[name]

    def eth_params(self, **changes: Any) -> tuple:
        fields = ("asset", "imf", "mmf", "taker_fee", "insurance_fee_share", "skew_scale", "max_oi", "funding_model",
                  "max_funding_rate", "max_funding_velocity", "mark_mode", "premium_half_life", "twap_window",
                  "allow_unrealized_withdrawal")
        values = dict(zip(fields, CONFIG.markets[0].exchange_params(0)))
        values.update(changes)
        return tuple(values[f] for f in fields)

    def crash_alice(self) -> None:
        """ETH to 1,500: alice (40 ETH long on 10k) is under water by more than the fund holds."""
        self.protocol.trade(self.alice, "ETH", 38)
        self.protocol.report_all("ETH", 1_500)


@pytest.fixture
def ctx(protocol: Protocol, chain: Chain, fund, alice, bob, keeper, lp, owner, pools) -> Ctx:
    fund(alice, 10_000)
    fund(bob, 200_000)
    protocol.trade(alice, "ETH", 2)
    protocol.trade(bob, "ETH", -30)
    protocol.mint(lp, 50_000)
    protocol.lp_deposit(lp, 10_000)
    order = protocol.place_trigger(alice, "ETH", -2, 1_900)
    pools.fund(alice, 10 * WAD, 100_000 * ONE)
    return Ctx(protocol, chain, alice, bob, keeper, lp, owner, chain.new_account("stranger"), order, pools)


@dataclass(frozen=True)
class Fingerprint:
    """Every token balance and book entry a bad input could move."""

    values: tuple

    @classmethod
    def of(cls, c: Ctx) -> Fingerprint:
        p, ex = c.protocol, c.ex
        people = (c.alice, c.bob, c.keeper, c.lp, c.owner, c.stranger)
        contracts = tuple(x.address for x in p.contracts.values())
        tokens = tuple(p.usdc.call("balanceOf", a) for a in (*people, *contracts)) + (p.usdc.call("totalSupply"),)
        books = tuple(ex.call("accounts", a, s) for a in people for s in (0, 1, UNKNOWN))
        positions = tuple(ex.call("positions", a, 0, m) for a in people for m in (0, 1))
        markets = tuple(ex.call("market_states", m)[:3] + ex.call("market_states", m)[8:] for m in (0, 1))
        vault = (p.vault.call("total_shares"), p.vault.call("shares", c.lp), p.vault.call("reserve_factor"))
        fund = (p.insurance_fund.call("total_paid"),)
        orders = (p.trigger_orders.call("orders", c.order),)
        pool, base = c.pools.pool, c.pools.base
        spot = tuple(base.call("balanceOf", a) for a in (*people, pool.address)) + (
            c.pools.quote.call("balanceOf", pool.address), base.call("totalSupply"), pool.call("reserve_base"),
            pool.call("reserve_quote"), pool.call("total_shares"), pool.call("price_cumulative"),
            pool.call("cumulative_at"), pool.call("observation_index"), tuple(pool.call("shares", a) for a in people))
        return cls(tokens + books + positions + markets + vault + fund + orders + spot + (ex.call("vault_receivable"),))


@dataclass(frozen=True)
class Case:
    """`call` must revert with `expect` (a reason, or None for no reason), or be a no-op
    (NOOP); a read-only no-op must return `returns`, the value its note states."""

    id: str
    contract: str
    function: str
    call: Callable[[Ctx], Any]
    expect: str | None
    prepare: Callable[[Ctx], None] | None = None
    note: str = ""
    returns: Any = NO_VALUE


def tx(contract: str, function: str, *args: Any, sender: str = "alice") -> Callable[[Ctx], Any]:
    """A transaction from one of the named accounts."""

    def call(c: Ctx) -> Any:
        return c.contract(contract).transact(function, *args, sender=getattr(c, sender))

    return call


def view(contract: str, function: str, *args: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        return c.contract(contract).call(function, *args)

    return call


def with_ctx(contract: str, function: str, build: Callable[[Ctx], tuple], sender: str = "alice",
             is_view: bool = False) -> Callable[[Ctx], Any]:
    """A call whose arguments depend on the context (addresses, params)."""

    def call(c: Ctx) -> Any:
        target = c.contract(contract)
        if is_view:
            return target.call(function, *build(c))
        return target.transact(function, *build(c), sender=getattr(c, sender))

    return call


def add_markets(n: int) -> Callable[[Ctx], None]:
    def prepare(c: Ctx) -> None:
        for _ in range(n):
            c.ex.transact("add_market", c.eth_params(), sender=c.owner)

    return prepare


def _feed(max_age=120, min_reporters=1, max_deviation=0, breach_timeout=300, spacing=60, band=True,
          min_price=0) -> tuple:
    return (max_age, min_reporters, max_deviation, breach_timeout, spacing, band, min_price)


def _liq(fee=to_wad(0.025), share=to_wad(0.5), min_notional=to_wad(10), when_invalid=True, min_keeper_fee=WAD,
         limit_scalar=WAD, window=0, adl_factor=0, adl_after=0) -> tuple:
    return (fee, share, min_notional, when_invalid, min_keeper_fee, limit_scalar, window, adl_factor, adl_after)


def _bankrupt_alice(c: Ctx) -> None:
    c.crash_alice()
    c.protocol.liquidate(c.keeper, c.alice, "ETH")


# ---------------------------------------------------------------- the catalogue
EX, LQ, TR, OR, VA, IF, TK = "Exchange", "Liquidator", "TriggerOrders", "Oracle", "Vault", "InsuranceFund", "MockUSDC"
LN = "ExchangeLens"
SP, MA = "SpotPool", "MockAsset"
ONE = 10**6  # one token (6 decimals)

CASES: list[Case] = [
    # -- Exchange: the owner's functions
    Case("add_market wrong caller", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(),), sender="stranger"), "ownable: caller is not the owner"),
    Case("add_market zeros", EX, "add_market", tx(EX, "add_market", (0,) * 13 + (False,), sender="owner"),
         "exchange: bad margin fractions"),
    Case("add_market max values", EX, "add_market", tx(EX, "add_market", (MAX_UINT,) * 13 + (True,), sender="owner"),
         "exchange: bad margin fractions"),
    Case("add_market mmf above imf", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(mmf=to_wad(0.2)),), sender="owner"),
         "exchange: bad margin fractions"),
    Case("add_market zero skew scale", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(skew_scale=0),), sender="owner"), "exchange: zero skew scale"),
    Case("add_market fee 100%", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(taker_fee=WAD),), sender="owner"), "exchange: fee too high"),
    Case("add_market fee share above 100%", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(insurance_fee_share=WAD + 1),), sender="owner"),
         "exchange: share above 100%"),
    Case("add_market unknown funding model", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(funding_model=2),), sender="owner"),
         "exchange: unknown funding model"),
    Case("add_market unknown mark mode", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(mark_mode=3),), sender="owner"), "exchange: unknown mark mode"),
    *[Case(f"add_market max {field}", EX, "add_market",
           with_ctx(EX, "add_market", lambda c, f=field: (c.eth_params(**{f: MAX_UINT}),), sender="owner"),
           "exchange: parameter too large")
      for field in ("skew_scale", "max_funding_rate", "max_funding_velocity", "premium_half_life")],
    Case("add_market max open interest", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(max_oi=MAX_UINT),), sender="owner"),
         "exchange: parameter too large"),
    Case("add_market median mark with a TWAP window beyond the oracle's buffer", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(mark_mode=2, twap_window=32 * 60),), sender="owner"),
         "exchange: twap window too long"),
    Case("add_market max TWAP window, oracle mark", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(twap_window=MAX_UINT),), sender="owner"),
         NOOP, note="an oracle mark reads no TWAP: the window is unused"),
    Case("add_market on an asset without a feed", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(asset=MAX_UINT),), sender="owner"), NOOP,
         note="listed, but its feed is invalid, so nothing can add risk in it (test_market_without_feed_is_reduce_only)"),
    Case("add_market a 17th market", EX, "add_market",
         with_ctx(EX, "add_market", lambda c: (c.eth_params(),), sender="owner"), "exchange: too many markets",
         prepare=add_markets(14)),
    Case("set_market_params wrong caller", EX, "set_market_params",
         with_ctx(EX, "set_market_params", lambda c: (0, c.eth_params()), sender="stranger"),
         "ownable: caller is not the owner"),
    Case("set_market_params unknown market", EX, "set_market_params",
         with_ctx(EX, "set_market_params", lambda c: (UNKNOWN, c.eth_params()), sender="owner"), "exchange: unknown market"),
    Case("set_market_params max market id", EX, "set_market_params",
         with_ctx(EX, "set_market_params", lambda c: (MAX_UINT, c.eth_params()), sender="owner"),
         "exchange: unknown market"),
    Case("set_market_params zeros", EX, "set_market_params",
         tx(EX, "set_market_params", 0, (0,) * 13 + (False,), sender="owner"), "exchange: bad margin fractions"),
    Case("set_market_params max skew scale", EX, "set_market_params",
         with_ctx(EX, "set_market_params", lambda c: (0, c.eth_params(skew_scale=MAX_UINT)), sender="owner"),
         "exchange: parameter too large"),
    Case("set_market_status wrong caller", EX, "set_market_status", tx(EX, "set_market_status", 0, True, False),
         "exchange: caller is not the guardian"),
    Case("set_market_status unknown market", EX, "set_market_status",
         tx(EX, "set_market_status", UNKNOWN, True, True, sender="owner"), "exchange: unknown market"),
    Case("set_role wrong caller", EX, "set_role", with_ctx(EX, "set_role", lambda c: (ROLES["guardian"], c.alice)),
         "ownable: caller is not the owner"),
    Case("set_role zero address", EX, "set_role",
         tx(EX, "set_role", ROLES["guardian"], "0x" + "00" * 20, sender="owner"), "exchange: zero address"),
    Case("set_role no role", EX, "set_role", with_ctx(EX, "set_role", lambda c: (0, c.alice), sender="owner"),
         "exchange: unknown role"),
    Case("set_role two roles at once", EX, "set_role",
         with_ctx(EX, "set_role", lambda c: (ROLES["guardian"] | ROLES["oracle"], c.alice), sender="owner"),
         "exchange: unknown role"),
    Case("transfer_ownership (exchange) wrong caller", EX, "transfer_ownership",
         with_ctx(EX, "transfer_ownership", lambda c: (c.stranger,), sender="stranger"), "ownable: caller is not the owner"),
    Case("transfer_ownership (exchange) zero", EX, "transfer_ownership",
         tx(EX, "transfer_ownership", "0x" + "00" * 20, sender="owner"), "ownable: new owner is the zero address"),
    # -- Exchange: accounts
    Case("set_isolated with a position", EX, "set_isolated", tx(EX, "set_isolated", 0, True),
         "exchange: close positions first"),
    Case("set_isolated unknown subaccount", EX, "set_isolated", tx(EX, "set_isolated", MAX_UINT, False), NOOP,
         note="any id is the caller's own subaccount; the flag is all that changes"),
    Case("deposit zero", EX, "deposit", tx(EX, "deposit", 0, 0), "exchange: zero amount"),
    Case("deposit max", EX, "deposit", tx(EX, "deposit", 0, MAX_UINT), "exchange: amount too large"),
    Case("deposit beyond balance", EX, "deposit", tx(EX, "deposit", 0, 10**15), "usdc: insufficient balance"),
    Case("deposit without allowance", EX, "deposit", tx(EX, "deposit", 0, ONE, sender="stranger"),
         "usdc: insufficient allowance", prepare=lambda c: c.protocol.mint(c.stranger, 1)),
    Case("deposit into a bankrupt subaccount", EX, "deposit", tx(EX, "deposit", 0, ONE), "exchange: account bankrupt",
         prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    Case("withdraw zero", EX, "withdraw", tx(EX, "withdraw", 0, 0), "exchange: zero amount"),
    Case("withdraw max", EX, "withdraw", tx(EX, "withdraw", 0, MAX_UINT), "exchange: amount too large"),
    Case("withdraw beyond collateral", EX, "withdraw", tx(EX, "withdraw", 0, to_usdc(10_000)),
         "exchange: withdrawal exceeds collateral"),
    Case("withdraw from an unknown subaccount", EX, "withdraw", tx(EX, "withdraw", UNKNOWN, 1),
         "exchange: withdrawal exceeds collateral"),
    Case("withdraw below initial margin", EX, "withdraw", tx(EX, "withdraw", 0, to_usdc(9_700)),
         "exchange: below initial margin"),
    Case("withdraw from a bankrupt subaccount", EX, "withdraw", tx(EX, "withdraw", 0, 1), "exchange: account bankrupt",
         prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    # -- Exchange: trading
    Case("trade unknown market", EX, "trade", tx(EX, "trade", 0, UNKNOWN, WAD, MAX_UINT), "exchange: unknown market"),
    Case("trade max market id", EX, "trade", tx(EX, "trade", 0, MAX_UINT, WAD, MAX_UINT), "exchange: unknown market"),
    Case("trade zero size", EX, "trade", tx(EX, "trade", 0, 0, 0, MAX_UINT), "exchange: zero size"),
    Case("trade max size", EX, "trade", tx(EX, "trade", 0, 0, MAX_INT, MAX_UINT), "exchange: size too large"),
    Case("trade min size", EX, "trade", tx(EX, "trade", 0, 0, MIN_INT, 0), "exchange: size too large"),
    Case("trade buy with limit zero", EX, "trade", tx(EX, "trade", 0, 0, WAD, 0), "exchange: price above limit"),
    Case("trade sell with max limit", EX, "trade", tx(EX, "trade", 0, 0, -WAD, MAX_UINT), "exchange: price below limit"),
    Case("trade from an empty subaccount", EX, "trade", tx(EX, "trade", UNKNOWN, 0, WAD, MAX_UINT),
         "exchange: below initial margin"),
    Case("trade beyond open interest cap", EX, "trade", tx(EX, "trade", 0, 0, to_wad(600), MAX_UINT, sender="bob"),
         "exchange: open interest cap"),
    Case("trade in a paused market", EX, "trade", tx(EX, "trade", 0, 0, -WAD, 0), "exchange: market paused",
         prepare=lambda c: c.protocol.set_market_status("ETH", True, False)),
    Case("trade_for wrong caller", EX, "trade_for", with_ctx(EX, "trade_for", lambda c: (c.alice, 0, 0, -WAD, 0)),
         "exchange: caller is not trigger orders"),
    Case("charge_fee wrong caller", EX, "charge_fee",
         with_ctx(EX, "charge_fee", lambda c: (c.alice, 0, c.stranger, ONE), sender="stranger"),
         "exchange: caller is not trigger orders"),
    Case("accrue unknown market", EX, "accrue", tx(EX, "accrue", UNKNOWN), "exchange: unknown market"),
    Case("accrue max market id", EX, "accrue", tx(EX, "accrue", MAX_UINT), "exchange: unknown market"),
    # -- Exchange: the Liquidator's hooks
    Case("liquidation_fill wrong caller", EX, "liquidation_fill",
         with_ctx(EX, "liquidation_fill", lambda c: (c.alice, 0, 0, -WAD, 1, c.stranger, ONE, ONE, ONE),
                  sender="stranger"),
         "exchange: caller is not the liquidator"),
    Case("declare_bankrupt wrong caller", EX, "declare_bankrupt",
         with_ctx(EX, "declare_bankrupt", lambda c: (c.alice, 0, 0, ONE), sender="stranger"),
         "exchange: caller is not the liquidator"),
    Case("discharge (exchange) wrong caller", EX, "discharge",
         with_ctx(EX, "discharge", lambda c: (c.alice, 0, 0), sender="stranger"),
         "exchange: caller is not the liquidator"),
    Case("deleverage_fill wrong caller", EX, "deleverage_fill",
         with_ctx(EX, "deleverage_fill", lambda c: (c.alice, 0, c.bob, 0, 0, -WAD, 1, 0), sender="stranger"),
         "exchange: caller is not the liquidator"),
    # -- Exchange: views
    *[Case(f"{fn} unknown market", contract, fn, with_ctx(contract, fn, build, is_view=True), "exchange: unknown market")
      for contract, fn, build in ((EX, "index_price", lambda c: (UNKNOWN,)), (EX, "mark_price", lambda c: (UNKNOWN,)),
                                  (LN, "funding_rate", lambda c: (UNKNOWN,)), (LN, "fill_price", lambda c: (UNKNOWN, WAD)),
                                  (LN, "accrued_funding", lambda c: (c.alice, 0, UNKNOWN)),
                                  (LN, "position_pnl", lambda c: (c.alice, 0, UNKNOWN)))],
    Case("fill_price max size", LN, "fill_price", view(LN, "fill_price", 0, MAX_INT), "exchange: size too large"),
    Case("fill_price min size", LN, "fill_price", view(LN, "fill_price", 0, MIN_INT), "exchange: size too large"),
    *[Case(f"{fn} unknown subaccount", contract, fn,
           with_ctx(contract, fn, lambda c: (c.stranger, MAX_UINT), is_view=True), NOOP,
           note=f"an unused subaccount reads as empty: {note}", returns=value)
      for contract, fn, value, note in ((EX, "health", (0, 0, 0, 0), "no equity, margin or notional"),
                                        (LN, "equity", 0, "0"),
                                        (EX, "accounts", (0, (), False, False, 0), "no collateral, markets or flags"))],
    # -- Exchange: issue 11's limits and delisting
    Case("set_market_limits wrong caller", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (0,) * 6, sender="stranger"), "ownable: caller is not the owner"),
    Case("set_market_limits unknown market", EX, "set_market_limits",
         tx(EX, "set_market_limits", UNKNOWN, (0,) * 6, sender="owner"), "exchange: unknown market"),
    Case("set_market_limits max values", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (MAX_UINT,) * 6, sender="owner"), "exchange: parameter too large"),
    Case("set_market_limits max leverage factor", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (0, 0, 0, 0, 10**24 + 1, 0), sender="owner"), "exchange: parameter too large"),
    Case("set_market_limits IMF caps reversed", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (2 * WAD, WAD, 0, 0, 0, 0), sender="owner"),
         "exchange: bad open-interest IMF caps"),
    Case("set_market_limits lower IMF cap alone", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (WAD, 0, 0, 0, 0, 0), sender="owner"), "exchange: bad open-interest IMF caps"),
    Case("set_market_limits leverage below 1", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (0, 0, 0, 0, WAD - 1, 0), sender="owner"), "exchange: max leverage below 1"),
    Case("set_market_limits a new settlement price after delisting", EX, "set_market_limits",
         tx(EX, "set_market_limits", 0, (0, 0, 0, 0, 0, 3 * WAD), sender="owner"), "exchange: market delisted",
         prepare=lambda c: c.ex.transact("set_market_limits", 0, (0, 0, 0, 0, 0, 2 * WAD), sender=c.owner)),
    Case("set_market_status lift reduce-only of a delisted market", EX, "set_market_status",
         tx(EX, "set_market_status", 0, False, False, sender="owner"), "exchange: market delisted",
         prepare=lambda c: c.ex.transact("set_market_limits", 0, (0, 0, 0, 0, 0, 2 * WAD), sender=c.owner)),
    Case("settle a listed market", EX, "settle", with_ctx(EX, "settle", lambda c: (c.alice, 0, 0), sender="stranger"),
         "exchange: market not delisted"),
    Case("settle unknown market", EX, "settle", with_ctx(EX, "settle", lambda c: (c.alice, 0, UNKNOWN),
                                                        sender="stranger"), "exchange: market not delisted"),
    Case("settle no position", EX, "settle", with_ctx(EX, "settle", lambda c: (c.stranger, 0, 0), sender="stranger"),
         "exchange: no position",
         prepare=lambda c: c.ex.transact("set_market_limits", 0, (0, 0, 0, 0, 0, 2 * WAD), sender=c.owner)),
    Case("settle a bankrupt subaccount", EX, "settle", with_ctx(EX, "settle", lambda c: (c.alice, 0, 0),
                                                               sender="stranger"), "exchange: account bankrupt",
         prepare=lambda c: (_bankrupt_alice(c),
                            c.ex.transact("set_market_limits", 0, (0, 0, 0, 0, 0, 2 * WAD), sender=c.owner))),
    Case("market_limits unknown market", EX, "market_limits", view(EX, "market_limits", UNKNOWN), NOOP,
         note="a storage getter: zeros", returns=(0,) * 6),
    Case("check_limits max values", LN, "check_limits", view(LN, "check_limits", (MAX_UINT,) * 6, 0),
         "exchange: parameter too large"),
    Case("initial_margin_fraction unknown market", LN, "initial_margin_fraction",
         view(LN, "initial_margin_fraction", UNKNOWN), "exchange: unknown market"),
    # -- ExchangeLens: the parameter rules the Exchange asks (add_market's cases above go through them)
    Case("check_params zeros", LN, "check_params",
         with_ctx(LN, "check_params", lambda c: ((0,) * 13 + (False,), c.protocol.oracle.address), is_view=True),
         "exchange: bad margin fractions"),
    Case("markets unknown market", EX, "markets", view(EX, "markets", UNKNOWN), NOOP, note="a storage getter: zeros",
         returns=(0,) * 13 + (False,)),
    Case("market_states unknown market", EX, "market_states", view(EX, "market_states", UNKNOWN), NOOP,
         note="a storage getter: zeros", returns=(0,) * 9 + (False, False, 0, 0, 0, 0)),
    Case("positions unknown market", EX, "positions", with_ctx(EX, "positions", lambda c: (c.alice, 0, UNKNOWN),
                                                                is_view=True), NOOP, note="a storage getter: zeros",
         returns=(0, 0, 0)),
    # -- Liquidator
    Case("set_params wrong caller", LQ, "set_params", tx(LQ, "set_params", 0, _liq(), sender="stranger"),
         "ownable: caller is not the owner"),
    Case("set_params unknown market", LQ, "set_params", tx(LQ, "set_params", UNKNOWN, _liq(), sender="owner"),
         "liquidator: unknown market"),
    Case("set_params fee 100%", LQ, "set_params", tx(LQ, "set_params", 0, _liq(fee=WAD), sender="owner"),
         "liquidator: fee too high"),
    Case("set_params max values", LQ, "set_params", tx(LQ, "set_params", 0, _liq(MAX_UINT, MAX_UINT, MAX_UINT, True,
                                                                                 MAX_UINT, MAX_UINT),
                                                       sender="owner"), "liquidator: fee too high"),
    *[Case(f"set_params max {name}", LQ, "set_params", tx(LQ, "set_params", 0, _liq(**{name: MAX_UINT}), sender="owner"),
           "liquidator: parameter too large") for name in ("min_keeper_fee", "limit_scalar", "adl_factor")],
    Case("set_params max window", LQ, "set_params", tx(LQ, "set_params", 0, _liq(window=MAX_UINT), sender="owner"),
         "liquidator: window too long"),
    Case("set_params adl after-factor above factor", LQ, "set_params",
         tx(LQ, "set_params", 0, _liq(adl_factor=WAD // 2, adl_after=WAD // 2 + 1), sender="owner"),
         "liquidator: adl after-factor above factor"),
    Case("deleverage_by_pnl off", LQ, "deleverage_by_pnl",
         with_ctx(LQ, "deleverage_by_pnl", lambda c: (c.alice, 0, 0, MAX_UINT), sender="keeper"),
         "liquidator: adl by pnl off"),
    Case("deleverage_by_pnl unknown market", LQ, "deleverage_by_pnl",
         with_ctx(LQ, "deleverage_by_pnl", lambda c: (c.alice, 0, UNKNOWN, MAX_UINT), sender="keeper"),
         "liquidator: adl by pnl off"),
    Case("deleverage_by_pnl below the factor", LQ, "deleverage_by_pnl",
         with_ctx(LQ, "deleverage_by_pnl", lambda c: (c.alice, 0, 0, MAX_UINT), sender="keeper"),
         "liquidator: pnl factor below adl",
         prepare=lambda c: c.protocol.liquidator.transact("set_params", 0, _liq(adl_factor=WAD // 2),
                                                          sender=c.owner)),
    Case("pnl_factor unknown market", LQ, "pnl_factor", view(LQ, "pnl_factor", UNKNOWN), "vault: unknown market"),
    Case("history unknown market", LQ, "history", view(LQ, "history", UNKNOWN, 0), NOOP,
         note="a storage getter: zeros", returns=(0, 0)),
    Case("history past the ring", LQ, "history", view(LQ, "history", 0, 16), None,
         note="a fixed array's getter past its end: the compiler's bounds check, no reason"),
    Case("history_head unknown market", LQ, "history_head", view(LQ, "history_head", UNKNOWN), NOOP,
         note="a storage getter: zeros", returns=0),
    Case("adl_active unknown market", LQ, "adl_active", view(LQ, "adl_active", UNKNOWN), NOOP,
         note="a storage getter: False", returns=False),
    Case("set_params keeper share above 100%", LQ, "set_params",
         tx(LQ, "set_params", 0, _liq(share=WAD + 1), sender="owner"), "liquidator: share above 100%"),
    Case("transfer_ownership wrong caller", LQ, "transfer_ownership",
         with_ctx(LQ, "transfer_ownership", lambda c: (c.stranger,), sender="stranger"),
         "ownable: caller is not the owner"),
    Case("transfer_ownership zero", LQ, "transfer_ownership",
         tx(LQ, "transfer_ownership", "0x" + "00" * 20, sender="owner"), "ownable: new owner is the zero address"),
    Case("discharge a solvent subaccount", LQ, "discharge",
         with_ctx(LQ, "discharge", lambda c: (c.alice, 0), sender="keeper"), "liquidator: not bankrupt"),
    Case("discharge a bankrupt still under water", LQ, "discharge",
         with_ctx(LQ, "discharge", lambda c: (c.alice, 0), sender="keeper"), "liquidator: still under water",
         prepare=_bankrupt_alice),
    Case("bankrupt_books unknown market", LQ, "bankrupt_books", view(LQ, "bankrupt_books", UNKNOWN, True), NOOP,
         note="a storage getter: zeros", returns=(0, 0, 0, 0)),
    Case("windows unknown market", LQ, "windows", view(LQ, "windows", UNKNOWN), NOOP,
         note="a storage getter: zeros", returns=(0, 0)),
    Case("liquidate unknown market", LQ, "liquidate",
         with_ctx(LQ, "liquidate", lambda c: (c.alice, 0, UNKNOWN, MAX_UINT), sender="keeper"), "exchange: unknown market"),
    Case("liquidate unknown subaccount", LQ, "liquidate",
         with_ctx(LQ, "liquidate", lambda c: (c.alice, UNKNOWN, 0, MAX_UINT), sender="keeper"), "liquidator: no position"),
    Case("liquidate a healthy subaccount", LQ, "liquidate",
         with_ctx(LQ, "liquidate", lambda c: (c.alice, 0, 0, MAX_UINT), sender="keeper"), "liquidator: not liquidatable"),
    Case("liquidate zero size", LQ, "liquidate",
         with_ctx(LQ, "liquidate", lambda c: (c.alice, 0, 0, 0), sender="keeper"), "liquidator: zero size",
         prepare=lambda c: c.crash_alice()),
    Case("liquidate a bankrupt subaccount", LQ, "liquidate",
         with_ctx(LQ, "liquidate", lambda c: (c.alice, 0, 0, MAX_UINT), sender="keeper"), "liquidator: account bankrupt",
         prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    Case("deleverage a solvent subaccount", LQ, "deleverage",
         with_ctx(LQ, "deleverage", lambda c: (c.alice, 0, c.bob, 0, 0, MAX_UINT), sender="keeper"),
         "liquidator: not bankrupt"),
    Case("deleverage unknown market", LQ, "deleverage",
         with_ctx(LQ, "deleverage", lambda c: (c.alice, 0, c.bob, 0, UNKNOWN, MAX_UINT), sender="keeper"),
         "exchange: unknown market", prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    Case("deleverage zero size", LQ, "deleverage",
         with_ctx(LQ, "deleverage", lambda c: (c.alice, 0, c.bob, 0, 0, 0), sender="keeper"), "liquidator: zero size",
         prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    Case("deleverage against itself", LQ, "deleverage",
         with_ctx(LQ, "deleverage", lambda c: (c.alice, 0, c.alice, 0, 0, MAX_UINT), sender="keeper"),
         "liquidator: target not opposite",
         prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    Case("deleverage against an unknown subaccount", LQ, "deleverage",
         with_ctx(LQ, "deleverage", lambda c: (c.alice, 0, c.bob, UNKNOWN, 0, MAX_UINT), sender="keeper"),
         "liquidator: target not opposite",
         prepare=lambda c: (c.crash_alice(), c.protocol.liquidate(c.keeper, c.alice, "ETH"))),
    *[Case(f"{fn} unknown subaccount", LQ, fn, with_ctx(LQ, fn, lambda c: (c.stranger, MAX_UINT, UNKNOWN), is_view=True),
           NOOP, note="no position: 0", returns=0) for fn in ("liquidation_price", "bankruptcy_price")],
    Case("is_liquidatable unknown subaccount", LQ, "is_liquidatable",
         with_ctx(LQ, "is_liquidatable", lambda c: (c.stranger, MAX_UINT), is_view=True), NOOP, note="False",
         returns=False),
    Case("params unknown market", LQ, "params", view(LQ, "params", UNKNOWN), NOOP, note="a storage getter: zeros",
         returns=(0, 0, 0, False, 0, 0, 0, 0, 0)),
    # -- TriggerOrders
    Case("place unknown market", TR, "place", tx(TR, "place", 0, UNKNOWN, -WAD, WAD, 0, 0, 0), "triggers: unknown market"),
    Case("place zero size", TR, "place", tx(TR, "place", 0, 0, 0, WAD, 0, 0, 0), "triggers: zero size"),
    Case("place max size", TR, "place", tx(TR, "place", 0, 0, MAX_INT, WAD, MAX_UINT, 0, 0), "triggers: size too large"),
    Case("place min size", TR, "place", tx(TR, "place", 0, 0, MIN_INT, WAD, 0, 0, 0), "triggers: size too large"),
    Case("place zero trigger price", TR, "place", tx(TR, "place", 0, 0, -WAD, 0, 0, 0, 0), "triggers: zero trigger price"),
    Case("place unknown kind", TR, "place", tx(TR, "place", 0, 0, -WAD, WAD, 1, 2, 0), "triggers: unknown kind"),
    Case("place a sell without a limit", TR, "place", tx(TR, "place", 0, 0, -WAD, WAD, 0, 0, 0),
         "triggers: no limit price"),
    Case("place a buy without a limit", TR, "place", tx(TR, "place", 0, 0, WAD, WAD, MAX_UINT, 0, 0),
         "triggers: no limit price"),
    Case("place max keeper fee", TR, "place", tx(TR, "place", 0, 0, -WAD, WAD, 0, 0, MAX_UINT),
         "triggers: keeper fee too large"),
    Case("place on an unknown subaccount, executed", TR, "place",
         lambda c: (c.protocol.place_trigger(c.alice, "ETH", -1, 1e12, subaccount=UNKNOWN),
                    c.protocol.execute_trigger(c.keeper, c.protocol.trigger_orders.call("order_count") - 1)),
         NOOP, note="placed, then cancelled on execution: no position to reduce"),
    Case("cancel unknown order", TR, "cancel", tx(TR, "cancel", UNKNOWN), "triggers: order not active"),
    Case("cancel someone else's order", TR, "cancel", with_ctx(TR, "cancel", lambda c: (c.order,), sender="bob"),
         "triggers: caller is not the owner"),
    Case("execute unknown order", TR, "execute", tx(TR, "execute", UNKNOWN, sender="keeper"), "triggers: order not active"),
    Case("execute an order not triggered", TR, "execute", with_ctx(TR, "execute", lambda c: (c.order,), sender="keeper"),
         "triggers: not triggered"),
    Case("is_triggered unknown order", TR, "is_triggered", view(TR, "is_triggered", UNKNOWN), NOOP, note="False",
         returns=False),
    Case("orders unknown order", TR, "orders", view(TR, "orders", UNKNOWN), NOOP, note="a storage getter: zeros",
         returns=(ZERO_ADDRESS,) + (0,) * 7 + (False,)),
    # -- Oracle
    Case("set_reporter wrong caller", OR, "set_reporter",
         with_ctx(OR, "set_reporter", lambda c: (c.stranger, True), sender="stranger"), "ownable: caller is not the owner"),
    Case("set_reporter zero", OR, "set_reporter", tx(OR, "set_reporter", "0x" + "00" * 20, True, sender="owner"),
         "oracle: zero reporter"),
    Case("set_reporter a 17th", OR, "set_reporter",
         with_ctx(OR, "set_reporter", lambda c: (c.chain.new_account("reporter-x16"), True), sender="owner"),
         "oracle: too many reporters",
         prepare=lambda c: [c.protocol.oracle.transact("set_reporter", c.chain.new_account(f"reporter-x{i}"), True,
                                                       sender=c.owner) for i in range(15)]),
    Case("set_reporter remove an unknown reporter", OR, "set_reporter",
         with_ctx(OR, "set_reporter", lambda c: (c.stranger, False), sender="owner"), NOOP, note="nothing to remove"),
    Case("set_feed wrong caller", OR, "set_feed", tx(OR, "set_feed", 0, _feed(), sender="stranger"),
         "ownable: caller is not the owner"),
    Case("set_feed zeros", OR, "set_feed", tx(OR, "set_feed", 0, (0, 0, 0, 0, 0, False, 0), sender="owner"),
         "oracle: zero max_age"),
    Case("set_feed zero min_reporters", OR, "set_feed", tx(OR, "set_feed", 0, _feed(min_reporters=0), sender="owner"),
         "oracle: bad min_reporters"),
    Case("set_feed 17 min_reporters", OR, "set_feed", tx(OR, "set_feed", 0, _feed(min_reporters=17), sender="owner"),
         "oracle: bad min_reporters"),
    *[Case(f"set_feed max {name}", OR, "set_feed", tx(OR, "set_feed", 0, _feed(**{name: MAX_UINT}), sender="owner"),
           "oracle: duration too long") for name in ("max_age", "breach_timeout", "spacing")],
    Case("set_feed max min_price", OR, "set_feed", tx(OR, "set_feed", 0, _feed(min_price=MAX_UINT), sender="owner"),
         "oracle: min price too large"),
    Case("clear_breach wrong caller", OR, "clear_breach", tx(OR, "clear_breach", 0, sender="stranger"),
         "ownable: caller is not the owner"),
    Case("clear_breach unknown asset", OR, "clear_breach", tx(OR, "clear_breach", UNKNOWN, sender="owner"),
         "oracle: unknown asset"),
    Case("clear_breach without fresh reports", OR, "clear_breach", tx(OR, "clear_breach", 0, sender="owner"),
         "oracle: too few fresh reports", prepare=lambda c: c.chain.mine(3_600)),
    Case("transfer_ownership (oracle) wrong caller", OR, "transfer_ownership",
         with_ctx(OR, "transfer_ownership", lambda c: (c.stranger,), sender="stranger"), "ownable: caller is not the owner"),
    Case("transfer_ownership (oracle) zero", OR, "transfer_ownership",
         tx(OR, "transfer_ownership", "0x" + "00" * 20, sender="owner"), "ownable: new owner is the zero address"),
    Case("set_source wrong caller", OR, "set_source",
         with_ctx(OR, "set_source", lambda c: (0, (c.pools.pool.address, 0, True)), sender="stranger"),
         "ownable: caller is not the owner"),
    Case("set_source unknown asset", OR, "set_source",
         with_ctx(OR, "set_source", lambda c: (UNKNOWN, (c.pools.pool.address, 0, True)), sender="owner"),
         "oracle: unknown asset"),
    Case("set_source not a contract", OR, "set_source",
         with_ctx(OR, "set_source", lambda c: (0, (c.stranger, 0, False)), sender="owner"),
         "oracle: pool is not a contract"),
    Case("set_source max window", OR, "set_source",
         with_ctx(OR, "set_source", lambda c: (0, (c.pools.pool.address, MAX_UINT, False)), sender="owner"),
         "oracle: window too long"),
    Case("set_source remove none", OR, "set_source", tx(OR, "set_source", 0, (ZERO_ADDRESS, MAX_UINT, True),
                                                        sender="owner"), NOOP,
         note="an empty pool removes the source, whatever the rest says; there was none"),
    Case("refresh without a pool", OR, "refresh", tx(OR, "refresh", 0, sender="stranger"), "oracle: no pool source"),
    Case("refresh unknown asset", OR, "refresh", tx(OR, "refresh", UNKNOWN, sender="stranger"),
         "oracle: no pool source"),
    Case("report to a pool-priced feed", OR, "report", lambda c: c.protocol.oracle.transact(
        "report", 0, 2_000 * WAD, sender=c.protocol.reporters[0]), "oracle: priced by its pool",
         prepare=lambda c: c.protocol.oracle.transact("set_source", 0, (c.pools.pool.address, 0, True), sender=c.owner)),
    Case("report not a reporter", OR, "report", tx(OR, "report", 0, WAD, sender="stranger"), "oracle: not a reporter"),
    Case("report unknown asset", OR, "report", lambda c: c.protocol.oracle.transact(
        "report", UNKNOWN, WAD, sender=c.protocol.reporters[0]), "oracle: unknown asset"),
    Case("report zero price", OR, "report", lambda c: c.protocol.oracle.transact(
        "report", 0, 0, sender=c.protocol.reporters[0]), "oracle: zero price"),
    Case("report max price", OR, "report", lambda c: c.protocol.oracle.transact(
        "report", 0, MAX_UINT, sender=c.protocol.reporters[0]), "oracle: price too large"),
    *[Case(f"{fn} unknown asset", OR, fn, view(OR, fn, *args), NOOP, note="no price: zeros, invalid", returns=value)
      for fn, args, value in (("latest", (UNKNOWN,), (0, 0, False)), ("median", (UNKNOWN,), (0, 0)),
                              ("candidate", (UNKNOWN,), (0, 0, False)), ("sources", (UNKNOWN,), (ZERO_ADDRESS, 0, False)),
                              ("price_band", (UNKNOWN,), (0, 0, 0, False)), ("twap_capacity", (UNKNOWN,), 0),
                              ("twap", (UNKNOWN, 600), 0), ("feeds", (UNKNOWN,), (0,) * 5 + (False, 0)),
                              ("state", (UNKNOWN,), (0,) * 9), ("observations", (UNKNOWN, 0), (0, 0)))],
    Case("twap max window", OR, "twap", view(OR, "twap", 0, MAX_UINT), NOOP,
         note="the average since the oldest observation kept: 100 s at 2,000, then 100 s at 2,100",
         prepare=lambda c: (c.chain.mine(100), c.protocol.report_all("ETH", 2_100), c.chain.mine(100)),
         returns=2_050 * WAD),
    Case("reporters index out of range", OR, "reporters", view(OR, "reporters", UNKNOWN), None,
         note="a DynArray getter past its end: the compiler's bounds check, no reason"),
    Case("is_reporter stranger", OR, "is_reporter", with_ctx(OR, "is_reporter", lambda c: (c.stranger,), is_view=True),
         NOOP, note="False", returns=False),
    Case("reports unknown asset", OR, "reports", with_ctx(OR, "reports", lambda c: (UNKNOWN, c.stranger), is_view=True),
         NOOP, note="a storage getter: zeros", returns=(0, 0)),
    # -- Vault
    Case("set_exchange (vault) wrong caller", VA, "set_exchange",
         with_ctx(VA, "set_exchange", lambda c: (c.stranger,), sender="stranger"), "ownable: caller is not the owner"),
    Case("set_exchange (vault) again", VA, "set_exchange",
         with_ctx(VA, "set_exchange", lambda c: (c.stranger,), sender="owner"), "vault: exchange already set"),
    Case("set_reserve_factor wrong caller", VA, "set_reserve_factor", tx(VA, "set_reserve_factor", 0, sender="stranger"),
         "ownable: caller is not the owner"),
    Case("set_nav_at_close_price wrong caller", VA, "set_nav_at_close_price",
         tx(VA, "set_nav_at_close_price", False, sender="stranger"), "ownable: caller is not the owner"),
    Case("transfer_ownership (vault) wrong caller", VA, "transfer_ownership",
         with_ctx(VA, "transfer_ownership", lambda c: (c.stranger,), sender="stranger"), "ownable: caller is not the owner"),
    Case("transfer_ownership (vault) zero", VA, "transfer_ownership",
         tx(VA, "transfer_ownership", "0x" + "00" * 20, sender="owner"), "ownable: new owner is the zero address"),
    Case("set_reserve_factor max", VA, "set_reserve_factor", tx(VA, "set_reserve_factor", MAX_UINT, sender="owner"),
         "vault: reserve factor too high"),
    Case("market_pnl unknown market", VA, "market_pnl", view(VA, "market_pnl", UNKNOWN), "vault: unknown market"),
    Case("deposit (vault) zero", VA, "deposit", tx(VA, "deposit", 0, sender="lp"), "vault: zero amount"),
    Case("deposit (vault) max", VA, "deposit", tx(VA, "deposit", MAX_UINT, sender="lp"), "vault: amount too large"),
    Case("deposit (vault) without allowance", VA, "deposit", tx(VA, "deposit", ONE, sender="stranger"),
         "usdc: insufficient allowance", prepare=lambda c: c.protocol.mint(c.stranger, 1)),
    Case("withdraw (vault) zero", VA, "withdraw", tx(VA, "withdraw", 0, sender="lp"), "vault: zero shares"),
    Case("withdraw (vault) max", VA, "withdraw", tx(VA, "withdraw", MAX_UINT, sender="lp"), "vault: insufficient shares"),
    Case("withdraw (vault) without shares", VA, "withdraw", tx(VA, "withdraw", 1, sender="stranger"),
         "vault: insufficient shares"),
    Case("withdraw (vault) a share worth nothing", VA, "withdraw", tx(VA, "withdraw", 1, sender="lp"),
         "vault: zero amount"),
    Case("pay (vault) wrong caller", VA, "pay", with_ctx(VA, "pay", lambda c: (c.stranger, ONE), sender="stranger"),
         "vault: caller is not the exchange"),
    Case("shares unknown provider", VA, "shares", with_ctx(VA, "shares", lambda c: (c.stranger,), is_view=True), NOOP,
         note="0", returns=0),
    # -- InsuranceFund
    Case("set_exchange (fund) wrong caller", IF, "set_exchange",
         with_ctx(IF, "set_exchange", lambda c: (c.stranger,), sender="stranger"), "ownable: caller is not the owner"),
    Case("transfer_ownership (fund) wrong caller", IF, "transfer_ownership",
         with_ctx(IF, "transfer_ownership", lambda c: (c.stranger,), sender="stranger"), "ownable: caller is not the owner"),
    Case("transfer_ownership (fund) zero", IF, "transfer_ownership",
         tx(IF, "transfer_ownership", "0x" + "00" * 20, sender="owner"), "ownable: new owner is the zero address"),
    Case("set_exchange (fund) again", IF, "set_exchange",
         with_ctx(IF, "set_exchange", lambda c: (c.stranger,), sender="owner"), "insurance: exchange already set"),
    Case("fund zero", IF, "fund", tx(IF, "fund", 0), "insurance: zero amount"),
    Case("fund max", IF, "fund", tx(IF, "fund", MAX_UINT), "usdc: insufficient allowance"),
    Case("pay (fund) wrong caller", IF, "pay", with_ctx(IF, "pay", lambda c: (c.stranger, ONE), sender="stranger"),
         "insurance: caller is not the exchange"),
    # -- MockUSDC
    Case("transfer to zero", TK, "transfer", tx(TK, "transfer", "0x" + "00" * 20, 1), "usdc: transfer to zero address"),
    Case("transfer max", TK, "transfer", with_ctx(TK, "transfer", lambda c: (c.bob, MAX_UINT)),
         "usdc: insufficient balance"),
    Case("transferFrom without allowance", TK, "transferFrom",
         with_ctx(TK, "transferFrom", lambda c: (c.bob, c.stranger, 1), sender="stranger"), "usdc: insufficient allowance"),
    Case("approve max", TK, "approve", with_ctx(TK, "approve", lambda c: (c.stranger, MAX_UINT), sender="stranger"), NOOP,
         note="an allowance moves no tokens"),
    Case("mint to zero", TK, "mint", tx(TK, "mint", "0x" + "00" * 20, 1), "usdc: mint to zero address"),
    Case("mint max", TK, "mint", with_ctx(TK, "mint", lambda c: (c.stranger, MAX_UINT)), "usdc: supply overflow"),
    Case("faucet max", TK, "faucet", tx(TK, "faucet", MAX_UINT, sender="stranger"), "usdc: supply overflow"),
    Case("balanceOf stranger", TK, "balanceOf", with_ctx(TK, "balanceOf", lambda c: (c.stranger,), is_view=True), NOOP,
         note="0", returns=0),
    Case("allowance stranger", TK, "allowance",
         with_ctx(TK, "allowance", lambda c: (c.stranger, c.alice), is_view=True), NOOP, note="0", returns=0),
    # -- SpotPool (1,000 base tokens against 2,000,000 USD; alice holds 10 base and 100,000 USD, approved)
    Case("add_liquidity zero base", SP, "add_liquidity", tx(SP, "add_liquidity", 0, ONE, 0), "pool: zero amount"),
    Case("add_liquidity zero quote", SP, "add_liquidity", tx(SP, "add_liquidity", WAD, 0, 0), "pool: zero amount"),
    Case("add_liquidity max", SP, "add_liquidity", tx(SP, "add_liquidity", MAX_UINT, MAX_UINT, 0),
         "pool: reserve overflow"),
    Case("add_liquidity too small for a share", SP, "add_liquidity", tx(SP, "add_liquidity", 1, 1, 0),
         "pool: zero shares"),
    Case("add_liquidity min_shares max", SP, "add_liquidity", tx(SP, "add_liquidity", WAD, 2_000 * ONE, MAX_UINT),
         "pool: slippage"),
    Case("add_liquidity without allowance", SP, "add_liquidity",
         tx(SP, "add_liquidity", WAD, 2_000 * ONE, 0, sender="stranger"), "asset: insufficient allowance"),
    Case("remove_liquidity zero", SP, "remove_liquidity", tx(SP, "remove_liquidity", 0, 0, 0), "pool: zero amount"),
    Case("remove_liquidity max", SP, "remove_liquidity", tx(SP, "remove_liquidity", MAX_UINT, 0, 0),
         "pool: insufficient shares"),
    Case("remove_liquidity min_base max", SP, "remove_liquidity",
         lambda c: c.pools.pool.transact("remove_liquidity", 10**6, MAX_UINT, 0, sender=c.pools.seeder),
         "pool: slippage"),
    Case("remove_liquidity min_quote max", SP, "remove_liquidity",
         lambda c: c.pools.pool.transact("remove_liquidity", 10**6, 0, MAX_UINT, sender=c.pools.seeder),
         "pool: slippage"),
    Case("swap zero", SP, "swap", tx(SP, "swap", True, 0, 0), "pool: zero amount"),
    Case("swap max", SP, "swap", tx(SP, "swap", False, MAX_UINT, 0), "pool: reserve overflow"),
    Case("swap one base unit", SP, "swap", tx(SP, "swap", True, 1, 0), "pool: zero output"),
    Case("swap min_out max", SP, "swap", tx(SP, "swap", False, 2_000 * ONE, MAX_UINT), "pool: slippage"),
    Case("swap min_out one above the quote", SP, "swap",
         lambda c: c.pools.pool.transact("swap", True, WAD, c.pools.pool.call("get_amount_out", True, WAD) + 1,
                                         sender=c.alice), "pool: slippage"),
    Case("swap more than the balance", SP, "swap", tx(SP, "swap", True, 11 * WAD, 0), "asset: insufficient balance"),
    Case("swap without allowance", SP, "swap", tx(SP, "swap", False, ONE, 0, sender="stranger"),
         "usdc: insufficient allowance"),
    Case("get_amount_out max", SP, "get_amount_out", view(SP, "get_amount_out", True, MAX_UINT), NOOP,
         note="more than a reserve can hold: 0", returns=0),
    Case("twap max window", SP, "twap", view(SP, "twap", MAX_UINT), NOOP,
         note="the average since the oldest observation: the seeding price", returns=2_000 * WAD),
    Case("shares stranger", SP, "shares", with_ctx(SP, "shares", lambda c: (c.stranger,), is_view=True), NOOP,
         note="0", returns=0),
    Case("observations past the ring", SP, "observations", view(SP, "observations", 64), None,
         note="a fixed array's getter past its end: the compiler's bounds check, no reason"),
    Case("observations unused slot", SP, "observations", view(SP, "observations", 63), NOOP,
         note="a storage getter: zeros", returns=(0, 0)),
    # -- MockAsset (the SpotPool's base token, 18 decimals)
    Case("transfer to zero (asset)", MA, "transfer", tx(MA, "transfer", ZERO_ADDRESS, 1),
         "asset: transfer to zero address"),
    Case("transfer max (asset)", MA, "transfer", with_ctx(MA, "transfer", lambda c: (c.bob, MAX_UINT)),
         "asset: insufficient balance"),
    Case("transferFrom without allowance (asset)", MA, "transferFrom",
         with_ctx(MA, "transferFrom", lambda c: (c.alice, c.stranger, 1), sender="stranger"),
         "asset: insufficient allowance"),
    Case("approve max (asset)", MA, "approve", with_ctx(MA, "approve", lambda c: (c.stranger, MAX_UINT), sender="stranger"),
         NOOP, note="an allowance moves no tokens"),
    Case("mint to zero (asset)", MA, "mint", tx(MA, "mint", ZERO_ADDRESS, 1), "asset: mint to zero address"),
    Case("mint max (asset)", MA, "mint", with_ctx(MA, "mint", lambda c: (c.stranger, MAX_UINT)), "asset: supply overflow"),
    Case("faucet max (asset)", MA, "faucet", tx(MA, "faucet", MAX_UINT, sender="stranger"), "asset: supply overflow"),
    Case("balanceOf stranger (asset)", MA, "balanceOf", with_ctx(MA, "balanceOf", lambda c: (c.stranger,), is_view=True),
         NOOP, note="0", returns=0),
    Case("allowance stranger (asset)", MA, "allowance",
         with_ctx(MA, "allowance", lambda c: (c.stranger, c.alice), is_view=True), NOOP, note="0", returns=0),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(ctx: Ctx, case: Case):
    """Reverts with its reason (or is a documented no-op) and leaves every balance as it was."""
    if case.prepare is not None:
        case.prepare(ctx)
    before = Fingerprint.of(ctx)
    if case.expect == NOOP:
        result = case.call(ctx)
        if case.returns is not NO_VALUE:
            assert result == case.returns, f"{case.id} returned {result!r}; its note says {case.note!r}"
    else:
        with reverts(case.expect):
            case.call(ctx)
    assert Fingerprint.of(ctx) == before, f"{case.id} changed balances or books"


def test_read_only_no_ops_state_their_values():
    """A view that answers a bad input without reverting must say what it answers."""
    read_only = {(name, e["name"]) for name, artifact in compile_project().items() for e in artifact.abi
                 if e["type"] == "function" and e["stateMutability"] in ("view", "pure")}
    unchecked = [c.id for c in CASES
                 if c.expect == NOOP and (c.contract, c.function) in read_only and c.returns is NO_VALUE]
    assert not unchecked, f"read-only no-ops without the value they return: {unchecked}"


def test_market_without_feed_is_reduce_only(ctx: Ctx):
    """A market listed on an asset the oracle has no feed for has no valid price: every trade
    that adds risk in it reverts, and the rest of the exchange is untouched."""
    market = ctx.ex.call("market_count")
    ctx.ex.transact("add_market", ctx.eth_params(asset=UNKNOWN), sender=ctx.owner)
    assert ctx.ex.call("index_price", market) == (0, False)
    before = Fingerprint.of(ctx)
    with reverts("exchange: oracle invalid"):
        ctx.ex.transact("trade", 0, market, WAD, MAX_UINT, sender=ctx.alice)
    assert Fingerprint.of(ctx) == before


def test_catalogue_covers_every_external_function():
    """Every external function that takes an input, in every contract, has at least one case."""
    covered = {(c.contract, c.function) for c in CASES}
    missing = []
    for name, artifact in compile_project().items():
        for entry in artifact.abi:
            if entry["type"] == "function" and entry["inputs"] and (name, entry["name"]) not in covered:
                missing.append(f"{name}.{entry['name']}")
    assert not missing, f"no bad-input case for: {', '.join(sorted(missing))}"


def test_fresh_vault_and_fund_refuse_a_zero_exchange(chain: Chain, owner):
    """set_exchange's zero check, on contracts that have no exchange yet; and a Vault without
    an exchange takes no deposits."""
    artifacts = compile_project()
    token = deploy(chain, artifacts["MockUSDC"], sender=owner)
    vault = deploy(chain, artifacts["Vault"], token.address, 6, 0, sender=owner)
    fund = deploy(chain, artifacts["InsuranceFund"], token.address, sender=owner)
    with reverts("vault: zero exchange"):
        vault.transact("set_exchange", "0x" + "00" * 20, sender=owner)
    with reverts("insurance: zero exchange"):
        fund.transact("set_exchange", "0x" + "00" * 20, sender=owner)
    with reverts("vault: no exchange"):
        vault.transact("deposit", 1, sender=owner)


# ---------------------------------------------------------------- negative numbers through the facade
FACADE_NEGATIVES: list[tuple[str, Callable[[Ctx], Any]]] = [
    ("mint", lambda c: c.protocol.mint(c.alice, -1)),
    ("deposit amount", lambda c: c.protocol.deposit(c.alice, -1)),
    ("deposit subaccount", lambda c: c.protocol.deposit(c.alice, 1, -1)),
    ("withdraw amount", lambda c: c.protocol.withdraw(c.alice, -1)),
    ("withdraw subaccount", lambda c: c.protocol.withdraw(c.alice, 1, -1)),
    ("set_isolated subaccount", lambda c: c.protocol.set_isolated(c.alice, -1)),
    ("trade subaccount", lambda c: c.protocol.trade(c.alice, "ETH", 1, -1)),
    ("trade limit price", lambda c: c.protocol.trade(c.alice, "ETH", 1, limit_price=-2_000)),
    ("close_position subaccount", lambda c: c.protocol.close_position(c.alice, "ETH", -1)),
    ("lp_deposit", lambda c: c.protocol.lp_deposit(c.lp, -1)),
    ("lp_withdraw", lambda c: c.protocol.lp_withdraw(c.lp, -1)),
    ("liquidate max_size", lambda c: c.protocol.liquidate(c.keeper, c.alice, "ETH", max_size=-1)),
    ("liquidate subaccount", lambda c: c.protocol.liquidate(c.keeper, c.alice, "ETH", -1)),
    ("deleverage size", lambda c: c.protocol.deleverage(c.keeper, (c.alice, 0), (c.bob, 0), "ETH", size=-1)),
    ("deleverage subaccount", lambda c: c.protocol.deleverage(c.keeper, (c.alice, -1), (c.bob, 0), "ETH")),
    ("place_trigger trigger price", lambda c: c.protocol.place_trigger(c.alice, "ETH", -1, -1_900)),
    ("place_trigger limit price", lambda c: c.protocol.place_trigger(c.alice, "ETH", -1, 1_900, limit_price=-1)),
    ("place_trigger keeper fee", lambda c: c.protocol.place_trigger(c.alice, "ETH", -1, 1_900, keeper_fee=-1)),
    ("place_trigger subaccount", lambda c: c.protocol.place_trigger(c.alice, "ETH", -1, 1_900, subaccount=-1)),
    ("cancel_trigger order id", lambda c: c.protocol.cancel_trigger(c.alice, -1)),
    ("execute_trigger order id", lambda c: c.protocol.execute_trigger(c.keeper, -1)),
    ("report_price", lambda c: c.protocol.report_price("ETH", -2_000)),
    ("report_all", lambda c: c.protocol.report_all("ETH", -2_000)),
    ("market params", lambda c: c.protocol.set_market_params(MarketConfig(name="ETH", max_oi=-1))),
    ("swap amount", lambda c: c.protocol.swap(c.alice, "ETH", True, -1)),
    ("swap min_out", lambda c: c.protocol.swap(c.alice, "ETH", True, 1, min_out=-1)),
    ("pool_quote amount", lambda c: c.protocol.pool_quote("ETH", False, -1)),
    ("pool_twap window", lambda c: c.protocol.pool_twap("ETH", -1)),
    ("mint_base amount", lambda c: c.protocol.mint_base(c.alice, "ETH", -1)),
]


@pytest.mark.parametrize("call", [c for _, c in FACADE_NEGATIVES], ids=[n for n, _ in FACADE_NEGATIVES])
def test_facade_rejects_negative_numbers(ctx: Ctx, call):
    """A negative amount, price, size limit or id raises a ValueError that names it, before
    anything is sent."""
    before = Fingerprint.of(ctx)
    nonces = {a: ctx.chain.get_nonce(a) for a in (ctx.alice, ctx.keeper, ctx.lp, ctx.owner)}
    with pytest.raises(ValueError, match="negative|greater than"):
        call(ctx)
    assert {a: ctx.chain.get_nonce(a) for a in nonces} == nonces, "a transaction was sent"
    assert Fingerprint.of(ctx) == before


# ---------------------------------------------------------------- re-entry through a malicious token
@pytest.fixture(scope="module")
def reentrant() -> Iterator[Protocol]:
    """The protocol deployed on ReentrantToken in place of MockUSDC."""
    chain = make_chain("revm")
    artifacts = {**compile_project(), "MockUSDC": compile_contract(REENTRANT_TOKEN)}
    original = sim.protocol.compile_project
    sim.protocol.compile_project = lambda *a, **kw: artifacts
    try:
        protocol = Protocol.deploy(chain, ProtocolConfig(markets=CONFIG.markets, insurance_fund=10_000.0,
                                                         vault_liquidity=2_000_000.0))
    finally:
        sim.protocol.compile_project = original
    assert protocol.usdc.artifact.name == "ReentrantToken"
    yield protocol
    chain.close()


@dataclass(frozen=True)
class Reentry:
    """`action` moves tokens; `payload` is what the token calls back, on the contract `target`."""

    id: str
    action: Callable[[Protocol, dict[str, str]], Any]
    target: str
    payload: Callable[[Protocol, dict[str, str]], bytes]
    prepare: Callable[[Protocol, dict[str, str]], None] | None = None


def _crash(p: Protocol, who: dict[str, str]) -> None:
    p.trade(who["alice"], "ETH", 40)
    p.report_all("ETH", 1_500)


REENTRIES = [
    Reentry("Exchange.deposit -> Exchange.withdraw", lambda p, w: p.deposit(w["alice"], 100), "Exchange",
            lambda p, w: p.exchange.encode("withdraw", 0, 1)),
    Reentry("Exchange.withdraw -> Exchange.deposit", lambda p, w: p.withdraw(w["alice"], 100), "Exchange",
            lambda p, w: p.exchange.encode("deposit", 0, 1)),
    Reentry("Exchange.trade (profit paid by the Vault) -> Exchange.trade",
            lambda p, w: p.close_position(w["bob"], "ETH"), "Exchange",
            lambda p, w: p.exchange.encode("trade", 0, 0, WAD, MAX_UINT),
            prepare=lambda p, w: p.report_all("ETH", 1_900)),
    Reentry("Exchange.trade (loss paid to the Vault) -> Vault.nav (reads the Exchange mid-trade)",
            lambda p, w: p.close_position(w["bob"], "ETH"), "Vault",
            lambda p, w: p.vault.encode("nav"),
            prepare=lambda p, w: p.report_all("ETH", 2_100)),
    Reentry("Exchange.trade (loss) -> Exchange.health (a view, mid-trade)",
            lambda p, w: p.close_position(w["bob"], "ETH"), "Exchange",
            lambda p, w: p.exchange.encode("health", w["bob"], 0),
            prepare=lambda p, w: p.report_all("ETH", 2_100)),
    Reentry("Vault.deposit -> Vault.withdraw", lambda p, w: p.lp_deposit(w["lp"], 100), "Vault",
            lambda p, w: p.vault.encode("withdraw", 1)),
    Reentry("Vault.withdraw -> Vault.deposit", lambda p, w: p.lp_withdraw(w["lp"], 50), "Vault",
            lambda p, w: p.vault.encode("deposit", 1)),
    Reentry("InsuranceFund.fund -> InsuranceFund.fund",
            lambda p, w: p.insurance_fund.transact("fund", ONE, sender=w["alice"]), "InsuranceFund",
            lambda p, w: p.insurance_fund.encode("fund", 1),
            prepare=lambda p, w: p._approve(w["alice"], p.insurance_fund.address)),
    Reentry("Liquidator.liquidate (keeper fee) -> Liquidator.liquidate",
            lambda p, w: p.liquidate(w["keeper"], w["alice"], "ETH"), "Liquidator",
            lambda p, w: p.liquidator.encode("liquidate", w["alice"], 0, 0, MAX_UINT),
            prepare=lambda p, w: (p.trade(w["alice"], "ETH", 40), p.report_all("ETH", 1_800))),
    Reentry("Liquidator.liquidate (bad debt paid by the fund) -> Exchange.deposit",
            lambda p, w: p.liquidate(w["keeper"], w["alice"], "ETH"), "Exchange",
            lambda p, w: p.exchange.encode("deposit", 0, 1), prepare=_crash),
    Reentry("TriggerOrders.execute (keeper fee) -> TriggerOrders.execute",
            lambda p, w: p.execute_trigger(w["keeper"], 0), "TriggerOrders",
            lambda p, w: p.trigger_orders.encode("execute", 0),
            # in a block of its own: a trigger fills no worse than its block's start allows
            prepare=lambda p, w: (p.place_trigger(w["alice"], "ETH", -2, 1_950, keeper_fee=5.0),
                                  p.chain.mine(12), p.report_all("ETH", 1_940))),
]


@pytest.fixture
def reentry_world(reentrant: Protocol) -> Iterator[tuple[Protocol, dict[str, str]]]:
    p = reentrant
    snap = p.snapshot()
    who = {name: p.chain.new_account(name) for name in ("alice", "bob", "keeper", "lp")}
    for name, usd in (("alice", 10_000), ("bob", 200_000)):
        p.mint(who[name], usd + 1_000)
        p.deposit(who[name], usd)
    p.mint(who["lp"], 10_000)
    p.lp_deposit(who["lp"], 5_000)
    p.trade(who["alice"], "ETH", 2)
    p.trade(who["bob"], "ETH", -30)
    yield p, who
    p.revert(snap)


def _token_state(p: Protocol, who: dict[str, str]) -> tuple:
    holders = [*who.values(), *(c.address for c in p.contracts.values()), p.deployer]
    return (tuple(p.usdc.call("balanceOf", h) for h in holders), p.usdc.call("totalSupply"),
            tuple(p.exchange.call("accounts", who[n], 0)[0] for n in ("alice", "bob")),
            p.vault.call("total_shares"), p.insurance_fund.call("total_paid"), p.exchange.call("vault_receivable"))


@pytest.mark.parametrize("case", REENTRIES, ids=[r.id for r in REENTRIES])
def test_reentry_reverts_and_moves_nothing(reentry_world, case: Reentry):
    """Bubble mode: the re-entered call hits the nonreentrancy lock (empty revert data), so the
    whole action reverts with no reason, and every balance and book entry stays."""
    p, who = reentry_world
    if case.prepare:
        case.prepare(p, who)
    target = p.contracts[case.target].address
    p.usdc.transact("arm", target, case.payload(p, who), 1, sender=who["alice"])
    before = _token_state(p, who)
    with pytest.raises(Reverted) as info:
        case.action(p, who)
    assert info.value.reason is None and info.value.data == b"", f"re-entry got {info.value!r}, not the bare lock"
    assert _token_state(p, who) == before


@pytest.mark.parametrize("case", REENTRIES, ids=[r.id for r in REENTRIES])
def test_reentry_is_blocked_and_the_action_completes(reentry_world, case: Reentry):
    """Record mode: the token logs the re-entry's failure (the lock's empty revert data), the
    action itself completes, and the protocol's books still balance (DESIGN §5.1-5.3)."""
    p, who = reentry_world
    if case.prepare:
        case.prepare(p, who)
    target = p.contracts[case.target].address
    p.usdc.transact("arm", target, case.payload(p, who), 2, sender=who["alice"])
    cursor = p.chain.events_since(0)[1]
    case.action(p, who)
    events, _ = p.chain.events_since(cursor)
    attempts = [e.args for e in events if e.name == "Reentry"]
    assert attempts, "the action moved no tokens: nothing tried to re-enter"
    assert all(a["success"] is False and a["data"] == b"" for a in attempts), attempts
    p.usdc.transact("disarm", sender=who["alice"])
    subaccounts = [(who["alice"], 0), (who["bob"], 0)]
    holders = [*who.values(), p.deployer, p.chain.new_account("seed-lp")]
    invariants.all_invariants(p, subaccounts, holders)
