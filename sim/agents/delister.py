"""The delister: the protocol's governance delisting a market, and the keeper that settles it.

Hyperliquid delisted JELLY in March 2025 once its price had been pumped several times over,
and settled every position at the price from before the pump. This agent plays that
governance (it sends the delisting as the protocol's owner) and the keeper that follows it:
once a market's index has moved more than the market's `delist_move` from the index it had
`lookback` steps before, it delists the market at that earlier price; then, each step, it
settles every position in a delisted market at the settlement price (`Exchange.settle`),
as far as its gas budget goes. A market whose `delist_move` is 0 (the default) is never
delisted by it; positions in a market delisted otherwise are still settled.
"""

from __future__ import annotations

from pydantic import Field

from sim.agents.base import Action, Delist, Settle, StepContext, config_dataclass
from sim.agents.keepers import Keeper, KeeperConfig
from sim.bounds import MAX_STEPS, Integer


class Delister(Keeper):
    """Delists a market past its `delist_move` at its price `lookback` steps before, and
    settles every position in delisted markets."""

    kind = "delister"

    @config_dataclass
    class Config(KeeperConfig):
        lookback: Integer = Field(10, ge=1, le=MAX_STEPS,
                                  description="steps back to the reference price a move is measured from")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.seen: dict[str, list[float]] = {}  # market -> index prices, one a step
        self.delisted: set[str] = set()

    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx):
            return []
        actions: list[Action] = []
        for market in ctx.markets:
            if market in self.delisted or ctx.protocol.settlement_price(market) > 0:
                self.delisted.add(market)
                actions += self._settlements(ctx, market, self.max_transactions - len(actions))
                continue
            move = ctx.market_configs[market].delist_move
            history = self.seen.setdefault(market, [])
            history.append(ctx.market(market).index_price)
            if move <= 0 or len(history) <= self.config.lookback:
                continue
            reference = history[-1 - self.config.lookback]
            if reference > 0 and abs(history[-1] / reference - 1) > move:
                actions.append(Delist(market, reference))
        return actions[: max(self.max_transactions, 1)]

    def _settlements(self, ctx: StepContext, market: str, room: int) -> list[Action]:
        """Settle actions for the market's open positions (not bankrupt ones: ADL clears those)."""
        protocol = ctx.protocol
        out: list[Action] = []
        for owner, subaccount in protocol.accounts_with_positions():
            if len(out) >= room:
                break
            if protocol.position_size_wad(owner, market, subaccount) and not protocol.index.is_bankrupt(owner, subaccount):
                out.append(Settle(owner, subaccount, market))
        return out
