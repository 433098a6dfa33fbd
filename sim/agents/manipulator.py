"""The manipulator: bribes reporters, trades the perp on the price it bought, withdraws.

The reporter-bribe variant (the attacks through the market itself, a SpotPool pump among
them, are the kinds in sim/agents/manipulators.py). It plays the
attack in four moves: open a leveraged position; `bribe_after` blocks later, buy
`reporters_bribed` reporters for `bribe_blocks` blocks so they report the true price times
`factor`; once the index has moved `take_profit` its way, cash out, either by closing
and withdrawing its collateral (`exit = "close"`) or, where a market lets unrealised PnL
leave (the Mango Markets lesson), by withdrawing the paper profit and leaving the position
to be liquidated when the price returns (`exit = "withdraw_unrealized"`). If the index
never moves (the deviation guard held, or too few reporters were bought), it closes when
the bribe runs out.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from sim.bounds import MAX_LEVERAGE, MAX_RATIO, MAX_REPORTERS, MAX_STEPS, MAX_USD, MIN_USD, Integer, Number
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    BribeReporters,
    ClosePosition,
    Deposit,
    Mint,
    Outcome,
    StepContext,
    Trade,
    Withdraw,
    config_dataclass,
)


class Manipulator(Agent):
    """Oracle manipulation by bribery: opens a leveraged position, then `bribe_after` blocks
    later buys `reporters_bribed` reporters to report the true price times `factor` for
    `bribe_blocks` blocks; once the index has moved `take_profit` its way it cashes out, by
    closing (`exit = "close"`) or by withdrawing the paper profit and leaving the position to
    go under water (`exit = "withdraw_unrealized"`, where the market allows it)."""

    kind = "manipulator"
    role = "manipulator"
    phase = "trader"

    @config_dataclass
    class Config(AgentConfig):
        variant: Literal["reporter_bribe"] = Field("reporter_bribe",
                                                   description="the attack; a SpotPool pump is the spot_pump kind")
        collateral: Number = Field(200_000.0, ge=MIN_USD, le=MAX_USD, description="USD deposited before step 0")
        market: str = Field("", description="market attacked; empty: the first")
        side: Literal["long", "short"] = Field("long", description="position it opens (long pushes the price up)")
        leverage: Number = Field(5.0, gt=0, le=MAX_LEVERAGE, description="position notional / equity")
        bribe_after: Integer = Field(5, ge=0, le=MAX_STEPS, description="blocks between opening and bribing")
        reporters_bribed: Integer = Field(2, ge=1, le=MAX_REPORTERS,
                                          description="reporters bought (the first ones of the whitelist)")
        factor: Number = Field(1.3, gt=0, le=MAX_RATIO, description="what bribed reporters multiply the true price by")
        bribe_blocks: Integer = Field(10, ge=1, le=MAX_STEPS, description="blocks the bribe lasts")
        take_profit: Number = Field(0.1, gt=0, le=MAX_RATIO,
                                    description="index move its way (fraction) at which it cashes out")
        exit: Literal["close", "withdraw_unrealized"] = Field("close", description="how it cashes out")
        slippage: Number = Field(0.05, gt=0, lt=1, description="limit price distance from the index")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.market = self.config.market
        self.state: Literal["idle", "positioned", "bribed", "exiting", "done"] = "idle"
        self.since = 0  # step the current state began
        self.entry_index = 0.0
        self.now = -1
        self.withdrawn = 0.0

    @classmethod
    def check_config(cls, config: Config, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        if config.market and config.market not in markets:
            problems.append(("market", config.market, f"one of the scenario's markets {list(markets)} (or empty)"))
        if (config.side == "long") != (config.factor > 1):
            problems.append(("factor", config.factor, f"{'> 1' if config.side == 'long' else '< 1'} for side {config.side!r}"))
        return problems

    @property
    def direction(self) -> int:
        return 1 if self.config.side == "long" else -1

    def setup(self, ctx: StepContext) -> list[Action]:
        self.market = self.market or ctx.markets[0]
        return [Mint(self.config.collateral), Deposit(self.config.collateral)]

    def decide(self, ctx: StepContext) -> list[Action]:
        self.now = ctx.step
        if not self.active(ctx) or self.state == "done":
            return []
        cfg, view, protocol = self.config, ctx.market(self.market), ctx.protocol
        if self.state == "idle":
            equity = protocol.health(self.account).equity
            size = self.direction * cfg.leverage * equity / view.index_price
            limit = view.index_price * (1 + self.direction * cfg.slippage)
            self.entry_index = view.index_price
            return [Trade(self.market, float(f"{size:.12g}"), limit)]
        if self.state == "positioned":
            if ctx.step - self.since >= cfg.bribe_after:
                return [BribeReporters(cfg.reporters_bribed, cfg.factor, cfg.bribe_blocks)]
            return []
        if self.state == "bribed":
            move = self.direction * (view.index_price / self.entry_index - 1)
            if move >= cfg.take_profit:
                if cfg.exit == "close":
                    return [ClosePosition(self.market, slippage=cfg.slippage)]
                health = protocol.health(self.account)
                amount = math.floor(max(health.equity - health.initial_margin, 0.0) * 0.99 * 100) / 100
                return [Withdraw(amount)] if amount > 0 else []
            if ctx.step - self.since > cfg.bribe_blocks + 1:  # the bribe ran out and the price did not move
                return [ClosePosition(self.market, slippage=cfg.slippage)]
            return []
        # exiting: take the collateral out
        collateral = math.floor(protocol.collateral(self.account) * 100) / 100
        return [Withdraw(collateral)] if collateral > 0 else []

    def _enter(self, state: Literal["idle", "positioned", "bribed", "exiting", "done"]) -> None:
        self.state, self.since = state, self.now

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if not outcome.ok:
            return
        if isinstance(action, Trade):
            self._enter("positioned")
        elif isinstance(action, BribeReporters):
            self._enter("bribed")
        elif isinstance(action, ClosePosition):
            self._enter("exiting")
        elif isinstance(action, Withdraw):
            self.withdrawn += action.amount
            self._enter("done")
