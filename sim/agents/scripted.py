"""The scripted attacker: plays a fixed plan of attack moves, then unwinds and counts its profit.

`perpsim attack` (sim/attack) searches for the plan; `replay.toml` replays the best one with
this agent, so that `perpsim run` reproduces the search's profit to the token unit. A plan is
a short list of `Move`s, each at a block of the attack (0 is the agent's `start_step`), each
with continuous parameters. At block `horizon` the agent unwinds: it cancels its trigger
orders, redeems its Vault shares, withdraws the margin that is free, closes every position
(the most profitable first), withdraws every subaccount's collateral and sells its base
tokens back (`Unwind`). Its profit is its wallet (collateral tokens) after
the unwind minus before the first move, less the costs the plan declares (bribes at
`bribe_cost` per reporter per block, capital at `capital_cost` a year); `record()` gives it
to the run's summary (`meta.agents`).

Amounts are fractions of what the agent has when the move runs (its wallet, a subaccount's
withdrawable margin, its Vault shares, its base tokens), so a plan stays meaningful on any
state; a move that cannot run (nothing to close, no bankrupt account to deleverage) sends
nothing, and a refusal is counted by the engine like any agent's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from sim.agents.base import Action, Agent, AgentConfig, BribeReporters, Mint, Outcome, StepContext, config_dataclass
from sim.bounds import MAX_LEVERAGE, MAX_RATIO, MAX_REPORTERS, MAX_STEPS, MAX_USD, MIN_USD, Integer, Number
from sim.chain import Reverted
from sim.protocol import Protocol
from sim.units import USDC_UNIT, WAD

MOVE_KINDS = ("deposit", "withdraw", "open", "close", "lp_deposit", "lp_redeem", "spot_buy", "spot_sell", "wash",
              "bribe", "self_liquidate", "adl", "trigger")
"""Every primitive a plan may use, in the order `perpsim attack` describes them."""

SUBACCOUNTS = 3
"""The attacker's subaccounts (0, 1, 2): a wash trade runs between two of them."""

SECONDS_PER_YEAR = 365 * 86_400
OPEN_SLIPPAGE = 0.1  # an opening trade's limit, this far from the quote: the attacker wants in
CLOSE_SLIPPAGE = 0.5  # and wants out at any sane price


@config_dataclass
class Move:
    """One move of a plan. `amount` is a fraction of what the move draws on (see the module);
    fields a kind does not use keep their defaults."""

    kind: Literal[MOVE_KINDS]  # type: ignore[valid-type]
    block: Integer = Field(0, ge=0, le=MAX_STEPS, description="block of the attack it runs in (0: the first)")
    sub: Integer = Field(0, ge=0, lt=SUBACCOUNTS, description="the attacker's subaccount")
    market: str = Field("", description="market; empty: the first")
    amount: Number = Field(1.0, ge=0, le=1, description="fraction of the wallet (deposit, open, lp_deposit, "
                           "spot_buy, wash), of the withdrawable margin (withdraw), of the Vault shares (lp_redeem) "
                           "or of the base tokens (spot_sell)")
    leverage: Number = Field(1.0, ge=0, le=MAX_LEVERAGE, description="open, wash: position notional / equity")
    side: Literal["long", "short"] = Field("long", description="open: the position's side")
    factor: Number = Field(1.0, gt=0, le=MAX_RATIO, description="bribe: reported price / true price; trigger: "
                           "trigger price / index")
    count: Integer = Field(1, ge=1, le=MAX_REPORTERS, description="bribe: reporters bought")
    blocks: Integer = Field(1, ge=1, le=MAX_STEPS, description="bribe: blocks it lasts")

    def relevant(self) -> dict[str, Any]:
        """The move as a table, with only the fields its kind uses."""
        keep = ("kind", "block", *MOVE_FIELDS[self.kind])
        return {name: getattr(self, name) for name in keep}

    def words(self) -> str:
        """The move in plain words."""
        m = f" {self.market}" if self.market else ""
        pct = f"{100 * self.amount:.0f}%"
        return {
            "deposit": f"deposit {pct} of the wallet into subaccount {self.sub}",
            "withdraw": f"withdraw {pct} of subaccount {self.sub}'s withdrawable margin",
            "open": f"open a {self.leverage:.3g}x {self.side}{m} on subaccount {self.sub} with {pct} of the wallet",
            "close": f"close subaccount {self.sub}'s{m} position",
            "lp_deposit": f"deposit {pct} of the wallet into the Vault",
            "lp_redeem": f"redeem {pct} of its Vault shares",
            "spot_buy": f"buy base on the{m} SpotPool with {pct} of the wallet",
            "spot_sell": f"sell {pct} of its{m} base tokens on the SpotPool",
            "wash": f"wash-trade {self.leverage:.3g}x{m} between subaccounts {self.sub} and "
                    f"{(self.sub + 1) % SUBACCOUNTS} with {pct} of the wallet",
            "bribe": f"bribe {self.count} reporter(s) to report x{self.factor:.4g} for {self.blocks} block(s)",
            "self_liquidate": f"liquidate its own subaccount {self.sub}{m}",
            "adl": f"deleverage a bankrupt{m} position against subaccount {self.sub}",
            "trigger": f"place a trigger order on subaccount {self.sub}'s{m} position at x{self.factor:.4g} the index",
        }[self.kind]


MOVE_FIELDS: dict[str, tuple[str, ...]] = {
    "deposit": ("sub", "amount"), "withdraw": ("sub", "amount"),
    "open": ("sub", "market", "amount", "leverage", "side"), "close": ("sub", "market"),
    "lp_deposit": ("amount",), "lp_redeem": ("amount",), "spot_buy": ("market", "amount"),
    "spot_sell": ("market", "amount"), "wash": ("sub", "market", "amount", "leverage"),
    "bribe": ("count", "factor", "blocks"), "self_liquidate": ("sub", "market"), "adl": ("sub", "market"),
    "trigger": ("sub", "market", "factor"),
}
"""The fields each kind of move uses, besides kind and block."""


def declared_costs(moves: list[Move], capital: float, horizon: int, step_seconds: int, bribe_cost: float,
                   capital_cost: float) -> float:
    """USD a plan declares beyond its transactions: bribes (per reporter per block) and the
    capital's cost (a yearly rate) over the attack's blocks, the unwind's included."""
    bribes = sum(bribe_cost * m.count * m.blocks for m in moves if m.kind == "bribe")
    return bribes + capital * capital_cost * (horizon + 1) * step_seconds / SECONDS_PER_YEAR


# ---------------------------------------------------------------------------------------
# Moves as actions: each reads what it needs when it runs
# ---------------------------------------------------------------------------------------


def _usd(units: int) -> Decimal:
    """Token units as exact dollars, for the facade."""
    return Decimal(units) / USDC_UNIT


@dataclass(frozen=True)
class PlayMove(Action):
    """One move of the plan, from `account`; its amounts read when it runs. A move with
    nothing to act on sends nothing and returns None."""

    move: Move
    market_name: str

    @property
    def name(self) -> str:
        return f"attack_{self.move.kind}"

    def execute(self, protocol: Protocol, account: str) -> Any:
        try:
            return getattr(self, f"_{self.move.kind}")(protocol, account)
        except (ValueError, KeyError):  # nothing to act on: a zero size, no pool
            return None

    def _wallet(self, protocol: Protocol, account: str) -> int:
        return protocol.usdc.call("balanceOf", account)

    def _share(self, units: int) -> int:
        return int(Decimal(units) * Decimal(repr(self.move.amount)))

    def _deposit(self, protocol: Protocol, account: str, sub: int | None = None, amount: int | None = None) -> int:
        units = self._share(self._wallet(protocol, account)) if amount is None else amount
        if units > 0:
            protocol.deposit(account, _usd(units), self.move.sub if sub is None else sub)
        return units

    def _withdraw(self, protocol: Protocol, account: str) -> int:
        units = self._share(withdrawable(protocol, account, self.move.sub))
        if units > 0:
            protocol.withdraw(account, _usd(units), self.move.sub)
        return units

    def _trade(self, protocol: Protocol, account: str, sub: int, sign: int) -> float | None:
        equity = protocol.equity(account, sub)
        index, _ = protocol.index_price(self.market_name)
        size = round(sign * self.move.leverage * equity / index, 6) if equity > 0 and index > 0 else 0.0
        if size == 0:
            return None
        return protocol.trade(account, self.market_name, size, sub, slippage=OPEN_SLIPPAGE)

    def _open(self, protocol: Protocol, account: str) -> float | None:
        self._deposit(protocol, account)
        return self._trade(protocol, account, self.move.sub, 1 if self.move.side == "long" else -1)

    def _wash(self, protocol: Protocol, account: str) -> float | None:
        half = self._share(self._wallet(protocol, account)) // 2
        other = (self.move.sub + 1) % SUBACCOUNTS
        self._deposit(protocol, account, self.move.sub, half)
        self._deposit(protocol, account, other, half)
        self._trade(protocol, account, self.move.sub, 1)
        return self._trade(protocol, account, other, -1)

    def _close(self, protocol: Protocol, account: str) -> float | None:
        return protocol.close_position(account, self.market_name, self.move.sub, slippage=CLOSE_SLIPPAGE)

    def _lp_deposit(self, protocol: Protocol, account: str) -> float | None:
        units = self._share(self._wallet(protocol, account))
        return protocol.lp_deposit(account, _usd(units)) if units > 0 else None

    def _lp_redeem(self, protocol: Protocol, account: str) -> float | None:
        shares = self._share(protocol.vault.call("shares", account))
        return protocol.lp_withdraw(account, Decimal(shares) / WAD) if shares > 0 else None

    def _spot_buy(self, protocol: Protocol, account: str) -> float | None:
        units = self._share(self._wallet(protocol, account))
        return protocol.swap(account, self.market_name, False, _usd(units)) if units > 0 else None

    def _spot_sell(self, protocol: Protocol, account: str) -> float | None:
        return sell_base(protocol, account, self.market_name, self.move.amount)

    def _self_liquidate(self, protocol: Protocol, account: str) -> float:
        return protocol.liquidate(account, account, self.market_name, self.move.sub)

    def _adl(self, protocol: Protocol, account: str) -> float | None:
        bankrupt = protocol.bankrupt_accounts(self.market_name)
        if not bankrupt:
            return None
        return protocol.deleverage(account, bankrupt[0], (account, self.move.sub), self.market_name)

    def _trigger(self, protocol: Protocol, account: str) -> int | None:
        size = protocol.position_size(account, self.market_name, self.move.sub)
        if size == 0:
            return None
        index, _ = protocol.index_price(self.market_name)
        up = self.move.factor > 1
        kind = "take_profit" if (size > 0) == up else "stop_loss"
        return protocol.place_trigger(account, self.market_name, -size, index * self.move.factor, kind, self.move.sub)


def withdrawable(protocol: Protocol, account: str, sub: int) -> int:
    """Token units a subaccount can withdraw: its collateral when flat, else its equity above
    initial margin (which includes unrealised profit only where the market lets it leave: the
    Exchange refuses the rest)."""
    equity, initial_margin, _, notional = protocol.exchange.call("health", account, sub)
    free = protocol.exchange.call("accounts", account, sub)[0] if notional == 0 else equity - initial_margin
    return max(free, 0) * USDC_UNIT // WAD


def sell_base(protocol: Protocol, account: str, market: str, fraction: float = 1.0) -> float | None:
    """Sell `fraction` of the account's base tokens of `market` on its SpotPool."""
    pool_asset = protocol.pool_assets.get(market)
    if pool_asset is None:
        return None
    units = int(Decimal(pool_asset.call("balanceOf", account)) * Decimal(repr(fraction)))
    if units <= 0:
        return None
    return protocol.swap(account, market, True, Decimal(units) / 10**18)


@dataclass(frozen=True)
class Unwind(Action):
    """The plan's end, greedy as an attacker's: cancel trigger orders, redeem Vault shares,
    withdraw what margin is free, close every position (the most profitable first, while the
    others still hold the price where they pushed it), withdraw every subaccount's collateral,
    sell base tokens back. Each part is tried on its own (a refusal leaves that part where it
    is: an account under water is walked away from); the result is the wallet afterwards,
    token units, and the refusals."""

    orders: tuple[int, ...] = ()

    def execute(self, protocol: Protocol, account: str) -> Any:
        refused: list[str] = []

        def attempt(what: str, call: Any) -> None:
            try:
                call()
            except Reverted as exc:
                refused.append(f"{what}: {exc.reason or exc.detail}")
            except (ValueError, KeyError):
                pass

        def withdraw_all() -> None:
            for sub in range(SUBACCOUNTS):
                units = withdrawable(protocol, account, sub)
                if units > 0:
                    attempt(f"withdraw from {sub}", lambda: protocol.withdraw(account, _usd(units), sub))

        for order in self.orders:
            if protocol.trigger_order_active(order):
                attempt("cancel trigger", lambda: protocol.cancel_trigger(account, order))
        if protocol.vault.call("shares", account):
            attempt("redeem", lambda: protocol.lp_withdraw(account))
        withdraw_all()  # what margin is free before any close moves the price
        for pnl, sub, market in sorted(((-protocol.position_pnl(account, m, sub), sub, m)
                                        for sub in range(SUBACCOUNTS) for m in protocol.market_ids
                                        if protocol.position_size_wad(account, m, sub))):
            attempt(f"close {market} on {sub}",
                    lambda: protocol.close_position(account, market, sub, slippage=CLOSE_SLIPPAGE))
        withdraw_all()
        for market in protocol.pools:
            attempt(f"sell {market} base", lambda: sell_base(protocol, account, market))
        return {"wallet": protocol.usdc.call("balanceOf", account), "refused": refused}


@dataclass(frozen=True)
class ReadWallet(Action):
    """Sends nothing: the wallet now (token units), the attack's starting point."""

    def execute(self, protocol: Protocol, account: str) -> Any:
        return protocol.usdc.call("balanceOf", account)


@dataclass
class MoveRecord:
    """What one of the attacker's actions did: when, what, whether it landed, its gas."""

    step: int
    block: int
    action: str
    words: str
    ok: bool
    reason: str | None
    gas: int


class ScriptedAttacker(Agent):
    """Plays a fixed plan of attack moves from `start_step` (what `perpsim attack` found),
    unwinds at `horizon` blocks, and records its profit: wallet after minus before, less the
    bribes and capital cost it declares."""

    kind = "scripted_attacker"
    role = "manipulator"
    phase = "trader"

    @config_dataclass
    class Config(AgentConfig):
        capital: Number = Field(1_000_000.0, ge=MIN_USD, le=MAX_USD,
                                description="USD minted to its wallet before step 0")
        horizon: Integer = Field(5, ge=1, le=MAX_STEPS, description="blocks of moves; it unwinds at block `horizon`")
        moves: list[Move] = Field(default_factory=list, description="the plan: [{ kind, block, ... }, ...] "
                                  f"(kinds: {', '.join(MOVE_KINDS)})")
        bribe_cost: Number = Field(0.0, ge=0, le=MAX_USD, description="USD a bribed reporter costs per block")
        capital_cost: Number = Field(0.0, ge=0, le=MAX_RATIO, description="cost of the capital, a yearly rate")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.start_wallet: int | None = None
        self.end_wallet: int | None = None
        self.orders: list[int] = []
        self.log: list[MoveRecord] = []
        self.step_seconds = 12
        self._now = (-1, -1)  # (step, block) of the actions in flight

    @classmethod
    def check_config(cls, config: Config, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        for i, move in enumerate(config.moves):
            if move.market and move.market not in markets:
                problems.append((f"moves[{i}].market", move.market, f"one of the scenario's markets {list(markets)} "
                                 "(or empty: the first)"))
            if move.block >= config.horizon:
                problems.append((f"moves[{i}].block", move.block, f"a block before the unwind (horizon = "
                                 f"{config.horizon}: at most {config.horizon - 1})"))
        return problems

    @property
    def subaccounts(self) -> tuple[int, ...]:
        return tuple(range(SUBACCOUNTS))

    def setup(self, ctx: StepContext) -> list[Action]:
        self.step_seconds = ctx.step_seconds
        return [Mint(self.config.capital)]

    def decide(self, ctx: StepContext) -> list[Action]:
        block = ctx.step - self.config.start_step
        if block < 0 or block > self.config.horizon:
            return []
        self._now = (ctx.step, block)
        if block == 0:  # the attack begins: forget the setup's actions
            self.log, self.orders, self.start_wallet, self.end_wallet = [], [], None, None
        actions: list[Action] = [ReadWallet()] if block == 0 else []
        if block == self.config.horizon:
            return actions + [Unwind(tuple(self.orders))]
        for move in self.config.moves:
            if move.block != block:
                continue
            if move.kind == "bribe":
                actions.append(BribeReporters(move.count, move.factor, move.blocks))
            else:
                actions.append(PlayMove(move, move.market or ctx.markets[0]))
        return actions

    def on_result(self, action: Action, outcome: Outcome) -> None:
        step, block = self._now
        if isinstance(action, ReadWallet):
            self.start_wallet = outcome.value
            return
        if isinstance(action, Unwind):
            self.end_wallet = outcome.value["wallet"]
            refused = outcome.value["refused"]
            words = "unwind" + (f" (refused: {'; '.join(refused)})" if refused else "")
        elif isinstance(action, PlayMove):
            words = action.move.words()
            if action.move.kind == "trigger" and outcome.ok and outcome.value is not None:
                self.orders.append(outcome.value)
        elif isinstance(action, BribeReporters):
            words = f"bribe {action.count} reporter(s) to report x{action.factor:.4g} for {action.blocks} block(s)"
        else:
            words = action.name
        self.log.append(MoveRecord(step, block, action.name, words, outcome.ok, outcome.reason, outcome.gas_used))

    # -- the result ---------------------------------------------------------------------
    def costs(self) -> float:
        cfg = self.config
        return declared_costs(cfg.moves, cfg.capital, cfg.horizon, self.step_seconds, cfg.bribe_cost, cfg.capital_cost)

    def profit_units(self) -> int | None:
        """Wallet after the unwind minus before the first move, token units; None until both are known."""
        if self.start_wallet is None or self.end_wallet is None:
            return None
        return self.end_wallet - self.start_wallet

    def record(self) -> dict[str, Any]:
        """The attack's result, for the run's summary."""
        units = self.profit_units()
        return {"start_wallet_units": self.start_wallet, "end_wallet_units": self.end_wallet, "profit_units": units,
                "declared_costs_usd": self.costs(),
                "profit_usd": None if units is None else units / USDC_UNIT - self.costs()}
