"""Hypothesis strategies for the stateful suite (curve-stablecoin's tests/fuzz/strategies.py style).

Every strategy builds a valid *intent* by construction: who acts, on what, and how big relative
to the state (a leverage, a fraction of a position, a fraction of collateral). The machine
resolves an intent against the chain when the rule runs, so a rule never needs `assume` and
hypothesis' printed reproduction (`state.trade(intent=TradeIntent(...))`) replays as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st
from hypothesis.strategies import composite

from sim.protocol import MarketConfig, OracleConfig, ProtocolConfig

# ---------------------------------------------------------------- the fuzzed deployment
TRADERS = ("alice", "bob", "carol")
SUBACCOUNTS = (0, 1, 2)
ISOLATED_SUBACCOUNT = 2  # every trader's subaccount 2 is isolated at set-up (dYdX v4's isolated margin)
WHALE_SUBACCOUNTS = 100  # a whale storyline opens subaccount 100, 101, ...: fresh ones, that no other rule draws
LPS = ("lp-0", "lp-1")
REPORTERS = 3
TRADER_WALLET = 2_000_000.0  # USD minted to each trader at set-up
LP_WALLET = 5_000_000.0
LP_STAKES = (100_000.0, 1_000_000.0)  # what each LP deposits into the Vault at set-up

# Three markets that between them cover every mode: premium and velocity funding; oracle,
# premium and median marks; a market that lets unrealised PnL leave (the Mango switch) and one
# that stops liquidating while its feed is invalid. Each has a per-block liquidation limit
# (liquidation_limit_scalar x taker fee x skew scale base units: 40 ETH, 2 BTC, 500 SOL), so a
# whale's liquidation takes a few blocks: the keepers come back each block (test_stateful.py).
MARKETS = (
    MarketConfig(name="ETH", initial_price=2_000.0, skew_scale=20_000.0, max_oi=1_000.0, taker_fee=0.0005,
                 funding_model="premium", mark_mode="oracle", liquidation_limit_scalar=4.0),
    MarketConfig(name="BTC", initial_price=30_000.0, skew_scale=500.0, max_oi=60.0, taker_fee=0.001,
                 funding_model="velocity", max_funding_velocity=0.5, mark_mode="premium", min_position_notional=50.0,
                 liquidation_limit_scalar=4.0),
    MarketConfig(name="SOL", initial_price=100.0, imf=0.2, mmf=0.1, skew_scale=200_000.0, max_oi=50_000.0,
                 taker_fee=0.0005, funding_model="premium", mark_mode="median", allow_unrealized_withdrawal=True,
                 liquidate_when_invalid=False, liquidation_fee=0.01, liquidation_limit_scalar=5.0),
)
MARKET_NAMES = tuple(m.name for m in MARKETS)
# reporters' prices stay within these factors of the initial price (repeated ±60% gaps would
# otherwise walk a price to 0 or to overflow, which tests nothing)
PRICE_FLOOR, PRICE_CEILING = 0.05, 20.0
ORACLE = OracleConfig(max_age=3_600, min_reporters=2, max_deviation=0.25, breach_timeout=900, observation_spacing=60)

markets = st.sampled_from(MARKET_NAMES)
traders = st.integers(0, len(TRADERS) - 1)
subaccounts = st.sampled_from((0, 0, 0, 1, 2))  # mostly the cross-margined 0: several markets in one subaccount
lps = st.integers(0, len(LPS) - 1)
picks = st.integers(0, 2**16)  # an index into a list only the machine knows, taken modulo its length


@dataclass(frozen=True)
class Setup:
    """What the @initialize rule deploys: the fund and the Vault's first liquidity."""

    insurance_fund: float
    vault_liquidity: float
    reserve_factor: float

    def config(self) -> ProtocolConfig:
        return ProtocolConfig(markets=MARKETS, oracle=ORACLE, reporters=REPORTERS, reserve_factor=self.reserve_factor,
                              insurance_fund=self.insurance_fund, vault_liquidity=self.vault_liquidity)


@composite
def setups(draw) -> Setup:
    """A thin fund makes bankruptcy and ADL reachable; a fat one makes the fund pay."""
    return Setup(
        insurance_fund=draw(st.sampled_from([0.0, 500.0, 5_000.0, 100_000.0]), label="insurance_fund"),
        vault_liquidity=draw(st.sampled_from([400_000.0, 4_000_000.0]), label="vault_liquidity"),
        reserve_factor=draw(st.sampled_from([0.0, 0.1, 0.5, 2.0]), label="reserve_factor"),
    )


# ---------------------------------------------------------------- amounts
def usd(min_value: float, max_value: float) -> st.SearchStrategy[float]:
    """Whole cents: exact through the facade's Decimal(str(x)) conversion."""
    return st.integers(int(min_value * 100), int(max_value * 100)).map(lambda c: c / 100)


dust_usd = st.integers(1, 99).map(lambda micro: micro / 1_000_000)  # 1 to 99 token units
deposit_amounts = st.one_of(usd(1, 1_000), usd(1_000, 100_000), dust_usd)
fractions = st.one_of(st.sampled_from([0.0001, 0.25, 0.5, 0.9999, 1.0]), st.floats(0.001, 1.0))


@dataclass(frozen=True)
class Deposit:
    trader: int
    subaccount: int
    usd: float


@composite
def deposits(draw) -> Deposit:
    return Deposit(draw(traders, label="trader"), draw(subaccounts, label="subaccount"),
                   draw(deposit_amounts, label="usd"))


@dataclass(frozen=True)
class Withdrawal:
    """`fraction` of the subaccount's positive collateral, or `all`: exactly all of it, or
    `beyond`: one token unit more than it (which takes unrealised PnL, if anything does)."""

    trader: int
    subaccount: int
    mode: Literal["fraction", "all", "beyond"]
    fraction: float


@composite
def withdrawals(draw) -> Withdrawal:
    return Withdrawal(draw(traders, label="trader"), draw(subaccounts, label="subaccount"),
                      draw(st.sampled_from(["fraction", "fraction", "all", "beyond"]), label="mode"),
                      draw(fractions, label="fraction"))


# ---------------------------------------------------------------- trades
TradeKind = Literal["open", "lever", "increase", "reduce", "flip", "close", "dust"]


@dataclass(frozen=True)
class Trade:
    """A trade relative to the position it meets.

    open/increase: add `leverage` x equity of notional on `side` (the position's side when
    there is one); lever: use `fraction` of the room left above initial margin (a whale
    near its limit, for liquidations); reduce: `fraction` of the position; flip: close it and open `leverage` on
    the other side; close: exactly the whole position; dust: `dust` wei of base units, for
    rounding. `slippage` moves the limit from the quote: 0 is an exact limit, < 0 one the
    fill cannot meet. A reduce, flip or close aimed where there is no position takes the
    `pick`-th open position instead, if there is one."""

    trader: int
    subaccount: int
    market: str
    kind: TradeKind
    side: int
    leverage: float
    fraction: float
    dust: int
    slippage: float
    pick: int = 0


# mostly within initial margin (10x on the default market), some near it, a few beyond
leverages = st.one_of(st.floats(0.05, 3.0), st.floats(3.0, 7.0), st.floats(3.0, 7.0), st.floats(7.0, 9.8),
                      st.floats(9.8, 14.0))


@composite
def trades(draw) -> Trade:
    kind = draw(st.sampled_from(["open", "open", "lever", "lever", "increase", "reduce", "flip", "close", "dust"]),
                label="kind")
    return Trade(
        trader=draw(traders, label="trader"),
        subaccount=draw(subaccounts, label="subaccount"),
        market=draw(markets, label="market"),
        kind=kind,
        side=draw(st.sampled_from([1, -1]), label="side"),
        leverage=draw(leverages, label="leverage"),
        fraction=draw(fractions, label="fraction"),
        dust=draw(st.one_of(st.integers(1, 1_000), st.integers(1, 10**12)), label="dust"),
        slippage=draw(st.sampled_from([0.05, 0.05, 0.05, 0.0, -0.001]), label="slippage"),
        pick=draw(picks, label="pick"),
    )


# ---------------------------------------------------------------- oracle and time
@dataclass(frozen=True)
class PriceMove:
    """small: every reporter reports the moved price (up to ±3%, or ±3-12% for `medium`,
    inside the deviation guard); gap: the same with a jump up to ±60%
    (beyond the deviation guard, so the feed breaches); crash: a gap that persists past the
    breach timeout, so the feed accepts it; disagree: each reporter reports its own price
    around the move (the median decides); single: one reporter reports alone."""

    market: str
    kind: Literal["small", "medium", "gap", "crash", "disagree", "single"]
    move: float
    spreads: tuple[float, ...]
    reporter: int


@composite
def price_moves(draw, kinds: tuple[str, ...] = ("small", "small", "medium", "medium", "gap", "crash", "disagree",
                                                "single")) -> PriceMove:
    kind = draw(st.sampled_from(kinds), label="kind")
    if kind in ("gap", "crash"):
        move = draw(st.one_of(st.floats(-0.6, -0.1), st.floats(0.1, 0.6)), label="move")
    elif kind == "medium":
        move = draw(st.one_of(st.floats(-0.12, -0.03), st.floats(0.03, 0.12)), label="move")
    else:
        move = draw(st.floats(-0.03, 0.03), label="move")
    spreads = tuple(draw(st.lists(st.one_of(st.floats(-0.01, 0.01), st.floats(-0.5, 0.5)),
                                  min_size=REPORTERS, max_size=REPORTERS), label="spreads"))
    return PriceMove(draw(markets, label="market"), kind, move, spreads,
                     draw(st.integers(0, REPORTERS - 1), label="reporter"))


@dataclass(frozen=True)
class TimeStep:
    """`seconds` pass; with `refresh` the honest reporters report the current prices after."""

    seconds: int
    refresh: bool


@composite
def time_steps(draw) -> TimeStep:
    seconds = draw(st.one_of(st.integers(1, 60), st.integers(60, 3_600), st.integers(3_600, 3 * 86_400)),
                   label="seconds")
    return TimeStep(seconds, draw(st.sampled_from([True, True, True, False]), label="refresh"))


# ---------------------------------------------------------------- keepers
@dataclass(frozen=True)
class Liquidation:
    """Liquidate the `pick`-th liquidatable subaccount (or, with `anyone`, any subaccount
    with a position, to check the maintenance-margin rule from the other side)."""

    pick: int
    market_pick: int
    max_fraction: float | None
    anyone: bool


@composite
def liquidations(draw, anyone: bool = False) -> Liquidation:
    return Liquidation(draw(picks, label="pick"), draw(picks, label="market_pick"),
                       draw(st.one_of(st.none(), st.none(), fractions), label="max_fraction"), anyone)


@dataclass(frozen=True)
class Deleveraging:
    """ADL the `pick`-th bankrupt subaccount against the best-ranked target (`ranked`) or
    any opposite position (`target_pick`), for `fraction` of the bankrupt size (None: all)."""

    pick: int
    ranked: bool
    target_pick: int
    fraction: float | None


@composite
def deleveragings(draw) -> Deleveraging:
    return Deleveraging(draw(picks, label="pick"), draw(st.sampled_from([True, True, False]), label="ranked"),
                        draw(picks, label="target_pick"), draw(st.one_of(st.none(), fractions), label="fraction"))


@dataclass(frozen=True)
class TriggerPlacement:
    """A reduce-only order on a subaccount's position in `market`: `distance` is the trigger's
    offset from the index as a fraction (negative: below), `fraction` the share of the
    position it closes (> 1: larger than the position). Aimed where there is no position, it
    goes on the `pick`-th open position, if there is one (`stray`: it stays where it was aimed).
    `limit`: the facade's default (the trigger moved 1% against the order), 20% or 0% from the
    index, or none at all (which the contract refuses: every order needs one)."""

    trader: int
    subaccount: int
    market: str
    kind: Literal["stop_loss", "take_profit"]
    distance: float
    fraction: float
    keeper_fee: float
    limit: Literal["default", "loose", "tight", "missing"]
    pick: int = 0
    stray: bool = False


@composite
def trigger_placements(draw) -> TriggerPlacement:
    return TriggerPlacement(
        trader=draw(traders, label="trader"),
        subaccount=draw(subaccounts, label="subaccount"),
        market=draw(markets, label="market"),
        kind=draw(st.sampled_from(["stop_loss", "take_profit"]), label="kind"),
        distance=draw(st.floats(-0.1, 0.1), label="distance"),
        fraction=draw(st.one_of(fractions, st.floats(1.0, 3.0)), label="fraction"),
        keeper_fee=draw(st.one_of(st.just(0.0), usd(0.01, 5), usd(5, 500), usd(500, 10_000)), label="keeper_fee"),
        limit=draw(st.sampled_from(["default", "default", "loose", "loose", "tight", "missing"]), label="limit"),
        pick=draw(picks, label="pick"),
        stray=draw(st.sampled_from([False, False, False, True]), label="stray"),
    )


@dataclass(frozen=True)
class WhaleCrash:
    """A storyline that reaches liquidation, bankruptcy and ADL by construction (no luck in
    the draw).

    Trader `trader` opens a whale position on `side` in `market` from a fresh subaccount at
    `leverage_share` of the market's maximum leverage (1 / imf); the two other traders take
    the opposite side from fresh subaccounts, each `target_share` of the whale's size
    (together more than it, each less), with a take-profit on half of it; the price moves
    against the whale just enough to take it to `depth` (the collateral and the move are
    sized from the market and the insurance fund: test_stateful.py `_whale_plan`); the feed
    accepts the move (after its breach timeout, when it is a gap); with `cut`, the whale
    tries to halve its position first (allowed while its equity is not negative); and the
    keepers sweep: they liquidate, deleverage a first slice of `adl.fraction` (None: all at
    once) then the rest, and execute the take-profits.

    depth: `below_maintenance` (a partial liquidation, or a full one in premium mark mode),
    `under_water` (a full liquidation whose shortfall the fund pays), `bankrupt` (a
    shortfall beyond the fund: bankruptcy, then ADL)."""

    trader: int
    market: str
    side: int
    leverage_share: float
    target_share: float
    depth: Literal["below_maintenance", "under_water", "bankrupt"]
    cut: bool
    adl: Deleveraging


@composite
def whale_crashes(draw) -> WhaleCrash:
    return WhaleCrash(
        trader=draw(traders, label="trader"),
        market=draw(markets, label="market"),
        side=draw(st.sampled_from([1, -1]), label="side"),
        leverage_share=draw(st.floats(0.5, 0.8), label="leverage_share"),
        target_share=draw(st.floats(0.55, 0.9), label="target_share"),
        depth=draw(st.sampled_from(["bankrupt", "under_water", "below_maintenance"]), label="depth"),
        cut=draw(st.booleans(), label="cut"),
        adl=draw(deleveragings(), label="adl"),
    )


@dataclass(frozen=True)
class CapTrade:
    """Trader `trader` takes `fraction` of the room left under `market`'s open-interest cap
    on `side` (`beyond`: one base unit more than all of it), from a fresh subaccount with
    collateral enough that margin does not bind: the cap alone decides."""

    trader: int
    market: str
    side: int
    fraction: float
    beyond: bool


@composite
def cap_trades(draw) -> CapTrade:
    return CapTrade(draw(traders, label="trader"), draw(markets, label="market"),
                    draw(st.sampled_from([1, -1]), label="side"), draw(fractions, label="fraction"),
                    draw(st.sampled_from([False, False, True]), label="beyond"))


# ---------------------------------------------------------------- LPs
@dataclass(frozen=True)
class LpDeposit:
    lp: int
    usd: float


@composite
def lp_deposits(draw) -> LpDeposit:
    return LpDeposit(draw(lps, label="lp"), draw(st.one_of(usd(1, 10_000), usd(10_000, 1_000_000), dust_usd),
                                               label="usd"))


@dataclass(frozen=True)
class LpWithdrawal:
    """Redeem `fraction` of the LP's shares, or (`dust`) one micro-share: worth less than a
    token unit once the share price is below $1, which the Vault must refuse."""

    lp: int
    fraction: float
    dust: bool = False


@composite
def lp_withdrawals(draw) -> LpWithdrawal:
    return LpWithdrawal(draw(lps, label="lp"), draw(fractions, label="fraction"),
                        draw(st.sampled_from([False, False, False, True]), label="dust"))


# ---------------------------------------------------------------- the owner
@composite
def market_params(draw, market: str | None = None) -> MarketConfig:
    """New parameters for a listed market, valid by construction (mmf below imf)."""
    name = market or draw(markets, label="market")
    base = next(m for m in MARKETS if m.name == name)
    imf = draw(st.sampled_from([0.05, 0.1, 0.2, 0.5]), label="imf")
    return base.model_copy(update={
        "imf": imf,
        "mmf": imf * draw(st.sampled_from([0.3, 0.625, 0.9]), label="mmf_share"),
        "taker_fee": draw(st.sampled_from([0.0, 0.0005, 0.003]), label="taker_fee"),
        "insurance_fee_share": draw(st.sampled_from([0.0, 0.2, 1.0]), label="insurance_fee_share"),
        "skew_scale": base.skew_scale * draw(st.sampled_from([0.1, 1.0, 10.0]), label="skew_scale_factor"),
        "max_oi": base.max_oi * draw(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 2.0]), label="max_oi_factor"),
        "funding_model": draw(st.sampled_from(["premium", "velocity"]), label="funding_model"),
        "mark_mode": draw(st.sampled_from(["oracle", "premium", "median"]), label="mark_mode"),
        "allow_unrealized_withdrawal": draw(st.booleans(), label="allow_unrealized_withdrawal"),
        "liquidation_fee": draw(st.sampled_from([0.0, 0.01, 0.025, 0.06]), label="liquidation_fee"),
        "keeper_fee_share": draw(st.sampled_from([0.0, 0.5, 1.0]), label="keeper_fee_share"),
        "min_position_notional": draw(st.sampled_from([0.0, 10.0, 1_000.0]), label="min_position_notional"),
        "liquidate_when_invalid": draw(st.booleans(), label="liquidate_when_invalid"),
        "min_keeper_fee": draw(st.sampled_from([0.0, 1.0, 50.0]), label="min_keeper_fee"),
        "liquidation_limit_scalar": base.liquidation_limit_scalar * draw(st.sampled_from([0.0, 0.25, 1.0, 1.0]),
                                                                          label="liquidation_limit_factor"),
    })


# An LP run (test_stateful.py `lp_run`): the owner sets a reserve that holds the LP's exit back
# (`held back`) or lets it go (`let go`), or drops the reserve and every LP exits (`everyone`);
# set-up draws the ordinary reserve factors.
LpRun = Literal["held back", "let go", "everyone"]
lp_runs = st.sampled_from(["held back", "held back", "held back", "let go", "let go", "everyone"])


@dataclass(frozen=True)
class StatusChange:
    market: str
    paused: bool
    reduce_only: bool


@composite
def status_changes(draw) -> StatusChange:
    paused, reduce_only = draw(st.sampled_from([(False, False), (False, False), (False, True), (True, False)]),
                               label="status")
    return StatusChange(draw(markets, label="market"), paused, reduce_only)
