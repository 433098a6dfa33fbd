"""Traders: noise, momentum, leveraged whale, basis trader, arbitrageur (DESIGN §6).

Every trader runs the same risk rule set, four layers each switched on or off in its
Config (the seed's framework):

1. size cap: position notional at most `max_leverage` times equity;
2. margin buffer: when equity falls below `buffer` times maintenance margin, close
   `cut_fraction` of the position (and its hedge) before anything else;
3. hedge: hold `hedge_ratio` of the position's notional the other way in `hedge_market`;
4. stop-loss: keep a stop-loss trigger order `stop_distance` from the index on the
   position, replaced whenever the position changes, for keepers to execute.

A strategy only says which position it wants (`target`); the layers turn that into
trades. To stay cheap, a trader reads its account only in steps where its strategy wants
to act or its layers need a check.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from sim.bounds import MAX_LEVERAGE, MAX_PARAM, MAX_RATIO, MAX_STEPS, MAX_USD, MIN_USD, Flag, Integer, Number
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    CancelTrigger,
    Deposit,
    MarketView,
    Mint,
    Outcome,
    PlaceTrigger,
    StepContext,
    Trade,
    config_dataclass,
)
from sim.protocol import Health


@config_dataclass
class TraderConfig(AgentConfig):
    """Funding, market and the four risk layers, shared by every trader."""

    collateral: Number = Field(10_000.0, ge=MIN_USD, le=MAX_USD,
                               description="USD minted and deposited into subaccount 0 before step 0")
    market: str = Field("", description="market traded; empty: one picked by the agent's own RNG")
    slippage: Number = Field(0.03, gt=0, lt=1, description="limit price distance from the index (fraction)")
    min_trade: Number = Field(20.0, ge=0, le=MAX_USD,
                              description="USD notional; smaller changes of position are not sent")
    size_cap: Flag = Field(True, description="risk layer 1 on: cap position notional at max_leverage x equity")
    max_leverage: Number = Field(3.0, gt=0, le=MAX_LEVERAGE, description="layer 1: largest position notional / equity")
    margin_buffer: Flag = Field(True, description="risk layer 2 on: cut the position when equity nears maintenance")
    buffer: Number = Field(1.5, ge=1, le=MAX_LEVERAGE,
                           description="layer 2: keep equity >= buffer x maintenance margin")
    cut_fraction: Number = Field(0.5, gt=0, le=1, description="layer 2: share of the position closed on a breach")
    check_blocks: Integer = Field(10, ge=1, le=MAX_STEPS,
                                  description="layer 2: blocks between margin checks while the index is still")
    check_move: Number = Field(0.005, gt=0, le=MAX_RATIO,
                               description="layer 2: index move since the last check that prompts one at once")
    hedge: Flag = Field(False, description="risk layer 3 on: hold an opposite position in hedge_market")
    hedge_market: str = Field("", description="layer 3: the market hedged in; must differ from market")
    hedge_ratio: Number = Field(0.5, gt=0, le=2, description="layer 3: hedge notional / position notional")
    stop_loss: Flag = Field(False, description="risk layer 4 on: keep a stop-loss trigger order on the position")
    stop_distance: Number = Field(0.05, gt=0, lt=1, description="layer 4: stop price distance from the index")
    stop_keeper_fee: Number = Field(1.0, ge=0, le=MAX_USD,
                                    description="layer 4: USD paid to the keeper that executes the stop")
    stop_slippage: Number = Field(0.1, ge=0, lt=1,
                                  description="layer 4: the stop's limit price, this fraction beyond its trigger "
                                  "(a stop-market order's tolerance, as Hyperliquid's 10%); a gap past it leaves the stop "
                                  "unfilled")


class Trader(Agent):
    """A trader: a strategy's `target` position, passed through the four risk layers."""

    role = "trader"
    phase = "trader"
    Config = TraderConfig
    config: TraderConfig

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.market = self.config.market
        self.holding = False  # whether the last read (or trade) left a position
        self.stop_order: int | None = None
        self.stop_dirty = False
        self.layer_trips = 0  # margin-buffer cuts made
        self.checked = (-(10**9), 0.0)  # (step, index) of the last margin check

    @classmethod
    def check_config(cls, config: TraderConfig, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        """Cross-checks against the scenario's markets: (field, value, expected) per problem."""
        problems: list[tuple[str, object, str]] = []
        if config.market and config.market not in markets:
            problems.append(("market", config.market, f"one of the scenario's markets {list(markets)} (or empty)"))
        if config.hedge:
            if not config.hedge_market:
                problems.append(("hedge_market", config.hedge_market, "a market name when hedge is on"))
            elif config.hedge_market not in markets:
                problems.append(("hedge_market", config.hedge_market, f"one of the scenario's markets {list(markets)}"))
            elif config.hedge_market == config.market or (not config.market and len(markets) == 1):
                problems.append(("hedge_market", config.hedge_market, "a market other than the one traded"))
        return problems

    # -- setup ------------------------------------------------------------------------
    def setup(self, ctx: StepContext) -> list[Action]:
        if not self.market:
            choices = [m for m in ctx.markets if m != self.config.hedge_market] or list(ctx.markets)
            self.market = choices[int(self.rng.integers(len(choices)))]
        return [Mint(self.config.collateral), Deposit(self.config.collateral)]

    # -- the strategy's side ----------------------------------------------------------
    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        """Whether the strategy may want a different position this step (cheap: no account reads)."""
        return False

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        """The position (base units, signed) the strategy wants; None to keep the current one."""
        return None

    # -- the layers -------------------------------------------------------------------
    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx):
            return []
        cfg = self.config
        view = ctx.market(self.market)
        wants = self.wants_to_act(ctx, view)
        checks_due = self.holding and ((cfg.margin_buffer and self._margin_check_due(ctx, view))
                                       or (cfg.stop_loss and self.stop_dirty))
        if not (wants or checks_due):
            return []
        protocol = ctx.protocol
        health = protocol.health(self.account)
        self.checked = (ctx.step, view.index_price)
        if cfg.margin_buffer and health.notional > 0 and health.equity < cfg.buffer * health.maintenance_margin:
            return self._cut(ctx, view)
        if health.notional == 0:
            self.holding = False
        if not wants or not view.valid or health.equity <= 0:
            return self._resync_stop(ctx, view) if self.holding and cfg.stop_loss and self.stop_dirty else []
        position = protocol.position_size(self.account, self.market)
        target = self.target(ctx, view, health, position)
        if target is None:
            return []
        target = self._capped(target, view, health, position)
        actions: list[Action] = []
        if abs(target - position) * view.index_price >= cfg.min_trade:
            actions.append(self.trade(view, target - position))
            self.holding = target != 0
            if cfg.stop_loss:
                actions += self._stop_actions(ctx, view, target)
        if cfg.hedge:
            actions += self._hedge_actions(ctx, view, target)
        return actions

    def _margin_check_due(self, ctx: StepContext, view: MarketView) -> bool:
        """Layer 2 watches the index and reads its margin every `check_blocks`, or at once
        after a move of `check_move` (a price move is what erodes margin)."""
        step, index = self.checked
        return ctx.step - step >= self.config.check_blocks or abs(view.index_price / index - 1) >= self.config.check_move

    def trade(self, view: MarketView, size: float, market: str | None = None) -> Trade:
        """A trade of `size` base units with the limit `slippage` away from the index."""
        index = view.index_price
        limit = index * (1 + self.config.slippage) if size > 0 else index * (1 - self.config.slippage)
        return Trade(market or view.name, _round_size(size), limit)

    def _capped(self, target: float, view: MarketView, health: Health, position: float) -> float:
        """Layer 1: no more notional than max_leverage x equity (other positions counted)."""
        if not self.config.size_cap or abs(target) <= abs(position):
            return target
        others = max(health.notional - abs(position) * view.mark_price, 0.0)
        room = max(self.config.max_leverage * health.equity - others, 0.0) / view.mark_price
        return math.copysign(min(abs(target), max(room, abs(position))), target)

    def _cut(self, ctx: StepContext, view: MarketView) -> list[Action]:
        """Layer 2: equity is inside the buffer, close part of the position (and of the hedge)."""
        self.layer_trips += 1
        actions: list[Action] = []
        for market in [self.market] + ([self.config.hedge_market] if self.config.hedge else []):
            size = ctx.protocol.position_size(self.account, market)
            if size != 0:
                mview = ctx.market(market)
                cut = -size * self.config.cut_fraction
                if abs(size + cut) * mview.index_price < self.config.min_trade:
                    cut = -size
                actions.append(self.trade(mview, cut, market))
        self.stop_dirty = True
        return actions

    def _hedge_actions(self, ctx: StepContext, view: MarketView, target: float) -> list[Action]:
        """Layer 3: hedge_ratio of the position's notional, the other way, in hedge_market."""
        hedge_view = ctx.market(self.config.hedge_market)
        if not hedge_view.valid:
            return []
        want = -target * view.index_price * self.config.hedge_ratio / hedge_view.index_price
        have = ctx.protocol.position_size(self.account, hedge_view.name)
        if abs(want - have) * hedge_view.index_price < self.config.min_trade:
            return []
        return [self.trade(hedge_view, want - have)]

    def _stop_actions(self, ctx: StepContext, view: MarketView, target: float) -> list[Action]:
        """Layer 4: replace the stop-loss with one covering `target`."""
        actions: list[Action] = []
        if self.stop_order is not None:
            if ctx.protocol.trigger_order_active(self.stop_order):
                actions.append(CancelTrigger(self.stop_order))
            self.stop_order = None
        if target != 0:
            d = self.config.stop_distance
            trigger = view.index_price * (1 - d) if target > 0 else view.index_price * (1 + d)
            actions.append(PlaceTrigger(view.name, _round_size(-target), trigger, "stop_loss",
                                        self.config.stop_keeper_fee, slippage=self.config.stop_slippage))
        self.stop_dirty = False
        return actions

    def _resync_stop(self, ctx: StepContext, view: MarketView) -> list[Action]:
        return self._stop_actions(ctx, view, ctx.protocol.position_size(self.account, self.market))

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if isinstance(action, PlaceTrigger) and outcome.ok:
            self.stop_order = outcome.value
        elif isinstance(action, Trade) and not outcome.ok:
            self.stop_dirty = True
            self.holding = True  # unknown: check on the next step


def _round_size(size: float) -> float:
    """Sizes sent on chain: 12 significant digits, so float noise never reaches a trade."""
    return float(f"{size:.12g}")


def _side(x: float) -> int:
    return (x > 0) - (x < 0)


# ---------------------------------------------------------------------------------------
# The strategies
# ---------------------------------------------------------------------------------------


class NoiseTrader(Trader):
    """Trades at random: in any step, with `trade_probability`, buys or sells a random size,
    or closes its position. The market's background flow."""

    kind = "noise_trader"

    @config_dataclass
    class Config(TraderConfig):
        trade_probability: Number = Field(0.1, ge=0, le=1, description="chance of trading in a step")
        order_leverage: Number = Field(1.0, gt=0, le=MAX_LEVERAGE, description="largest order notional / equity")
        close_probability: Number = Field(0.2, ge=0, le=1, description="chance a trade closes the whole position")
        long_bias: Number = Field(0.5, ge=0, le=1, description="chance an order buys")

    config: Config

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        return bool(self.rng.random() < self.config.trade_probability)

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        cfg = self.config
        if position != 0 and self.rng.random() < cfg.close_probability:
            return 0.0
        side = 1 if self.rng.random() < cfg.long_bias else -1
        notional = self.rng.uniform(0.1, 1.0) * cfg.order_leverage * health.equity
        return position + side * notional / view.index_price


class MomentumTrader(Trader):
    """Follows the trend of the index it observes: long after a rise of `entry_threshold`
    over `lookback_blocks`, short after a fall, flat once the move fades below `exit_threshold`."""

    kind = "momentum_trader"

    @config_dataclass
    class Config(TraderConfig):
        lookback_blocks: Integer = Field(20, ge=1, le=MAX_STEPS, description="blocks the return is measured over")
        entry_threshold: Number = Field(0.01, gt=0, le=MAX_RATIO, description="return that opens a position")
        exit_threshold: Number = Field(0.002, ge=0, le=MAX_RATIO, description="|return| below which it goes flat")
        leverage: Number = Field(2.0, gt=0, le=MAX_LEVERAGE, description="position notional / equity when in")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.seen: list[float] = []
        self.side = 0  # the side it holds
        self.want = 0

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        self.seen.append(view.index_price)
        n = self.config.lookback_blocks
        if len(self.seen) <= n:
            return False
        del self.seen[: len(self.seen) - n - 1]
        ret = self.seen[-1] / self.seen[0] - 1
        if abs(ret) >= self.config.entry_threshold:
            self.want = _side(ret)
        elif abs(ret) < self.config.exit_threshold:
            self.want = 0
        return self.want != self.side

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        self.side = self.want
        return self.want * self.config.leverage * health.equity / view.index_price

    def on_result(self, action: Action, outcome: Outcome) -> None:
        super().on_result(action, outcome)
        if isinstance(action, Trade) and action.market == self.market and not outcome.ok:
            self.side = 2  # not where it wanted to be: try again next step


class LeveragedWhale(Trader):
    """One large, highly leveraged position opened at `start_step` and held (for
    `hold_blocks`, or to the end): the account whose liquidation moves the market.
    Its risk layers are off unless the scenario turns them on."""

    kind = "leveraged_whale"

    @config_dataclass
    class Config(TraderConfig):
        collateral: Number = Field(500_000.0, ge=MIN_USD, le=MAX_USD, description="USD deposited before step 0")
        leverage: Number = Field(8.0, gt=0, le=MAX_LEVERAGE, description="position notional / equity when opened")
        side: Literal["long", "short"] = Field("long", description="direction of the position")
        hold_blocks: Integer = Field(0, ge=0, le=MAX_STEPS,
                                     description="blocks to hold before closing; 0: hold to the end")
        size_cap: Flag = Field(False, description="risk layer 1 on (see trader fields)")
        max_leverage: Number = Field(9.0, gt=0, le=MAX_LEVERAGE,
                                     description="layer 1: largest position notional / equity")
        margin_buffer: Flag = Field(False, description="risk layer 2 on (see trader fields)")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.opened_at: int | None = None

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        if self.opened_at is None:
            return True
        hold = self.config.hold_blocks
        return hold > 0 and ctx.step == self.opened_at + hold

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        if self.opened_at is None:
            self.opened_at = ctx.step
            side = 1 if self.config.side == "long" else -1
            return side * self.config.leverage * health.equity / view.index_price
        return 0.0

    def on_result(self, action: Action, outcome: Outcome) -> None:
        super().on_result(action, outcome)
        if isinstance(action, Trade) and not outcome.ok and self.opened_at is not None and self.config.hold_blocks == 0:
            self.opened_at = None  # the opening trade failed: open next step


class BasisTrader(Trader):
    """Long spot, short perp, collecting funding: goes short when the funding rate (longs
    pay) reaches `entry_funding` per day and closes when it falls to `exit_funding`. The
    spot leg is bought off-chain and only tracked here (`spot_units`)."""

    kind = "basis_trader"

    @config_dataclass
    class Config(TraderConfig):
        leverage: Number = Field(2.0, gt=0, le=MAX_LEVERAGE, description="short notional / equity when in")
        entry_funding: Number = Field(0.0005, ge=-MAX_PARAM, le=MAX_PARAM,
                                      description="funding rate per day that opens the trade")
        exit_funding: Number = Field(0.0, ge=-MAX_PARAM, le=MAX_PARAM,
                                     description="funding rate per day at or below which it closes")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.spot_units = 0.0
        self.in_trade = False

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        if not self.in_trade:
            return view.funding_rate >= self.config.entry_funding
        return view.funding_rate <= self.config.exit_funding

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        self.in_trade = not self.in_trade
        target = -self.config.leverage * health.equity / view.index_price if self.in_trade else 0.0
        self.spot_units = -target
        return target

    def on_result(self, action: Action, outcome: Outcome) -> None:
        super().on_result(action, outcome)
        if isinstance(action, Trade) and action.market == self.market and not outcome.ok:
            self.in_trade = not self.in_trade  # the leg did not land: the decision stands for next step


class Arbitrageur(Trader):
    """Closes gaps. When the index lags the spot price by more than `spot_threshold` it
    takes the spot side (and flattens once the gap halves); otherwise, when the skew premium
    (mark over index) passes `premium_threshold`, it offsets `take_fraction` of the other
    traders' skew, earning the funding that premium pays."""

    kind = "arbitrageur"

    @config_dataclass
    class Config(TraderConfig):
        collateral: Number = Field(100_000.0, ge=MIN_USD, le=MAX_USD, description="USD deposited before step 0")
        spot_threshold: Number = Field(0.005, gt=0, le=MAX_RATIO,
                                       description="|spot / index - 1| that opens a gap trade")
        premium_threshold: Number = Field(0.001, gt=0, le=MAX_RATIO,
                                          description="|skew / skew_scale| that opens a skew trade")
        take_fraction: Number = Field(0.5, gt=0, le=1, description="share of the others' skew it offsets")
        leverage: Number = Field(2.0, gt=0, le=MAX_LEVERAGE, description="gap-trade notional / equity")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.mode: str | None = None  # "gap" or "skew" while a position is on for that reason

    def _gap(self, ctx: StepContext, view: MarketView) -> float:
        return ctx.true_prices[view.name] / view.index_price - 1

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        gap = abs(self._gap(ctx, view))
        if gap >= self.config.spot_threshold:
            return True
        if self.mode == "gap":
            return gap < self.config.spot_threshold / 2
        return abs(view.premium) >= self.config.premium_threshold

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        gap = self._gap(ctx, view)
        if abs(gap) >= self.config.spot_threshold:
            self.mode = "gap"
            return _side(gap) * self.config.leverage * health.equity / view.index_price
        if self.mode == "gap":
            self.mode = None
            return 0.0
        if abs(view.premium) >= self.config.premium_threshold:
            self.mode = "skew"
            return -self.config.take_fraction * (view.skew - position)
        return None
