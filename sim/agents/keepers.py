"""Keepers: liquidation, trigger-order and ADL keepers (DESIGN §6).

Keepers act after the traders, and all of them decide from the same state (the block as
the traders left it) before any of their transactions run: several keepers after the same
account race, the engine runs their transactions in a seeded order, the first wins and the
others revert, and the engine counts those reverts by reason. Each keeper spends at most a
gas budget per step, judged by what its past transactions cost.
"""

from __future__ import annotations

from pydantic import Field

from sim.bounds import MAX_GAS, MAX_GAS_PER_STEP, MAX_STEPS, Integer
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    Deleverage,
    DeleverageByPnl,
    ExecuteTrigger,
    Liquidate,
    Outcome,
    StepContext,
    config_dataclass,
)
Subaccount = tuple[str, int]


@config_dataclass
class KeeperConfig(AgentConfig):
    """A keeper's budget."""

    gas_budget: Integer = Field(3_000_000, gt=0, le=MAX_GAS_PER_STEP,
                                description="gas the keeper spends per step at most")
    gas_estimate: Integer = Field(400_000, gt=0, le=MAX_GAS,
                                  description="gas it expects one transaction to cost until it has measured some")


class Keeper(Agent):
    """A keeper that sizes its step by its gas budget and learns what its transactions cost."""

    role = "keeper"
    phase = "keeper"
    Config = KeeperConfig
    config: KeeperConfig

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.gas_per_tx = float(self.config.gas_estimate)
        self.wins = 0
        self.losses = 0

    @property
    def max_transactions(self) -> int:
        return max(int(self.config.gas_budget // self.gas_per_tx), 0)

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if outcome.gas_used:
            self.gas_per_tx = 0.8 * self.gas_per_tx + 0.2 * outcome.gas_used
        if outcome.ok:
            self.wins += 1
        else:
            self.losses += 1


class LiquidationKeeper(Keeper):
    """Liquidates subaccounts below maintenance margin, `reaction_delay` blocks after it first
    sees each one liquidatable (a slow bot, a congested mempool), as many as its gas budget
    allows, in an order of its own (its RNG), so competing keepers do not all queue alike."""

    kind = "liquidation_keeper"

    @config_dataclass
    class Config(KeeperConfig):
        reaction_delay: Integer = Field(0, ge=0, le=MAX_STEPS,
                                        description="blocks from first seeing an account liquidatable to acting")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.first_seen: dict[tuple[str, int], int] = {}

    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx):
            return []
        candidates = ctx.liquidatable()
        now = set(candidates)
        self.first_seen = {a: s for a, s in self.first_seen.items() if a in now}
        for account in candidates:
            self.first_seen.setdefault(account, ctx.step)
        ready = [a for a in candidates if ctx.step - self.first_seen[a] >= self.config.reaction_delay]
        if not ready:
            return []
        order = self.rng.permutation(len(ready))
        picked = [ready[int(i)] for i in order]
        if ctx.world.keeper_min_reward > 0:
            picked = [a for a in picked if self._pays_enough(ctx, *a)]
        actions: list[Action] = []
        for owner, subaccount in picked[: self.max_transactions]:
            markets = ctx.account_markets(owner, subaccount)
            if markets:
                actions.append(Liquidate(owner, subaccount, markets[0]))
        return actions

    @staticmethod
    def _pays_enough(ctx: StepContext, owner: str, subaccount: int) -> bool:
        """Whether liquidating this subaccount pays at least what a keeper outage asks
        (`world.keeper_min_reward`, USD). Its estimate of the fee, for the first market the
        keeper would liquidate: the whole position's notional at the index x liquidation_fee
        x keeper_fee_share, or the min_keeper_fee the fund tops it up to."""
        markets = ctx.account_markets(owner, subaccount)
        if not markets:
            return False
        market = markets[0]
        config = ctx.market_configs[market]
        notional = abs(ctx.protocol.position(owner, market, subaccount).size) * ctx.market(market).index_price
        fee = max(notional * config.liquidation_fee * config.keeper_fee_share, config.min_keeper_fee)
        return fee >= ctx.world.keeper_min_reward


class TriggerOrderKeeper(Keeper):
    """Executes stop-loss and take-profit orders once the index crosses their trigger, for
    their keeper fee. The active orders come from the facade's index, kept from the
    TriggerOrders contract's events (so orders placed during an outage are known after it)."""

    kind = "trigger_keeper"

    @config_dataclass
    class Config(KeeperConfig):
        gas_estimate: Integer = Field(300_000, gt=0, le=MAX_GAS,
                                      description="gas it expects an execution to cost until measured")

    config: Config

    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx):
            return []
        orders = ctx.protocol.active_trigger_orders()
        actions: list[Action] = []
        for order_id in sorted(orders):
            order = orders[order_id]
            index = ctx.market(ctx.markets[order.market]).index_price * 1e18
            fires_below = (order.size < 0) == (order.kind == 0)  # a stop-loss that sells fires below its trigger
            if (index <= order.trigger_price) if fires_below else (index >= order.trigger_price):
                actions.append(ExecuteTrigger(order_id))
                if len(actions) >= self.max_transactions:
                    break
        return actions


class AdlKeeper(Keeper):
    """While a market carries a deficit, deleverages each bankrupt position against the best
    opposite target by unrealised PnL times leverage (the facade's `adl_ranking`). Where ADL by
    PnL is on (a market's adl_pnl_factor, GMX v2), while the traders' PnL factor calls for it,
    closes the most profitable positions first (`pnl_ranking`), as many as shed the PnL above
    the after-factor."""

    kind = "adl_keeper"

    config: KeeperConfig

    def decide(self, ctx: StepContext) -> list[Action]:
        if not self.active(ctx):
            return []
        actions: list[Action] = []
        protocol = ctx.protocol
        for market in ctx.markets:
            if ctx.market(market).deficit <= 0:
                continue
            room: dict[tuple[str, int], float] = {}  # what each target has left after this step's fills
            for owner, subaccount in protocol.bankrupt_accounts(market):
                size = protocol.position_size(owner, market, subaccount)
                left = abs(size)
                for target in protocol.adl_ranking(market, size) if size else []:
                    key = (target.owner, target.subaccount)
                    available = room.setdefault(key, abs(target.size))
                    if available <= 0:
                        continue
                    fill = min(left, available)
                    room[key] = available - fill
                    left -= fill
                    actions.append(Deleverage((owner, subaccount), key, market, None if fill == abs(size) else fill))
                    if left <= 0 or len(actions) >= self.max_transactions:
                        break
                if len(actions) >= self.max_transactions:
                    return actions
        for market in ctx.markets:
            actions += self._by_pnl(ctx, market, self.max_transactions - len(actions))
        return actions

    @staticmethod
    def _by_pnl(ctx: StepContext, market: str, budget: int) -> list[Action]:
        """ADL by PnL in `market`: the most profitable positions, until their PnL covers what
        the factor must shed (each close is capped on chain at what is left to shed)."""
        if budget <= 0:
            return []
        excess = ctx.protocol.pnl_adl_excess(market)
        actions: list[Action] = []
        for target in ctx.protocol.pnl_ranking(market) if excess > 0 else []:
            actions.append(DeleverageByPnl((target.owner, target.subaccount), market))
            excess -= target.pnl
            if excess <= 0 or len(actions) >= budget:
                break
        return actions
