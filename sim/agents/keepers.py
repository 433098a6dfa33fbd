"""Keepers: liquidation, trigger-order and ADL keepers (DESIGN §6).

Keepers act after the traders, and all of them decide from the same state (the block as
the traders left it) before any of their transactions run: several keepers after the same
account race, the engine runs their transactions in a seeded order, the first wins and the
others revert, and the engine counts those reverts by reason. Each keeper spends at most a
gas budget per step, judged by what its past transactions cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import Field

from sim.bounds import MAX_GAS, MAX_GAS_PER_STEP, MAX_STEPS, Integer
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    Deleverage,
    ExecuteTrigger,
    Liquidate,
    Outcome,
    StepContext,
    config_dataclass,
)
from sim.chain import Event
from sim.protocol import Protocol

Subaccount = tuple[str, int]


class LiquidationScanner:
    """An off-chain index that finds the subaccounts below maintenance margin without asking
    the chain about every account every block, as a keeper's indexer does.

    It follows positions from events (a Trade gives the new size; a liquidation or ADL makes
    it re-read the account), keeps each single-position subaccount's liquidation price
    (the Liquidator's `liquidation_price` view, refreshed after any event about the account
    and every `refresh_blocks` for funding's drift), and asks `is_liquidatable` only of
    accounts whose mark is within `margin` of that price, and of every cross-margined
    account. The answer is the chain's (`is_liquidatable`); the prices only choose whom to
    ask. tests/sim check that it finds exactly what `Protocol.liquidatable_accounts` does."""

    def __init__(self, protocol: Protocol, refresh_blocks: int = 20, margin: float = 0.01) -> None:
        self.protocol = protocol
        self.refresh_blocks = refresh_blocks
        self.margin = margin
        self.sizes: dict[Subaccount, dict[int, int]] = {}  # open positions, 1e18 base units
        self.reread: set[Subaccount] = set()  # sizes unknown after a liquidation or ADL
        self.prices: dict[Subaccount, tuple[int, float]] = {}  # (step read, liquidation price)
        self._exchange = protocol.exchange.address
        self._liquidator = protocol.liquidator.address

    def observe(self, events: Iterable[Event]) -> None:
        """Fold new events in: positions and which liquidation prices are out of date."""
        for ev in events:
            if ev.address == self._exchange:
                if "owner" not in ev.args or "subaccount" not in ev.args:
                    continue
                account = (ev.args["owner"], ev.args["subaccount"])
                if ev.name == "Trade":
                    sizes = self.sizes.setdefault(account, {})
                    sizes[ev.args["market"]] = ev.args["new_size"]
                self.prices.pop(account, None)
            elif ev.address == self._liquidator:
                args = ev.args
                for owner, sub in ((args.get("owner"), args.get("subaccount")),
                                   (args.get("bankrupt_owner"), args.get("bankrupt_subaccount")),
                                   (args.get("target_owner"), args.get("target_subaccount"))):
                    if owner is not None:
                        self.reread.add((owner, sub))
                        self.prices.pop((owner, sub), None)

    def _reread(self, account: Subaccount) -> None:
        owner, sub = account
        markets = self.protocol.exchange.call("account_markets", owner, sub)
        self.sizes[account] = {m: self.protocol.exchange.call("positions", owner, sub, m)[0] for m in markets}

    def liquidatable(self, step: int, mark: Callable[[int], float]) -> list[Subaccount]:
        """Subaccounts below maintenance margin now; `mark(market_id)` is the mark price (USD)."""
        for account in sorted(self.reread):
            self._reread(account)
        self.reread.clear()
        found = []
        for account in sorted(self.sizes):
            open_positions = [(m, size) for m, size in self.sizes[account].items() if size != 0]
            if not open_positions:
                continue
            if len(open_positions) == 1 and not self._near(account, step, *open_positions[0], mark):
                continue
            if self.protocol.liquidator.call("is_liquidatable", *account):
                found.append(account)
        return found

    def _near(self, account: Subaccount, step: int, market: int, size: int, mark: Callable[[int], float]) -> bool:
        """Whether a single-position account's mark is within `margin` of its liquidation price."""
        entry = self.prices.get(account)
        if entry is None or step - entry[0] >= self.refresh_blocks:
            entry = (step, self.protocol.liquidation_price(account[0], market, account[1]))
            self.prices[account] = entry
        price = entry[1]
        if size > 0:  # a long is liquidated as the mark falls to its price; 0: at no positive price
            return price > 0 and mark(market) <= price * (1 + self.margin)
        return price == 0 or mark(market) >= price * (1 - self.margin)  # 0: under water at any price



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
        actions: list[Action] = []
        for i in order[: self.max_transactions]:
            owner, subaccount = ready[int(i)]
            markets = ctx.account_markets(owner, subaccount)
            if markets:
                actions.append(Liquidate(owner, subaccount, markets[0]))
        return actions


class TriggerOrderKeeper(Keeper):
    """Executes stop-loss and take-profit orders once the index crosses their trigger, for
    their keeper fee. It indexes active orders from the TriggerOrders contract's events,
    reading the log from where it left off (so it catches up after an outage)."""

    kind = "trigger_keeper"

    @config_dataclass
    class Config(KeeperConfig):
        gas_estimate: Integer = Field(300_000, gt=0, le=MAX_GAS,
                                      description="gas it expects an execution to cost until measured")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.orders: dict[int, tuple[int, int, int, int]] = {}  # id -> (market id, size, trigger, kind), 1e18
        self.cursor = 0  # its place in the chain's event log (it catches up after an outage)

    def _index_events(self, ctx: StepContext) -> None:
        address = ctx.protocol.trigger_orders.address
        events, self.cursor = ctx.events_since(self.cursor)
        for ev in events:
            if ev.address != address:
                continue
            if ev.name == "OrderPlaced":
                a = ev.args
                self.orders[a["order_id"]] = (a["market"], a["size"], a["trigger_price"], a["kind"])
            elif ev.name in ("OrderCancelled", "OrderExecuted"):
                self.orders.pop(ev.args["order_id"], None)

    def decide(self, ctx: StepContext) -> list[Action]:
        self._index_events(ctx)
        if not self.active(ctx) or not self.orders:
            return []
        actions: list[Action] = []
        for order_id in sorted(self.orders):
            market, size, trigger, kind = self.orders[order_id]
            index = ctx.market(ctx.markets[market]).index_price * 1e18
            fires_below = (size < 0) == (kind == 0)  # a stop-loss that sells fires below its trigger
            if (index <= trigger) if fires_below else (index >= trigger):
                actions.append(ExecuteTrigger(order_id))
                if len(actions) >= self.max_transactions:
                    break
        return actions


class AdlKeeper(Keeper):
    """While a market carries a deficit, deleverages each bankrupt position against the best
    opposite target by unrealised PnL times leverage (the facade's `adl_ranking`)."""

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
                size = protocol.position(owner, market, subaccount).size
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
        return actions
