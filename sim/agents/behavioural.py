"""Behavioural traders: the biases the seed puts on a level with leverage (DESIGN §6).

Four kinds, each a `Trader` whose strategy is a bias rather than a view of the market:

- `herd_follower`: trades with the recent majority of other traders' orders;
- `loss_chaser`: doubles down after a loss (a martingale);
- `overconfident_trader`: raises its leverage after each win;
- `panic_seller`: closes everything after a drawdown, then sits out.

They carry the same four risk layers as every trader (sim/agents/traders.py), but all four
are off by default: what drives them is the behaviour, and a scenario can switch layers on
to see whether discipline tames it. Each kind names its `behaviour`, which the traders'
table (sim/traders.py) records so the report can compare behaviour with discipline.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from pydantic import Field

from sim.agents.base import Action, MarketView, Outcome, StepContext, Trade, config_dataclass
from sim.agents.traders import Trader, TraderConfig
from sim.bounds import MAX_LEVERAGE, MAX_STEPS, Flag, Integer, Number
from sim.protocol import Health


@config_dataclass
class BehaviouralConfig(TraderConfig):
    """A trader's fields, with the four risk layers off: the behaviour is unchecked."""

    size_cap: Flag = Field(False, description="risk layer 1 on (see trader fields); off: the bias is unchecked")
    margin_buffer: Flag = Field(False, description="risk layer 2 on (see trader fields); off: the bias is unchecked")


def _side(x: float) -> int:
    return (x > 0) - (x < 0)


class HerdFollower(Trader):
    """Trades with the crowd: counts the other traders' orders in its market over the last
    `lookback_blocks`, and once at least `min_orders` were placed and a share `majority` of
    them bought (or sold), holds a position that way at `leverage`; when neither side has the
    majority it keeps what it holds."""

    kind = "herd_follower"
    behaviour: ClassVar[str] = "herding"

    @config_dataclass
    class Config(BehaviouralConfig):
        lookback_blocks: Integer = Field(10, ge=1, le=MAX_STEPS, description="blocks of other traders' orders it counts")
        majority: Number = Field(0.65, gt=0.5, le=1, description="share of orders on one side that it follows")
        min_orders: Integer = Field(5, ge=1, le=MAX_STEPS, description="orders it needs to see before it follows")
        leverage: Number = Field(3.0, gt=0, le=MAX_LEVERAGE, description="position notional / equity when it follows")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.window: deque[tuple[int, int]] = deque()  # (buys, sells) per step seen
        self.side = 0
        self.want = 0

    def _count(self, ctx: StepContext) -> tuple[int, int]:
        """Other traders' orders in its market among the events since the last look."""
        exchange, market_id = ctx.protocol.exchange.address, ctx.protocol.market(self.market)
        buys = sells = 0
        for event in ctx.events:
            if (event.address == exchange and event.name == "Trade" and event.args["market"] == market_id
                    and event.args["owner"] != self.account):
                buys += event.args["size_delta"] > 0
                sells += event.args["size_delta"] < 0
        return buys, sells

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        self.window.append(self._count(ctx))
        while len(self.window) > self.config.lookback_blocks:
            self.window.popleft()
        buys = sum(b for b, _ in self.window)
        sells = sum(s for _, s in self.window)
        if buys + sells >= self.config.min_orders:
            if buys >= self.config.majority * (buys + sells):
                self.want = 1
            elif sells >= self.config.majority * (buys + sells):
                self.want = -1
        return self.want != self.side

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        self.side = self.want
        return self.want * self.config.leverage * health.equity / view.index_price

    def on_result(self, action: Action, outcome: Outcome) -> None:
        super().on_result(action, outcome)
        if isinstance(action, Trade) and action.market == self.market and not outcome.ok:
            self.side = 2  # not where it wanted to be: try again next step


class LossChaser(Trader):
    """Doubles down after a loss: opens a position at `leverage` (with `long_bias` of going
    long) with chance `entry_probability` a step; each time the index moves `loss_step`
    against it since its last order, it doubles the position, up to `max_doublings` times;
    it closes once the index is `take_profit` beyond its average entry."""

    kind = "loss_chaser"
    behaviour: ClassVar[str] = "loss chasing"

    @config_dataclass
    class Config(BehaviouralConfig):
        entry_probability: Number = Field(0.1, ge=0, le=1, description="chance of opening in a step while flat")
        long_bias: Number = Field(0.5, ge=0, le=1, description="chance a new position is long")
        leverage: Number = Field(1.0, gt=0, le=MAX_LEVERAGE, description="first position notional / equity")
        loss_step: Number = Field(0.02, gt=0, lt=1, description="adverse index move that makes it double")
        max_doublings: Integer = Field(4, ge=0, le=64, description="doublings before it stops adding")
        take_profit: Number = Field(0.01, gt=0, le=MAX_LEVERAGE, description="move beyond the average entry at which it closes")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.side = 0
        self.size = 0.0  # base units it believes it holds
        self.entry = 0.0  # average entry (index at each order)
        self.last_order = 0.0
        self.doublings = 0
        self.move: str | None = None  # what the next trade does: "open", "double", "close"

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        cfg, index = self.config, view.index_price
        if self.side == 0:
            self.move = "open" if self.rng.random() < cfg.entry_probability else None
        elif self.side * (index / self.entry - 1) >= cfg.take_profit:
            self.move = "close"
        elif self.doublings < cfg.max_doublings and self.side * (index / self.last_order - 1) <= -cfg.loss_step:
            self.move = "double"
        else:
            self.move = None
        return self.move is not None

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        index = view.index_price
        if self.move == "open":
            self.side = 1 if self.rng.random() < self.config.long_bias else -1
            self.size = self.config.leverage * health.equity / index
            self.entry = self.last_order = index
            self.doublings = 0
            return self.side * self.size
        if self.move == "double" and position != 0:
            self.entry = (self.entry * abs(position) + index * abs(position)) / (2 * abs(position))
            self.last_order = index
            self.doublings += 1
            return 2 * position
        self.side, self.size = 0, 0.0
        return 0.0

    def on_result(self, action: Action, outcome: Outcome) -> None:
        super().on_result(action, outcome)
        if isinstance(action, Trade) and action.market == self.market and not outcome.ok and self.move == "open":
            self.side = 0  # the opening order failed: it is still flat


class OverconfidentTrader(Trader):
    """Grows bolder with each win: with chance `trade_probability` while flat it follows the
    index's move over `lookback_blocks` at its current leverage, holds for `hold_blocks`,
    then closes; a win (the index moved its way) raises its leverage by `leverage_step`, up
    to `max_leverage_reached`; a loss sets it back to `base_leverage`."""

    kind = "overconfident_trader"
    behaviour: ClassVar[str] = "overconfidence"

    @config_dataclass
    class Config(BehaviouralConfig):
        trade_probability: Number = Field(0.1, ge=0, le=1, description="chance of opening in a step while flat")
        lookback_blocks: Integer = Field(10, ge=1, le=MAX_STEPS, description="blocks over which it reads the trend it follows")
        hold_blocks: Integer = Field(15, ge=1, le=MAX_STEPS, description="blocks it holds a position")
        base_leverage: Number = Field(1.5, gt=0, le=MAX_LEVERAGE, description="leverage it starts at and falls back to after a loss")
        leverage_step: Number = Field(1.5, ge=0, le=MAX_LEVERAGE, description="leverage added after each win")
        max_leverage_reached: Number = Field(12.0, gt=0, le=MAX_LEVERAGE, description="the boldest it gets")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.leverage = self.config.base_leverage
        self.seen: deque[float] = deque(maxlen=self.config.lookback_blocks + 1)
        self.side = 0
        self.opened: tuple[int, float] | None = None  # (step, index) of the open position
        self.wins = 0

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        self.seen.append(view.index_price)
        if self.opened is not None:
            return ctx.step - self.opened[0] >= self.config.hold_blocks
        return len(self.seen) == self.seen.maxlen and bool(self.rng.random() < self.config.trade_probability)

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        cfg, index = self.config, view.index_price
        if self.opened is None:
            self.side = _side(self.seen[-1] - self.seen[0]) or 1
            self.opened = (ctx.step, index)
            return self.side * self.leverage * health.equity / index
        won = self.side * (index - self.opened[1]) > 0
        self.wins = self.wins + 1 if won else 0
        self.leverage = min(self.leverage + cfg.leverage_step, cfg.max_leverage_reached) if won else cfg.base_leverage
        self.opened, self.side = None, 0
        return 0.0

    def on_result(self, action: Action, outcome: Outcome) -> None:
        super().on_result(action, outcome)
        if isinstance(action, Trade) and action.market == self.market and not outcome.ok and self.side != 0:
            self.opened, self.side = None, 0  # the opening order failed: still flat, still as bold


class PanicSeller(Trader):
    """Holds a position at `leverage` (long with chance `long_bias`), opened with chance
    `trade_probability` a step while it is out; when its equity falls `panic_drawdown`
    below its peak since it opened, it closes everything at once, whatever the price, and
    stays out for `cooldown_blocks`."""

    kind = "panic_seller"
    behaviour: ClassVar[str] = "panic selling"

    @config_dataclass
    class Config(BehaviouralConfig):
        trade_probability: Number = Field(0.1, ge=0, le=1, description="chance of opening in a step while out")
        long_bias: Number = Field(0.7, ge=0, le=1, description="chance a new position is long")
        leverage: Number = Field(3.0, gt=0, le=MAX_LEVERAGE, description="position notional / equity when it opens")
        panic_drawdown: Number = Field(0.1, gt=0, lt=1, description="equity fall from its peak that makes it sell all")
        cooldown_blocks: Integer = Field(50, ge=0, le=MAX_STEPS, description="blocks it stays out after panicking")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.in_position = False
        self.peak = 0.0
        self.out_until = -1
        self.panics = 0

    def wants_to_act(self, ctx: StepContext, view: MarketView) -> bool:
        if self.in_position:
            return True  # it watches its equity every block
        return ctx.step >= self.out_until and bool(self.rng.random() < self.config.trade_probability)

    def target(self, ctx: StepContext, view: MarketView, health: Health, position: float) -> float | None:
        cfg = self.config
        if not self.in_position:
            self.in_position, self.peak = True, health.equity
            side = 1 if self.rng.random() < cfg.long_bias else -1
            return side * cfg.leverage * health.equity / view.index_price
        self.peak = max(self.peak, health.equity)
        if position != 0 and health.equity < self.peak * (1 - cfg.panic_drawdown):
            self.in_position = False
            self.out_until = ctx.step + cfg.cooldown_blocks
            self.panics += 1
            return 0.0
        if position == 0:  # closed by someone else (a liquidation): out, as after a panic
            self.in_position = False
            self.out_until = ctx.step + cfg.cooldown_blocks
        return None
