"""Manipulators that attack through the market itself (issue 11, item 3): a spot pump, wash
trading between its own subaccounts, withdraw-to-liquidate, and a self-liquidating short.

Each plays one real incident's attack as a small state machine, decided from what it reads
(DESIGN §6). Every one has role "manipulator", so the traders' book (sim/traders.py) values
everything it holds each step, every subaccount's equity, its tokens, its SpotPool base
tokens at the true price, and `summary.json`'s `attacker_profit_usd` is its PnL. An attacker
mints all its capital in setup, so that PnL is what the attack made or lost.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field

from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    ClosePosition,
    Deposit,
    Mint,
    Outcome,
    StepContext,
    SwapOnPool,
    Trade,
    Withdraw,
    config_dataclass,
)
from sim.bounds import MAX_LEVERAGE, MAX_RATIO, MAX_STEPS, MAX_USD, MIN_USD, Integer, Number

WITHDRAW_MARGIN = 0.995
"""Share of what a health reading says may leave that an attacker asks for: the price moves a
little between its read and its transaction."""


OI_ROOM_USED = 0.99
"""Share of the room under a market's open-interest cap an attacker's order takes (others trade too)."""
LEVERAGE_USED = 0.9
"""Share of a market's maximum leverage an attacker opens at (the fee and the fill's impact
come out of its margin)."""
BASE_DUST = 1e-9
"""Share of its base tokens an attacker leaves unsold: its float reading of a balance may round up."""


def cents(amount: float) -> float:
    """`amount` USD rounded down to the cent (what a withdrawal asks for)."""
    return math.floor(max(amount, 0.0) * 100) / 100


@config_dataclass
class AttackerConfig(AgentConfig):
    """What every manipulator here has: its capital, its market and its limit prices."""

    collateral: Number = Field(1_000_000.0, ge=MIN_USD, le=MAX_USD,
                               description="USD deposited into each subaccount it trades from before step 0")
    market: str = Field("", description="market attacked; empty: the first")
    leverage: Number = Field(5.0, gt=0, le=MAX_LEVERAGE, description="position notional / equity of each leg")
    slippage: Number = Field(0.2, gt=0, lt=1, description="limit price distance from the index")


class Attacker(Agent):
    """Shared by the manipulators here: funding, the chosen market, sizes, withdrawals and the
    SpotPool legs. Subclasses implement `decide`."""

    role = "manipulator"
    phase = "trader"
    Config: ClassVar[type[AgentConfig]] = AttackerConfig
    config: AttackerConfig
    pump_budget_field: ClassVar[str | None] = None  # Config field of USD kept in the wallet for the pool

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.market = self.config.market
        self.state = "idle"
        self.since = 0  # step the current state began
        self.now = -1

    @classmethod
    def check_config(cls, config: AttackerConfig, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        if config.market and config.market not in markets:
            return [("market", config.market, f"one of the scenario's markets {list(markets)} (or empty)")]
        return []

    def pump_budget(self) -> float:
        return float(getattr(self.config, self.pump_budget_field)) if self.pump_budget_field else 0.0

    def setup(self, ctx: StepContext) -> list[Action]:
        self.market = self.market or ctx.markets[0]  # one with a SpotPool where it pumps (sim/scenario.py checks)
        c = self.config.collateral
        return [Mint(c * len(self.subaccounts) + self.pump_budget()),
                *(Deposit(c, subaccount=s) for s in self.subaccounts)]

    # -- reading -------------------------------------------------------------------------
    def enter(self, state: str) -> None:
        self.state, self.since = state, self.now

    def waited(self, ctx: StepContext) -> int:
        return ctx.step - self.since

    def open_leg(self, ctx: StepContext, direction: int, subaccount: int = 0, leverage: float | None = None) -> Trade:
        """A trade opening `leverage` x the subaccount's equity (at most its `collateral`: the
        attack does not grow with its winnings) in `direction` at the index, or as much as the
        market's open-interest cap and maximum leverage leave room for."""
        view = ctx.market(self.market)
        equity = min(ctx.protocol.health(self.account, subaccount).equity, self.config.collateral)
        side_oi = view.oi_long if direction > 0 else view.oi_short
        room = max(min(view.config.max_oi, self.usd_cap(ctx) / view.index_price) - side_oi, 0.0) * OI_ROOM_USED
        leverage = leverage or self.config.leverage
        cap = getattr(view.config, "max_leverage", 0.0)
        if cap:
            leverage = min(leverage, cap * LEVERAGE_USED)
        size = direction * min(leverage * equity / view.index_price, room)
        limit = view.index_price * (1 + direction * self.config.slippage)
        return Trade(self.market, float(f"{size:.12g}"), limit, subaccount)

    def usd_cap(self, ctx: StepContext) -> float:
        """The market's cap on a side's open interest in USD, the tighter of `max_oi_usd` and
        `max_oi_vault_factor` x the Vault's tokens (GMX v2); infinite where it has neither."""
        config = ctx.market_configs[self.market]
        caps = [getattr(config, "max_oi_usd", 0.0) or math.inf]
        if getattr(config, "max_oi_vault_factor", 0.0):
            caps.append(config.max_oi_vault_factor * ctx.protocol.vault.call("token_balance") / 10**6)
        return min(caps)

    def withdrawable(self, ctx: StepContext, subaccount: int = 0, *, unrealized: bool) -> float:
        """USD it may ask to withdraw now: equity above initial margin (collateral only, unless
        `unrealized`), and no more than the Vault holds, which lends what exceeds collateral."""
        protocol = ctx.protocol
        health = protocol.health(self.account, subaccount)
        room = health.equity - health.initial_margin
        collateral = protocol.collateral(self.account, subaccount)
        if not unrealized:
            room = min(room, collateral)
        elif room > collateral:
            vault = protocol.vault.call("token_balance") / 10**6
            room = min(room, max(collateral, 0.0) + vault)
        return cents(room * WITHDRAW_MARGIN)

    def buy_pool(self, ctx: StepContext, usd: float) -> list[Action]:
        """Buy base tokens on the market's SpotPool with up to `usd` of its wallet."""
        usd = cents(min(usd, ctx.protocol.token_balance(self.account)))
        return [SwapOnPool(self.market, sell_base=False, amount=usd)] if usd >= 1.0 else []

    def sell_pool(self, ctx: StepContext) -> list[Action]:
        """Sell every base token it holds back to the SpotPool (the unwind)."""
        base = ctx.protocol.base_balance(self.account, self.market) * (1 - BASE_DUST)
        return [SwapOnPool(self.market, sell_base=True, amount=base)] if base * ctx.true_prices[self.market] >= 1.0 else []

    def holds_position(self, ctx: StepContext, subaccount: int = 0) -> bool:
        return ctx.protocol.position_size(self.account, self.market, subaccount) != 0


class SpotPump(Attacker):
    """Spot pump (Mango Markets, GMX AVAX): opens a `leverage`x long, then buys the market's
    SpotPool with `pump_capital` over `pump_blocks` blocks, so a feed that reads the pool
    moves up; once the index is `take_profit` up (or `max_wait` blocks after the pump began)
    it cashes out, by closing (`exit = "close"`) or by withdrawing the unrealised profit and
    leaving the position to go under water (`exit = "withdraw_unrealized"`; it closes
    instead where the market refuses), then sells its base tokens back. `rounds` repeats it."""

    kind = "spot_pump"
    pump_budget_field = "pump_capital"

    @config_dataclass
    class Config(AttackerConfig):
        pump_capital: Number = Field(1_000_000.0, ge=MIN_USD, le=MAX_USD,
                                     description="USD kept in its wallet to buy the SpotPool with")
        pump_blocks: Integer = Field(3, ge=1, le=MAX_STEPS, description="blocks each round's buying is spread over")
        take_profit: Number = Field(0.5, gt=0, le=MAX_RATIO, description="index rise (fraction) at which it cashes out")
        max_wait: Integer = Field(10, ge=1, le=MAX_STEPS,
                                  description="blocks after the pump began it waits for take_profit before cashing out")
        exit: Literal["close", "withdraw_unrealized"] = Field("close", description="how it cashes out")
        rounds: Integer = Field(1, ge=1, le=MAX_STEPS, description="times it plays the attack")
        rest_blocks: Integer = Field(5, ge=0, le=MAX_STEPS, description="blocks between rounds")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.round = 0
        self.entry_index = 0.0
        self.pumped = 0  # blocks of buying this round
        self.close_instead = False  # the market refused to let unrealised profit leave
        self.withdrawn = 0.0

    def decide(self, ctx: StepContext) -> list[Action]:
        self.now = ctx.step
        cfg = self.config
        if not self.active(ctx) or self.state == "done":
            return []
        if self.state == "idle":
            if self.round and self.waited(ctx) < cfg.rest_blocks:
                return []
            self.entry_index = ctx.market(self.market).index_price
            self.pumped = 0
            return [self.open_leg(ctx, 1)]
        if self.state == "pumping":
            move = ctx.market(self.market).index_price / self.entry_index - 1
            if move >= cfg.take_profit or self.waited(ctx) >= cfg.max_wait:
                return self.cash_out(ctx)
            if self.pumped < cfg.pump_blocks:
                self.pumped += 1
                return self.buy_pool(ctx, cfg.pump_capital / cfg.pump_blocks)
            return []
        if self.state == "unwinding":
            return self.sell_pool(ctx) or self.finish_round()
        return []

    def cash_out(self, ctx: StepContext) -> list[Action]:
        if self.config.exit == "withdraw_unrealized" and not self.close_instead:
            amount = self.withdrawable(ctx, unrealized=True)
            if amount > max(ctx.protocol.collateral(self.account), 0.0):  # there is paper profit to take
                return [Withdraw(amount)]
        return [ClosePosition(self.market, slippage=self.config.slippage)]

    def finish_round(self) -> list[Action]:
        self.round += 1
        self.enter("idle" if self.round < self.config.rounds else "done")
        return []

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if isinstance(action, Trade):
            if outcome.ok:
                self.enter("pumping")
            else:
                self.finish_round()  # refused (an OI cap, the margin): this round is off
        elif isinstance(action, Withdraw):
            if outcome.ok:
                self.withdrawn += action.amount
                self.enter("unwinding")
            else:
                self.close_instead = True  # unrealised profit may not leave: close next block
        elif isinstance(action, ClosePosition) and outcome.ok:
            self.enter("unwinding")
        elif isinstance(action, SwapOnPool) and action.sell_base and outcome.ok:
            self.finish_round()


class WashTrader(Attacker):
    """Wash trading to build open interest (dYdX YFI): from `pairs` pairs of its own
    subaccounts, opens a `leverage`x long on one and as large a short on the other, one pair
    a block, so open interest grows with no net position. When the price runs, each leg that
    has made `take_profit` times its collateral is closed and its collateral taken out; the
    losing legs are left to their liquidation, so the protocol keeps their shortfall."""

    kind = "wash_trader"

    @config_dataclass
    class Config(AttackerConfig):
        pairs: Integer = Field(5, ge=1, le=64, description="pairs of subaccounts (one long, one short each)")
        take_profit: Number = Field(1.0, gt=0, le=MAX_RATIO,
                                    description="a leg's profit, in multiples of its collateral, at which it closes")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.opened = 0  # legs opened so far
        self.closed: set[int] = set()

    @property
    def subaccounts(self) -> tuple[int, ...]:
        return tuple(range(2 * self.config.pairs))

    def decide(self, ctx: StepContext) -> list[Action]:
        self.now = ctx.step
        if not self.active(ctx):
            return []
        if self.opened < len(self.subaccounts):
            long_sub, short_sub = self.opened, self.opened + 1
            return [self.open_leg(ctx, 1, long_sub), self.open_leg(ctx, -1, short_sub)]
        actions: list[Action] = []
        for sub in self.subaccounts:
            if sub in self.closed:
                continue
            protocol = ctx.protocol
            if not self.holds_position(ctx, sub):
                continue  # liquidated
            health = protocol.health(self.account, sub)
            if health.equity >= (1 + self.config.take_profit) * self.config.collateral:
                actions.append(ClosePosition(self.market, sub, slippage=self.config.slippage))
        for sub in self.closed:
            collateral = cents(ctx.protocol.collateral(self.account, sub))
            if collateral > 0 and not self.holds_position(ctx, sub):
                actions.append(Withdraw(collateral, sub))
        return actions

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if isinstance(action, Trade) and action.size < 0:
            self.opened += 2  # the pair is done, opened or refused (an OI cap)
        elif isinstance(action, ClosePosition) and outcome.ok:
            self.closed.add(action.subaccount)


class WithdrawToLiquidate(Attacker):
    """Withdraw-to-liquidate (Hyperliquid ETH, March 2025): opens a `leverage`x long, then
    every block takes out all the margin the market lets leave (unrealised profit too, where
    it may), so the position sits at initial margin and the next move against it hands it
    to the liquidators and the Vault; the cost of closing a position that size falls on them
    rather than on the attacker, who keeps what it withdrew."""

    kind = "withdraw_to_liquidate"

    @config_dataclass
    class Config(AttackerConfig):
        hold_blocks: Integer = Field(5, ge=0, le=MAX_STEPS, description="blocks between opening and the first withdrawal")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.withdrawn = 0.0
        self.unrealized = True  # until the market refuses to let unrealised profit leave

    def decide(self, ctx: StepContext) -> list[Action]:
        self.now = ctx.step
        if not self.active(ctx) or self.state == "done":
            return []
        if self.state == "idle":
            return [self.open_leg(ctx, 1)]
        if self.waited(ctx) < self.config.hold_blocks:
            return []
        if not self.holds_position(ctx):
            self.enter("done")  # liquidated: take what is left
            left = cents(ctx.protocol.collateral(self.account))
            return [Withdraw(left)] if left > 0 else []
        amount = self.withdrawable(ctx, unrealized=self.unrealized)
        return [Withdraw(amount)] if amount >= 1.0 else []

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if isinstance(action, Trade) and outcome.ok:
            self.enter("holding")
        elif isinstance(action, Withdraw):
            if outcome.ok:
                self.withdrawn += action.amount
            elif self.unrealized:
                self.unrealized = False  # collateral only from now on


class SelfLiquidatingShort(Attacker):
    """A self-liquidating short (Hyperliquid JELLY, March 2025): opens a `leverage`x short on
    subaccount 0 and as large a long on subaccount 1 (self-traded: no net position), then
    buys the market's SpotPool with `pump_capital` over `pump_blocks` blocks. The short goes
    under water and is liquidated into the Vault, which now holds the short; once the index
    is `take_profit` up the long is closed for the Vault's money, and the base tokens sold
    back."""

    kind = "self_liquidating_short"
    pump_budget_field = "pump_capital"

    @config_dataclass
    class Config(AttackerConfig):
        pump_capital: Number = Field(1_000_000.0, ge=MIN_USD, le=MAX_USD,
                                     description="USD kept in its wallet to buy the SpotPool with")
        pump_blocks: Integer = Field(5, ge=1, le=MAX_STEPS, description="blocks the buying is spread over")
        take_profit: Number = Field(2.0, gt=0, le=MAX_RATIO,
                                    description="index rise (fraction) at which it closes the long")
        max_wait: Integer = Field(20, ge=1, le=MAX_STEPS,
                                  description="blocks after the pump began it waits for take_profit before closing")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.entry_index = 0.0
        self.pumped = 0

    @property
    def subaccounts(self) -> tuple[int, ...]:
        return (0, 1)

    def decide(self, ctx: StepContext) -> list[Action]:
        self.now = ctx.step
        cfg = self.config
        if not self.active(ctx) or self.state == "done":
            return []
        if self.state == "idle":
            self.entry_index = ctx.market(self.market).index_price
            return [self.open_leg(ctx, -1, 0), self.open_leg(ctx, 1, 1)]
        if self.state == "pumping":
            move = ctx.market(self.market).index_price / self.entry_index - 1
            if move >= cfg.take_profit or self.waited(ctx) >= cfg.max_wait:
                return [ClosePosition(self.market, 1, slippage=cfg.slippage)]
            if self.pumped < cfg.pump_blocks:
                self.pumped += 1
                return self.buy_pool(ctx, cfg.pump_capital / cfg.pump_blocks)
            return []
        if self.state == "unwinding":
            actions = self.sell_pool(ctx)
            left = cents(ctx.protocol.collateral(self.account, 1))
            if left > 0:
                actions.append(Withdraw(left, 1))
            self.enter("done")
            return actions
        return []

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if isinstance(action, Trade) and action.size > 0:  # the long leg, the second of the pair
            self.enter("pumping" if outcome.ok else "done")
        elif isinstance(action, ClosePosition) and outcome.ok:
            self.enter("unwinding")
