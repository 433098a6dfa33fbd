"""What every agent is made of: a frozen Config, a seeded RNG, one decision method, actions.

An agent (agent0's policy pattern, DESIGN §6) holds a frozen, documented `Config`, its own
`numpy.random.Generator` seeded from the scenario seed and its index in the scenario (never
a default seed), and one account. Each step the engine hands it a `StepContext` and it
returns the `Action`s it wants to take; the engine executes them through the protocol
facade, in the order it owns, and reports each `Outcome` back through `on_result`.

Agents read state only through the context (the facade's views, the step's true prices,
the shock conditions the engine publishes) and never touch another agent's state. Actions
are plain data: the engine decides when they run, catches reverts and counts them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from sim.bounds import MAX_STEPS, Integer
from sim.chain import Event
from sim.protocol import MarketConfig, MarketReading, Protocol
from sim.units import from_wad

if TYPE_CHECKING:
    from sim.agents.world import World

Phase = Literal["reporter", "trader", "keeper"]
Role = Literal["trader", "lp", "keeper", "reporter", "manipulator", "arbitrageur"]

CONFIG_OPTIONS = ConfigDict(extra="forbid", validate_default=True)
"""Every agent Config: unknown fields are errors (typos), defaults are validated too."""

config_dataclass = pydantic_dataclass(frozen=True, config=CONFIG_OPTIONS)
"""Decorator for an agent's nested `Config`: a frozen dataclass validated by pydantic."""


@config_dataclass
class AgentConfig:
    """Fields every agent has. Subclasses add theirs, each with a default and a description."""

    start_step: Integer = Field(0, ge=0, le=MAX_STEPS,
                                description="first step the agent acts in (setup happens before step 0)")


# ---------------------------------------------------------------------------------------
# Actions: what an agent asks the engine to do
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Action(ABC):
    """One thing an agent wants done. On-chain actions send one transaction (two for a first
    deposit, which approves the token) from the agent's account through the facade."""

    offchain: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """snake_case action name, used to count transactions and reverts."""
        return _snake(type(self).__name__)

    @abstractmethod
    def execute(self, protocol: Protocol, account: str) -> Any:
        """Send the transaction(s) from `account`; return what the facade returns."""


@dataclass(frozen=True)
class Mint(Action):
    """Take collateral tokens from the faucet (simulation only)."""

    amount: float

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.mint(account, self.amount)


@dataclass(frozen=True)
class Deposit(Action):
    """Move collateral tokens from the wallet into a subaccount."""

    amount: float
    subaccount: int = 0

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.deposit(account, self.amount, self.subaccount)


@dataclass(frozen=True)
class Withdraw(Action):
    """Move collateral out of a subaccount to the wallet."""

    amount: float
    subaccount: int = 0

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.withdraw(account, self.amount, self.subaccount)


@dataclass(frozen=True)
class Trade(Action):
    """Buy (size > 0) or sell base units at no worse than `limit_price` (USD)."""

    market: str
    size: float
    limit_price: float
    subaccount: int = 0

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.trade(account, self.market, self.size, self.subaccount, limit_price=self.limit_price)


@dataclass(frozen=True)
class ClosePosition(Action):
    """Close the whole position in a market (size read at execution), within `slippage` of the quote."""

    market: str
    subaccount: int = 0
    slippage: float = 0.05

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.close_position(account, self.market, self.subaccount, slippage=self.slippage)


@dataclass(frozen=True)
class LpDeposit(Action):
    """Deposit collateral tokens into the Vault for shares."""

    amount: float

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.lp_deposit(account, self.amount)


@dataclass(frozen=True)
class LpWithdraw(Action):
    """Burn Vault shares (all when `shares` is None) for collateral tokens."""

    shares: float | None = None

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.lp_withdraw(account, self.shares)


@dataclass(frozen=True)
class PlaceTrigger(Action):
    """Place a reduce-only stop-loss or take-profit order; the result is its order id."""

    market: str
    size: float
    trigger_price: float
    kind: Literal["stop_loss", "take_profit"] = "stop_loss"
    keeper_fee: float = 1.0
    subaccount: int = 0
    slippage: float = 0.01  # the limit price, this fraction beyond the trigger (Protocol.place_trigger)

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.place_trigger(account, self.market, self.size, self.trigger_price, self.kind,
                                      self.subaccount, keeper_fee=self.keeper_fee, slippage=self.slippage)


@dataclass(frozen=True)
class CancelTrigger(Action):
    """Cancel one of the agent's own trigger orders."""

    order_id: int

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.cancel_trigger(account, self.order_id)


@dataclass(frozen=True)
class ExecuteTrigger(Action):
    """Execute a triggered order (a keeper's job, for the order's fee)."""

    order_id: int

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.execute_trigger(account, self.order_id)


@dataclass(frozen=True)
class Liquidate(Action):
    """Liquidate a subaccount's position in a market; the result is base units closed."""

    owner: str
    subaccount: int
    market: str
    max_size: float | None = None

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.liquidate(account, self.owner, self.market, self.subaccount, self.max_size)


@dataclass(frozen=True)
class Deleverage(Action):
    """Close a bankrupt position against a profitable opposite one (ADL)."""

    bankrupt: tuple[str, int]
    target: tuple[str, int]
    market: str
    size: float | None = None

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.deleverage(account, self.bankrupt, self.target, self.market, self.size)


@dataclass(frozen=True)
class Delist(Action):
    """The protocol's owner delists a market at a settlement price (USD), for good."""

    market: str
    settlement_price: float

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.delist(self.market, self.settlement_price)


@dataclass(frozen=True)
class Settle(Action):
    """Close a position in a delisted market at its settlement price (anyone)."""

    owner: str
    subaccount: int
    market: str

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.settle(account, self.owner, self.market, self.subaccount)


@dataclass(frozen=True)
class DeleverageByPnl(Action):
    """Close a profitable position while the market's PnL factor calls for ADL (GMX v2)."""

    target: tuple[str, int]
    market: str
    size: float | None = None

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.deleverage_by_pnl(account, self.target[0], self.market, self.target[1], self.size)


@dataclass(frozen=True)
class ReportPrice(Action):
    """A whitelisted reporter's price for a market's asset (USD)."""

    market: str
    price: float

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.report_price(self.market, self.price, reporter=account)


@dataclass(frozen=True)
class MintBase(Action):
    """Take a market's SpotPool base token from its faucet (simulation only), base units."""

    market: str
    amount: float

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.mint_base(account, self.market, self.amount)


@dataclass(frozen=True)
class SwapOnPool(Action):
    """Sell exactly `amount` on a market's SpotPool (base units when `sell_base`, else USD);
    the result is what it paid in the other token."""

    market: str
    sell_base: bool
    amount: float
    min_out: float = 0.0

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.swap(account, self.market, self.sell_base, self.amount, self.min_out)


@dataclass(frozen=True)
class RefreshFeed(Action):
    """Submit a pool-priced feed's SpotPool price to the oracle (anyone may); the result is
    whether the pool's price was submitted."""

    market: str

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.refresh_feed(self.market, sender=account)


@dataclass(frozen=True)
class BribeReporters(Action):
    """Off-chain: buy the first `count` reporters for `blocks` steps, so they report the true
    price times `factor`. The engine applies it to the world; no transaction is sent."""

    offchain: ClassVar[bool] = True
    count: int
    factor: float
    blocks: int

    def execute(self, protocol: Protocol, account: str) -> Any:
        raise TypeError("BribeReporters is off-chain: the engine applies it to the World")


@dataclass(frozen=True)
class Outcome:
    """What became of one action: its result, or the revert reason; gas of its transactions."""

    ok: bool
    value: Any = None
    reason: str | None = None
    gas_used: int = 0


# ---------------------------------------------------------------------------------------
# The context: everything an agent may read in one step
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketView:
    """A market as it stood at the start of the current phase, read once and shared."""

    name: str
    index_price: float  # USD, the oracle price the Exchange uses
    valid: bool  # whether the oracle feed is valid (invalid: reduce-only)
    mark_price: float
    funding_rate: float  # per day; positive: longs pay
    oi_long: float  # base units
    oi_short: float
    deficit: float  # USD of bad debt awaiting ADL
    config: MarketConfig

    @property
    def skew(self) -> float:
        """Traders' net position (base units); the Vault holds minus this."""
        return self.oi_long - self.oi_short

    @property
    def premium(self) -> float:
        """skew / skew_scale: the price impact a trade pays on top of the index."""
        return self.skew / self.config.skew_scale


class StepContext:
    """What agents decide from in one step: the step's identity and true prices, the price
    history (for lagging reporters and momentum), the shock conditions (`world`), the facade,
    and the markets' views cached per phase, so a hundred agents read them once.

    Views cached here are the state at the start of the phase, as a block's transactions see
    the previous block's state; an agent's own account is read live through `protocol`."""

    def __init__(self, protocol: Protocol, world: World, step_seconds: int) -> None:
        self.protocol = protocol
        self.world = world
        self.step_seconds = step_seconds
        self.markets: tuple[str, ...] = tuple(m.name for m in protocol.config.markets)
        self.market_configs: dict[str, MarketConfig] = {m.name: m for m in protocol.config.markets}
        self.step = -1
        self.true_prices: dict[str, float] = {}
        self.history: dict[str, list[float]] = {m: [] for m in self.markets}
        self.events: list[Event] = []  # events logged since the previous step's keeper phase
        self._cache: dict[tuple[Any, ...], Any] = {}

    # -- the engine's side ------------------------------------------------------------
    def begin_step(self, step: int, true_prices: Mapping[str, float]) -> None:
        self.step = step
        self.true_prices = dict(true_prices)
        for market in self.markets:
            self.history[market].append(self.true_prices[market])
        self.refresh()

    def set_events(self, events: list[Event]) -> None:
        """The events logged since the last call (the engine's, once per step, before keepers)."""
        self.events = events

    def refresh(self) -> None:
        """Forget cached views: the engine calls this between phases."""
        self._cache.clear()

    def _memo(self, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = read()
            return value

    # -- the agents' side -------------------------------------------------------------
    @property
    def block(self) -> int:
        return self.protocol.chain.block_number

    def price_at(self, market: str, step: int) -> float:
        """The true price of `market` at `step` (the first step's before it): what a reporter
        lagging by `self.step - step` blocks reports."""
        series = self.history[market]
        return series[min(max(step, 0), len(series) - 1)]

    def reading(self, name: str) -> MarketReading:
        """The market's views (1e18 fixed point), read once per phase; see `market`."""
        return self._memo(("reading", name), lambda: self.protocol.read_market(name))

    def readings(self) -> dict[int, MarketReading]:
        """Every market's reading by market id (what the index screens liquidations with)."""
        return {i: self.reading(name) for i, name in enumerate(self.markets)}

    def market(self, name: str) -> MarketView:
        """The market's views, read once per phase."""
        return self._memo(("market", name), lambda: self._market_view(name))

    def _market_view(self, name: str) -> MarketView:
        r = self.reading(name)
        state = r.state  # oi_long, oi_short, ..., deficit at 8
        return MarketView(
            name=name, index_price=from_wad(r.index_price), valid=r.valid, mark_price=from_wad(r.mark_price),
            funding_rate=from_wad(r.funding_rate), oi_long=state[0] / 1e18, oi_short=state[1] / 1e18,
            deficit=state[8] / 1e18, config=self.market_configs[name],
        )

    def liquidatable(self) -> list[tuple[str, int]]:
        """Subaccounts below maintenance margin, read once per phase (so competing keepers
        see the same block and race for the same targets), from the facade's index."""
        return self._memo(("liquidatable",), lambda: self.protocol.liquidatable_accounts(self.readings()))

    def account_markets(self, owner: str, subaccount: int) -> list[str]:
        """Names of the markets a subaccount holds positions in, read once per phase."""
        def read() -> list[str]:
            ids = self.protocol.account_markets(owner, subaccount)
            return [self.markets[i] for i in ids]
        return self._memo(("account_markets", owner, subaccount), read)

    def vault_share_price(self) -> float:
        return self._memo(("share_price",), lambda: self.protocol.vault.call("share_price") / 1e18)

    def open_interest_notional(self) -> float:
        """USD notional of all open interest (what the Vault's reserve is measured against)."""
        return self._memo(("oi_notional",), lambda: self.protocol.exchange.call("open_interest_notional") / 1e18)


# ---------------------------------------------------------------------------------------
# The agent
# ---------------------------------------------------------------------------------------


@dataclass
class AgentIdentity:
    """Who an agent is in its scenario: its index (seeds its RNG), its group, its account."""

    index: int  # position among all the scenario's agents
    group: int  # which [[agents]] table it came from
    label: str  # the account's label, e.g. "noise_trader-3"
    account: str  # checksummed address


class Agent(ABC):
    """Base of every agent in the zoo.

    Subclasses set `kind`, `role` and `phase`, define a nested `Config` (a `config_dataclass`
    subclass of AgentConfig whose fields each have a default and a description) and
    implement `decide`. `setup` returns the actions that fund the agent before step 0."""

    kind: ClassVar[str]
    role: ClassVar[Role]
    phase: ClassVar[Phase]
    Config: ClassVar[type[AgentConfig]] = AgentConfig

    def __init__(self, config: AgentConfig, rng: np.random.Generator, identity: AgentIdentity) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.kind}: rng must be a numpy Generator seeded by the engine, got {rng!r}")
        if not isinstance(config, self.Config):
            raise TypeError(f"{self.kind}: config must be a {self.Config.__qualname__}, got {type(config).__name__}")
        self.config = config
        self.rng = rng
        self.identity = identity

    @property
    def account(self) -> str:
        return self.identity.account

    @property
    def subaccounts(self) -> tuple[int, ...]:
        """The subaccounts this agent trades from (what the recorder follows)."""
        return (0,)

    def setup(self, ctx: StepContext) -> list[Action]:
        """Actions before the first step (mint and deposit); none by default."""
        return []

    def active(self, ctx: StepContext) -> bool:
        return ctx.step >= self.config.start_step

    @abstractmethod
    def decide(self, ctx: StepContext) -> list[Action]:
        """The actions to take this step, decided from what the agent reads in `ctx`."""

    def on_result(self, action: Action, outcome: Outcome) -> None:
        """Hook after each action lands (or reverts); agents update their own memory here."""


# ---------------------------------------------------------------------------------------
# Describing configs (for the zoo and for error messages)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigField:
    name: str
    type: str
    default: Any
    description: str


def config_fields(config_cls: type) -> list[ConfigField]:
    """Each field of an agent Config: name, type, default and description."""
    infos = getattr(config_cls, "__pydantic_fields__", {})
    out = []
    for f in dataclasses.fields(config_cls):
        info = infos.get(f.name)
        default = info.default if info is not None else f.default
        description = (info.description if info is not None else None) or ""
        annotation = info.annotation if info is not None else f.type
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        out.append(ConfigField(f.name, type_name, default, description))
    return out


def markets_or_all(chosen: Sequence[str], ctx: StepContext) -> tuple[str, ...]:
    """`chosen`, or every market when it is empty."""
    return tuple(chosen) if chosen else ctx.markets



def unknown_markets(chosen: tuple[str, ...], markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
    """An agent's `markets` field checked against the scenario's (the `check_config` of agents
    that take a list of markets): the problem (field, value, expected), if it names others."""
    unknown = [m for m in chosen if m not in markets]
    return [("markets", unknown, f"names among the scenario's markets {list(markets)}")] if unknown else []

__all__ = [
    "Action", "Agent", "AgentConfig", "AgentIdentity", "BribeReporters", "CancelTrigger", "ClosePosition",
    "ConfigField", "Deleverage", "Deposit", "ExecuteTrigger", "Liquidate", "LpDeposit", "LpWithdraw",
    "MarketView", "Mint", "Outcome", "MintBase", "PlaceTrigger", "RefreshFeed", "ReportPrice", "SwapOnPool", "StepContext", "Trade", "Withdraw",
    "config_dataclass", "config_fields", "markets_or_all", "unknown_markets",
]
