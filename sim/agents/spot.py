"""The SpotPool's arbitrageur: the trader who keeps an on-chain spot market near the true
price (DESIGN §4 SpotPool, §6). How far a pump goes, and for how long, is decided by the
pool's depth and by how much capital such traders bring."""

from __future__ import annotations

import math

from pydantic import Field

from sim.bounds import MAX_USD, MIN_USD, Number
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    MintBase,
    Mint,
    StepContext,
    SwapOnPool,
    config_dataclass,
    unknown_markets,
)

POOL_FEE = 0.003  # SpotPool.vy FEE_BPS: 30 basis points on the input


class PoolArbitrageur(Agent):
    """Trades each market's SpotPool toward the true price (the price of a deeper venue it
    hedges on) whenever the pool is off by more than `threshold`, up to where the 0.3% fee
    eats the gain. It starts with `capital` USD, half in collateral and half in the base
    token at the first price, spread over its markets, and never trades more than it holds:
    a pump that drains its collateral or its base tokens stays until it is refilled."""

    kind = "pool_arbitrageur"
    role = "arbitrageur"
    phase = "trader"

    @config_dataclass
    class Config(AgentConfig):
        capital: Number = Field(100_000.0, ge=MIN_USD, le=MAX_USD,
                                description="USD it starts with, half collateral and half base tokens")
        threshold: Number = Field(0.005, ge=POOL_FEE, lt=1,
                                  description="|pool price / true price - 1| it acts on (at least the fee)")
        markets: tuple[str, ...] = Field((), description="markets whose pools it trades; empty: every one with a pool")

    config: Config

    @classmethod
    def check_config(cls, config: Config, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        return unknown_markets(config.markets, markets)

    def pool_markets(self, ctx: StepContext) -> list[str]:
        return [m for m in self.config.markets or ctx.markets if ctx.market_configs[m].spot_pool_liquidity > 0]

    def setup(self, ctx: StepContext) -> list[Action]:
        markets = self.pool_markets(ctx)
        if not markets:
            return []
        share = self.config.capital / len(markets) / 2
        return [Mint(share * len(markets))] + [MintBase(m, share / ctx.market_configs[m].initial_price)
                                                for m in markets]

    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx):
            return []
        actions: list[Action] = []
        protocol = ctx.protocol
        for market in self.pool_markets(ctx):
            true_price = ctx.true_prices[market]
            base, quote = protocol.pool_reserves(market)
            spot = quote / base
            k = base * quote
            if spot < true_price * (1 - self.config.threshold):
                # cheap: buy base with collateral until the pool asks the true price less the fee
                target_quote = math.sqrt(k * true_price * (1 - POOL_FEE))
                spend = min((target_quote - quote) / (1 - POOL_FEE), protocol.token_balance(self.account))
                if spend >= 1.0:
                    actions.append(SwapOnPool(market, sell_base=False, amount=spend))
            elif spot > true_price * (1 + self.config.threshold):
                # dear: sell base until the pool bids the true price plus the fee
                target_base = math.sqrt(k / (true_price * (1 + POOL_FEE)))
                sell = min((target_base - base) / (1 - POOL_FEE), protocol.base_balance(self.account, market))
                if sell * true_price >= 1.0:
                    actions.append(SwapOnPool(market, sell_base=True, amount=sell))
        return actions
