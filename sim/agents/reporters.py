"""Oracle reporters: honest with latency, lagging, stale or malicious (DESIGN §6); and the
feed keeper, who refreshes the feeds a SpotPool prices."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from sim.bounds import MAX_RATIO, MAX_STEPS, Integer, Number
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    Outcome,
    RefreshFeed,
    ReportPrice,
    StepContext,
    config_dataclass,
    unknown_markets,
)


class OracleReporter(Agent):
    """A whitelisted reporter. It reports each market's true price as it saw it some blocks
    ago, at least every `heartbeat_blocks` and in between when its price moved
    `deviation_trigger` since its last report (Chainlink's rule).

    Modes: `honest` sees the price `latency_blocks` late; `lagging` sees it `lag_blocks`
    late; `stale` stops reporting from `stale_from_step`; `malicious` reports the true price
    times `factor` from `malicious_from_step`. Shocks reach it through the world: an oracle
    freeze silences it, an oracle lag delays it further, a compromise (or a manipulator's
    bribe) multiplies its price. It does not report a market its SpotPool prices."""

    kind = "oracle_reporter"
    role = "reporter"
    phase = "reporter"

    @config_dataclass
    class Config(AgentConfig):
        mode: Literal["honest", "lagging", "stale", "malicious"] = Field("honest", description="how it reports")
        latency_blocks: Integer = Field(0, ge=0, le=MAX_STEPS,
                                        description="honest and malicious: age of the price it sees, blocks")
        lag_blocks: Integer = Field(10, ge=0, le=MAX_STEPS, description="lagging: age of the price it sees, blocks")
        heartbeat_blocks: Integer = Field(1, ge=1, le=MAX_STEPS, description="reports at least this often, blocks")
        deviation_trigger: Number = Field(0.0, ge=0, le=MAX_RATIO,
                                          description="reports early on this move since its last report; 0: off")
        stale_from_step: Integer = Field(0, ge=0, le=MAX_STEPS, description="stale: the step it stops reporting at")
        factor: Number = Field(1.5, gt=0, le=MAX_RATIO, description="malicious: multiplier of the true price")
        malicious_from_step: Integer = Field(0, ge=0, le=MAX_STEPS,
                                             description="malicious: the step it starts lying at")
        noise: Number = Field(0.0, ge=0, lt=0.5, description="relative standard deviation of its observation error")
        markets: tuple[str, ...] = Field((), description="markets it reports; empty: all")

    config: Config

    def __init__(self, *args: object, reporter_index: int = 0, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.reporter_index = reporter_index  # its place in the Oracle's whitelist
        self.last_report: dict[str, tuple[int, float]] = {}  # market -> (step, price)
        self.now = -1  # the step being decided, for on_result

    @classmethod
    def check_config(cls, config: Config, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        return unknown_markets(config.markets, markets)

    def lag(self, ctx: StepContext) -> int:
        own = self.config.lag_blocks if self.config.mode == "lagging" else self.config.latency_blocks
        return max(own, ctx.world.oracle_lag)

    def factor(self, ctx: StepContext) -> float:
        if self.reporter_index in ctx.world.compromised:
            return ctx.world.compromised[self.reporter_index]
        if self.config.mode == "malicious" and ctx.step >= self.config.malicious_from_step:
            return self.config.factor
        return 1.0

    def decide(self, ctx: StepContext) -> list[Action]:
        cfg = self.config
        self.now = ctx.step
        if not self.active(ctx) or (cfg.mode == "stale" and ctx.step >= cfg.stale_from_step):
            return []
        actions: list[Action] = []
        lag, factor = self.lag(ctx), self.factor(ctx)
        for market in cfg.markets or ctx.markets:
            if market in ctx.world.frozen_markets or ctx.market_configs[market].price_source == "pool":
                continue  # frozen, or priced by its SpotPool (the oracle refuses reports)
            price = ctx.price_at(market, ctx.step - lag) * factor
            if cfg.noise:
                price *= math.exp(cfg.noise * float(self.rng.standard_normal()))
            last = self.last_report.get(market)
            due = (last is None or ctx.step - last[0] >= cfg.heartbeat_blocks
                   or (cfg.deviation_trigger > 0 and abs(price / last[1] - 1) >= cfg.deviation_trigger))
            if due:
                actions.append(ReportPrice(market, float(f"{price:.12g}")))
        return actions

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if outcome.ok and isinstance(action, ReportPrice):
            self.last_report[action.market] = (self.now, action.price)


class FeedKeeper(Agent):
    """Refreshes every oracle feed that reads a SpotPool (as its source, or as its fallback
    when reporters are stale) every `every_blocks` blocks: anyone may, and a pool-priced
    feed goes stale without it. An oracle freeze does not stop it: it reads the pool, not
    the world."""

    kind = "feed_keeper"
    role = "keeper"
    phase = "reporter"

    @config_dataclass
    class Config(AgentConfig):
        every_blocks: Integer = Field(1, ge=1, le=MAX_STEPS, description="refreshes at least this often, blocks")
        markets: tuple[str, ...] = Field((), description="markets it refreshes; empty: every one whose feed reads "
                                         "a SpotPool")

    config: Config

    @classmethod
    def check_config(cls, config: Config, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        return unknown_markets(config.markets, markets)

    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx) or ctx.step % self.config.every_blocks:
            return []
        return [RefreshFeed(m) for m in self.config.markets or ctx.markets if ctx.market_configs[m].uses_pool]
