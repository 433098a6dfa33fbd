"""The traders' risk-framework table: which of the four risk layers each trader had on, and
what became of it (`traders.csv`), with every followed account's equity per step
(`accounts.csv`).

The seed's argument is that traders survive through four layers of risk control: position
size, a margin buffer, hedging and stop-loss discipline (sim/agents/traders.py). `TraderBook`
is a `StepObserver` registered with the recorder: each step it folds the step's events
(deposits and withdrawals, stop orders placed and executed, liquidations, ADL), takes the
positions from the facade's index (`Protocol.index`) and the marks from the recorder's
readings, and reads the health of the traders holding a position, so it can say, per trader:

- the layers it had on, and its behaviour for the behavioural kinds;
- peak position risk: the largest position notional / equity it reached (its leverage,
  while its equity was positive);
- the minimum margin buffer over maintenance: min (equity - maintenance) / maintenance;
- the hedge ratio: mean hedge-leg notional / main-leg notional while it held the main leg;
- stop-loss orders placed, fired and slipped (filled worse than the trigger), and how far;
- whether it was liquidated, or declared bankrupt, its PnL and its maximum drawdown.

Every number comes from the chain's events and views (`Exchange.health`, mark prices); the
book only adds them up. To stay cheap it reads an account's health when an event touched the
account, when a market it holds has moved `REREAD_MOVE` since its last reading, and at least
every `REREAD_BLOCKS` (funding drifts); in a crash that is every block, in a calm market about
one block in ten, and a peak or a minimum is then off by at most a 0.25% move times leverage.

Manipulators are followed too (role "manipulator"), and their PnL is the one measure of an
attack that the chart, `perpsim compare`, sweeps and `summary.json`'s `attacker_profit_usd`
all read: everything the owner holds (`AttackerHoldings`: the equity of every subaccount it
trades from, its collateral tokens, its SpotPool base tokens at the true price, its Vault
shares at the share price) against what it held when the run began, read every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sim.metrics import RecordedEvent, StepView, csv_cell, csv_line
from sim.protocol import Protocol
from sim.units import from_usdc, from_wad

TRADERS_FILE = "traders.csv"
ACCOUNTS_FILE = "accounts.csv"

LAYERS = ("size_cap", "margin_buffer", "hedge", "stop_loss")
"""The four risk layers, as the traders' Config fields that switch them on."""

LAYER_NAMES = {"size_cap": "size cap", "margin_buffer": "margin buffer", "hedge": "hedge", "stop_loss": "stop-loss"}

FOLLOWED_ROLES = ("trader", "manipulator")
WHOLE_WALLET_ROLES = ("manipulator",)
"""Roles whose PnL is everything the owner holds, not one subaccount's flows (an attack spans
subaccounts, the SpotPool and the Vault)."""
REREAD_MOVE = 0.0025
"""A held market's mark moving this fraction since an account's last reading makes the book read it again."""
REREAD_BLOCKS = 10
"""The book reads a holding account's health at least this often."""
MAIN_LEG_SHARE = 0.05
"""The hedge ratio is measured while the main leg is at least this share of the account's notional."""
STOP_LOSS_KIND = 0  # TriggerOrders' kind of a stop-loss order

TRADER_COLUMNS = (
    "label", "kind", "role", "behaviour", "market", "hedge_market", *LAYERS, "layers",
    "start_equity", "end_equity", "pnl", "pnl_pct", "max_drawdown_pct", "peak_risk", "min_margin_buffer",
    "hedge_ratio", "stops_placed", "stops_fired", "stops_slipped", "stop_slip_mean_pct", "stop_slip_max_pct",
    "liquidated", "bankrupt", "first_liquidated_step", "survived",
)
ACCOUNT_COLUMNS = ("step", "label", "role", "equity", "notional", "maintenance_margin", "pnl")


def layer_set_name(layers: Iterable[str]) -> str:
    """A layer combination as words: "size cap + margin buffer", or "no layers"."""
    on = [LAYER_NAMES[layer] for layer in LAYERS if layer in set(layers)]
    return " + ".join(on) if on else "no layers"


@dataclass(frozen=True)
class FollowedAccount:
    """A trader (or manipulator) account the book follows, and how it was set up."""

    label: str
    kind: str
    role: str
    owner: str
    subaccount: int
    layers: tuple[str, ...]  # the layers it had on, in LAYERS order
    market: str = ""
    hedge_market: str = ""
    behaviour: str = ""  # "" for the disciplined strategies
    subaccounts: tuple[int, ...] = ()  # every subaccount it trades from (a manipulator's all count)

    @classmethod
    def of_agent(cls, agent: Any) -> FollowedAccount:
        """From a zoo agent: its identity, its Config's layer switches, and its kind's behaviour."""
        config = agent.config
        layers = tuple(layer for layer in LAYERS if getattr(config, layer, False))
        return cls(agent.identity.label, agent.kind, agent.role, agent.account, agent.subaccounts[0], layers,
                   str(getattr(agent, "market", "") or ""),
                   str(getattr(config, "hedge_market", "") or "") if "hedge" in layers else "",
                   str(getattr(type(agent), "behaviour", "") or ""), tuple(agent.subaccounts))

    @property
    def whole_wallet(self) -> bool:
        """Whether its PnL is everything the owner holds (a manipulator's), see AttackerHoldings."""
        return self.role in WHOLE_WALLET_ROLES

    @property
    def all_subaccounts(self) -> tuple[int, ...]:
        return self.subaccounts or (self.subaccount,)


@dataclass(frozen=True)
class AttackerHoldings:
    """What an attacker holds at one moment (USD): the one measure of its PnL."""

    equity: float  # summed over the subaccounts it trades from, each at least 0 (a shortfall is the protocol's)
    notional: float
    maintenance_margin: float
    wallet: float  # collateral tokens outside the Exchange
    base_tokens: float  # SpotPool base tokens at the true price
    lp_shares: float  # Vault shares at the share price

    @property
    def value(self) -> float:
        return self.equity + self.wallet + self.base_tokens + self.lp_shares

    @classmethod
    def read(cls, protocol: Protocol, owner: str, subaccounts: Iterable[int], true_prices: Mapping[str, float],
             lp_shares_wad: int = 0, share_price_wad: int = 0) -> AttackerHoldings:
        """Read them from the chain: each subaccount's health, the owner's token balances, the
        base tokens of every market with a SpotPool at `true_prices` (the deeper venue's price,
        not the pool's own, which the attacker may have pushed). A subaccount under water counts
        as 0: the attacker walks away from it, and its shortfall is the protocol's bad debt."""
        healths = [protocol.health(owner, s) for s in subaccounts]
        base = sum(protocol.base_balance(owner, m) * true_prices.get(m, 0.0) for m in protocol.pools)
        return cls(sum(max(h.equity, 0.0) for h in healths), sum(h.notional for h in healths),
                   sum(h.maintenance_margin for h in healths), protocol.token_balance(owner), base,
                   from_wad(lp_shares_wad * share_price_wad // 10**18))


def followed_accounts(agents: Iterable[Any]) -> list[FollowedAccount]:
    """The accounts of every trader and manipulator among `agents`, in agent order."""
    return [FollowedAccount.of_agent(a) for a in agents if a.role in FOLLOWED_ROLES]


@dataclass
class AccountRecord:
    """What the book knows of one account, updated step by step."""

    spec: FollowedAccount
    start_equity: float
    equity: float
    deposited: float = 0.0  # after the book started (setup deposits are in start_equity)
    withdrawn: float = 0.0
    notional: float = 0.0
    maintenance_margin: float = 0.0
    stale: bool = True  # an event touched it: read its health this step even if flat
    read_step: int = -(10**9)
    read_marks: dict[int, float] = field(default_factory=dict)  # marks of its markets at its last reading
    peak_value: float = 0.0
    max_drawdown: float = 0.0
    peak_risk: float = 0.0
    min_buffer: float | None = None
    hedge_ratio_sum: float = 0.0
    hedge_ratio_steps: int = 0
    stops_placed: int = 0
    stops_fired: int = 0
    slips: list[float] = field(default_factory=list)  # fraction worse than the trigger, per fired stop
    liquidated_step: int | None = None  # first Liquidation
    bankrupt_step: int | None = None  # first Bankruptcy (the fund could not cover it)
    held_outside: float = 0.0  # a manipulator's tokens outside the Exchange (AttackerHoldings), else 0
    start_outside: float = 0.0

    @property
    def value(self) -> float:
        """Equity plus what it took out, less what it put in after the start; for a manipulator,
        everything it holds (equity plus tokens outside the Exchange)."""
        if self.spec.whole_wallet:
            return self.equity + self.held_outside
        return self.equity + self.withdrawn - self.deposited

    @property
    def start_value(self) -> float:
        return self.start_equity + self.start_outside

    @property
    def pnl(self) -> float:
        return self.value - self.start_value



class TraderBook:
    """Follows trader and manipulator accounts through a run (a recorder `StepObserver`);
    writes `accounts.csv` every step and `traders.csv` when the run ends."""

    def __init__(self, protocol: Protocol, run_dir: Path, accounts: Sequence[FollowedAccount]) -> None:
        self.protocol = protocol
        self.markets = [m.name for m in protocol.config.markets]
        self.records: dict[tuple[str, int], AccountRecord] = {}
        self.by_subaccount: dict[tuple[str, int], AccountRecord] = {}  # every subaccount a record follows
        for spec in accounts:
            health = protocol.health(spec.owner, spec.subaccount)
            record = AccountRecord(spec, health.equity, health.equity, peak_value=health.equity)
            if spec.whole_wallet:
                self._read_holdings(record, {m.name: m.initial_price for m in protocol.config.markets}, 0, 0)
                record.start_equity, record.start_outside = record.equity, record.held_outside
                record.peak_value = record.value
            self.records[(spec.owner, spec.subaccount)] = record
            self.by_subaccount.update({(spec.owner, s): record for s in spec.all_subaccounts})
        self.stop_orders: dict[int, tuple[AccountRecord, float, int]] = {}  # order id -> (account, trigger, size)
        self._accounts_file: IO[str] | None = open(Path(run_dir) / ACCOUNTS_FILE, "w", newline="")  # noqa: SIM115
        self._accounts_file.write(csv_line(ACCOUNT_COLUMNS))
        self._accounts_file.flush()

    # -- each step ---------------------------------------------------------------------------
    def observe(self, view: StepView) -> None:
        for event in view.events:
            self._fold(view.step, event)
        marks = {i: from_wad(view.reading(m).mark_price) for i, m in enumerate(self.markets)}  # the recorder's reads
        lines = []
        for record in self.records.values():
            sizes = self._sizes(record)
            if record.spec.whole_wallet:
                self._read_holdings(record, view.true_prices, view.tally.lp_shares[record.spec.owner],
                                    view.share_price())
                record.read_step, record.read_marks, record.stale = view.step, dict(marks), False
            elif self._due(record, sizes, view.step, marks):
                self._read_health(record, view.step, marks)
            self._measure(record, sizes, marks)
            lines.append(",".join(map(csv_cell, (view.step, record.spec.label, record.spec.role, record.equity,
                                                 record.notional, record.maintenance_margin, record.pnl))) + "\n")
        if self._accounts_file is not None:
            self._accounts_file.write("".join(lines))
            self._accounts_file.flush()

    def _fold(self, step: int, event: RecordedEvent) -> None:
        args, name, contract = event.args, event.name, event.contract
        record = self.by_subaccount.get(event.account()) if event.account() is not None else None
        if contract == "Exchange" and record is not None:
            record.stale = True
            if name == "Deposit":
                record.deposited += from_usdc(args["amount"])
            elif name == "Withdraw":
                record.withdrawn += from_usdc(args["amount"])
        elif contract == "Liquidator":
            if name in ("Liquidation", "Bankruptcy") and record is not None:
                if name == "Liquidation" and record.liquidated_step is None:
                    record.liquidated_step = step
                if name == "Bankruptcy" and record.bankrupt_step is None:
                    record.bankrupt_step = step
                record.stale = True
            elif name == "Deleverage":
                for key in ((args["bankrupt_owner"], args["bankrupt_subaccount"]),
                            (args["target_owner"], args["target_subaccount"])):
                    if key in self.by_subaccount:
                        self.by_subaccount[key].stale = True
        elif contract == "TriggerOrders":
            self._fold_order(name, args)

    def _fold_order(self, name: str, args: dict[str, Any]) -> None:
        if name == "OrderPlaced" and args["kind"] == STOP_LOSS_KIND:
            record = self.by_subaccount.get((args["owner"], args["subaccount"]))
            if record is not None:
                record.stops_placed += 1
                self.stop_orders[args["order_id"]] = (record, from_wad(args["trigger_price"]), args["size"])
        elif name == "OrderExecuted" and args["order_id"] in self.stop_orders:
            record, trigger, size = self.stop_orders.pop(args["order_id"])
            fill = from_wad(args["fill_price"])
            record.stops_fired += 1
            # a stop that sells (closing a long) slips when it fills below its trigger, and vice versa
            record.slips.append((trigger - fill) / trigger if size < 0 else (fill - trigger) / trigger)
        elif name == "OrderCancelled":
            self.stop_orders.pop(args["order_id"], None)

    def _sizes(self, record: AccountRecord) -> dict[int, int]:
        """Its open positions (market id -> size, 1e18 base units), from the facade's index."""
        index, spec = self.protocol.index, record.spec
        sizes = {m: index.size(spec.owner, spec.subaccount, m) for m in range(len(self.markets))}
        return {m: size for m, size in sizes.items() if size}

    @staticmethod
    def _due(record: AccountRecord, sizes: dict[int, int], step: int, marks: dict[int, float]) -> bool:
        """Whether the account's health may have changed enough to read it again."""
        if record.stale:
            return True
        held = list(sizes)
        if not held:
            return False
        if step - record.read_step >= REREAD_BLOCKS:
            return True
        return any(abs(marks[m] / record.read_marks[m] - 1) >= REREAD_MOVE if record.read_marks.get(m) else True
                   for m in held)

    def _read_holdings(self, record: AccountRecord, true_prices: Mapping[str, float], shares: int,
                       share_price: int) -> None:
        """A manipulator's whole holdings (AttackerHoldings), every step: an attack moves value
        between subaccounts, the SpotPool and the Vault without an Exchange event. `shares`:
        its Vault shares from the recorder's tally (an attacker funds itself in setup, before
        the book starts, with tokens only)."""
        spec = record.spec
        holdings = AttackerHoldings.read(self.protocol, spec.owner, spec.all_subaccounts, true_prices, shares,
                                         share_price)
        record.equity, record.notional, record.maintenance_margin = (
            holdings.equity, holdings.notional, holdings.maintenance_margin)
        record.held_outside = holdings.wallet + holdings.base_tokens + holdings.lp_shares

    def attacker_profit(self) -> float | None:
        """The manipulators' PnL at the last step read, summed (USD); None without one."""
        attackers = [r for r in self.records.values() if r.spec.whole_wallet]
        return sum(r.pnl for r in attackers) if attackers else None

    def summary_fields(self) -> dict[str, Any]:
        """What the book adds to summary.json (sim/metrics.py `RunView.observed`)."""
        return {"attacker_profit_usd": self.attacker_profit()}

    def _read_health(self, record: AccountRecord, step: int, marks: dict[int, float]) -> None:
        health = self.protocol.health(record.spec.owner, record.spec.subaccount)
        record.equity, record.notional, record.maintenance_margin = (
            health.equity, health.notional, health.maintenance_margin)
        record.stale = False
        record.read_step = step
        record.read_marks = dict(marks)

    def _measure(self, record: AccountRecord, sizes: dict[int, int], marks: dict[int, float]) -> None:
        """Fold this step's reading into the record's peaks and minimums."""
        record.peak_value = max(record.peak_value, record.value)
        if record.peak_value > 0:
            record.max_drawdown = max(record.max_drawdown, (record.peak_value - record.value) / record.peak_value)
        if record.notional <= 0:
            return
        if record.equity > 0:  # below zero it is under water, and liquidation says so
            record.peak_risk = max(record.peak_risk, record.notional / record.equity)
        if record.maintenance_margin > 0:
            buffer = (record.equity - record.maintenance_margin) / record.maintenance_margin
            record.min_buffer = buffer if record.min_buffer is None else min(record.min_buffer, buffer)
        spec = record.spec
        if spec.market in self.markets:
            main_id = self.markets.index(spec.market)
            main = abs(from_wad(sizes.get(main_id, 0))) * marks[main_id]
            if main >= MAIN_LEG_SHARE * record.notional:  # a leg left as dust is no position to hedge
                hedge = 0.0
                if spec.hedge_market in self.markets:
                    hedge_id = self.markets.index(spec.hedge_market)
                    hedge = abs(from_wad(sizes.get(hedge_id, 0))) * marks[hedge_id]
                record.hedge_ratio_sum += hedge / main
                record.hedge_ratio_steps += 1

    # -- the end ---------------------------------------------------------------------------
    def finish(self, run_dir: Path, status: str) -> None:
        """Close `accounts.csv` and write `traders.csv` (on a partial run too)."""
        if self._accounts_file is not None:
            self._accounts_file.close()
            self._accounts_file = None
        with open(Path(run_dir) / TRADERS_FILE, "w", newline="") as out:
            out.write(csv_line(TRADER_COLUMNS))
            out.write("".join(csv_line(self.row(r).values()) for r in self.records.values()))

    def row(self, record: AccountRecord) -> dict[str, Any]:
        """One trader's line of `traders.csv`."""
        spec = record.spec
        slips = [100.0 * s for s in record.slips]
        downs = [s for s in (record.liquidated_step, record.bankrupt_step) if s is not None]
        return {
            "label": spec.label, "kind": spec.kind, "role": spec.role, "behaviour": spec.behaviour,
            "market": spec.market, "hedge_market": spec.hedge_market,
            **{layer: layer in spec.layers for layer in LAYERS},
            "layers": layer_set_name(spec.layers),
            "start_equity": record.start_equity, "end_equity": record.equity, "pnl": record.pnl,
            "pnl_pct": 100.0 * record.pnl / record.start_value if record.start_value > 0 else None,
            "max_drawdown_pct": 100.0 * record.max_drawdown,
            "peak_risk": record.peak_risk if record.peak_risk > 0 else None,
            "min_margin_buffer": record.min_buffer,
            "hedge_ratio": record.hedge_ratio_sum / record.hedge_ratio_steps if record.hedge_ratio_steps else None,
            "stops_placed": record.stops_placed, "stops_fired": record.stops_fired,
            "stops_slipped": sum(1 for s in slips if s > 0),
            "stop_slip_mean_pct": sum(slips) / len(slips) if slips else None,
            "stop_slip_max_pct": max(slips) if slips else None,
            "liquidated": record.liquidated_step is not None, "bankrupt": record.bankrupt_step is not None,
            "first_liquidated_step": min(downs) if downs else None, "survived": not downs,
        }
