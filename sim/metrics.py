"""What a run records each step, and its summary (DESIGN §6 "Outputs of a run").

The `Recorder` owns a run's tables. After the keepers act in each step, the engine calls
`record_step`: the recorder reads the chain's views and the events logged since the last
step, appends one row per market to `steps.csv` and every event to `events.csv`, and
flushes both, so a crashed run keeps what it recorded. `finish` writes `summary.json` and
the final `status.json`.

Metrics follow Mesa's data collector: each column of `steps.csv` is a small named function
registered with `STEP_METRICS`, and each key of `summary.json` one registered with
`SUMMARY_METRICS`. Adding a metric is adding one function. Every number comes from the
contracts' views and events; nothing re-derives contract maths in Python.

Determinism: `events.csv` and `summary.json` hold no gas and no wall-clock time, and their
rows and keys come in a fixed order, so the same scenario and seed give byte-identical files
(and identical `events.csv` on every backend). Wall-clock times live in `status.json` only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol as Interface, TypeVar

from sim.chain.base import Event
from sim.protocol import MarketReading, Protocol
from sim.units import from_usdc, from_wad

STEPS_FILE = "steps.csv"
EVENTS_FILE = "events.csv"
SUMMARY_FILE = "summary.json"
STATUS_FILE = "status.json"

SETUP_STEP = -1
"""The `step` of events logged before the recorder started (deployment, first deposits)."""

STEP_KEY_COLUMNS = ("step", "block", "timestamp", "market")
EVENT_COLUMNS = ("step", "block", "log_index", "contract", "event", "args")
NODE_EVENT_COLUMNS = ("node_block", "tx_hash")
"""Added at the end of events.csv on a node (the rpc backend): the node's block and the
transaction's hash, to look an event up with the node's tools (`cast receipt HASH`)."""
NODE_STEP_COLUMN = "node_block"
"""Added after `block` in steps.csv on a node: the node's block of the step's last transaction."""

ROLES = ("trader", "lp", "keeper", "reporter", "manipulator", "arbitrageur")
LIQUIDATION_EVENTS = ("Liquidation", "Bankruptcy")

Subaccount = tuple[str, int]


@dataclass(frozen=True)
class Participant:
    """One agent's account, as the recorder needs to know it: who it is and what it does."""

    owner: str  # address
    subaccount: int
    kind: str  # agent kind from the zoo, e.g. "noise_trader"
    role: str  # "trader" | "lp" | "keeper" | "reporter" | "manipulator" | "arbitrageur" (the SpotPool's)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"participant {self.kind} ({self.owner}): role {self.role!r}; expected one of {ROLES}")


@dataclass(frozen=True)
class RecordedEvent:
    """A decoded contract event, tagged with the step it was recorded in and its contract's name."""

    step: int
    contract: str
    event: Event

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def args(self) -> dict[str, Any]:
        return self.event.args

    @property
    def block(self) -> int:
        return self.event.block_number

    def account(self) -> Subaccount | None:
        """The (owner, subaccount) the event is about, when it names one."""
        if "owner" in self.args and "subaccount" in self.args:
            return (self.args["owner"], self.args["subaccount"])
        return None


# ---------------------------------------------------------------------------------------
# The step table: one row per step per market
# ---------------------------------------------------------------------------------------


class StepView:
    """What step metrics read: the chain as the keepers left it, this step's events, and the
    engine's true prices. Each market's views are read once per step (`reading`)."""

    def __init__(self, protocol: Protocol, step: int, true_prices: Mapping[str, float],
                 events: list[RecordedEvent], liquidatable: list[Subaccount],
                 delays: list[int] | None = None, readings: Mapping[str, MarketReading] | None = None,
                 tally: RunTally | None = None, lp_owners: Iterable[str] = ()) -> None:
        self.protocol = protocol
        self.tally = tally if tally is not None else RunTally()  # the run's events so far, this step's included
        self.lp_owners = tuple(lp_owners)  # the LP agents' addresses
        self._share_price: int | None = None
        self.step = step
        self.true_prices = true_prices
        self.events = events
        self.liquidatable = liquidatable
        self.delays = delays or []  # blocks each account liquidated this step waited (see Recorder)
        self.readings: dict[str, MarketReading] = dict(readings or {})

    def reading(self, market: str) -> MarketReading:
        """The market's views as the keepers left them (1e18 fixed point), read once."""
        if market not in self.readings:
            self.readings[market] = self.protocol.read_market(market)
        return self.readings[market]

    def index(self, market: str) -> tuple[float, bool]:
        """(index price USD, whether the oracle feed is valid)."""
        reading = self.reading(market)
        return from_wad(reading.index_price), reading.valid

    def market_state(self, market: str) -> dict[str, Any]:
        """The Exchange's `market_states` struct, raw (1e18 fixed point)."""
        return self.reading(market).state_fields()

    def share_price(self) -> int:
        """The Vault's share price (USD per share, 1e18), read once."""
        if self._share_price is None:
            self._share_price = self.protocol.vault.call("share_price")
        return self._share_price

    def events_in(self, market: str, *names: str) -> list[RecordedEvent]:
        """This step's events called one of `names` that are about `market`."""
        market_id = self.protocol.market(market)
        return [e for e in self.events if e.name in names and e.args.get("market") == market_id]


StepMetric = Callable[[StepView, str], Any]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its column or key name, the function, and whether it varies by market."""

    name: str
    fn: Callable[..., Any]
    per_market: bool = True

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


class StepCollector:
    """The registry of step metrics, in column order (Mesa's `model_reporters`)."""

    def __init__(self) -> None:
        self._metrics: dict[str, MetricSpec] = {}

    def metric(self, name: str, *, per_market: bool = True) -> Callable[[F], F]:
        """Register `fn(view, market)` as column `name`. A metric with `per_market=False` is read
        once per step and repeated on every market's row (Vault NAV, insurance balance, ...)."""

        def register(fn: F) -> F:
            if name in self._metrics or name in STEP_KEY_COLUMNS:
                raise ValueError(f"step metric {name!r} is already registered")
            self._metrics[name] = MetricSpec(name, fn, per_market)
            return fn

        return register

    @property
    def columns(self) -> tuple[str, ...]:
        return STEP_KEY_COLUMNS + tuple(self._metrics)

    @property
    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(self._metrics.values())

    def collect(self, view: StepView, markets: Iterable[str], block: int, timestamp: int) -> list[dict[str, Any]]:
        """One row per market: the key columns, then every metric in registration order."""
        shared = {s.name: s.fn(view, "") for s in self._metrics.values() if not s.per_market}
        rows = []
        for market in markets:
            row: dict[str, Any] = {"step": view.step, "block": block, "timestamp": timestamp, "market": market}
            for spec in self._metrics.values():
                row[spec.name] = spec.fn(view, market) if spec.per_market else shared[spec.name]
            rows.append(row)
        return rows


STEP_METRICS = StepCollector()


@STEP_METRICS.metric("true_price")
def true_price(view: StepView, market: str) -> float | None:
    """The price process's price this step (USD): what the oracle should report."""
    price = view.true_prices.get(market)
    return None if price is None else float(price)


@STEP_METRICS.metric("index_price")
def index_price(view: StepView, market: str) -> float:
    """The oracle price the Exchange uses (USD)."""
    return view.index(market)[0]


@STEP_METRICS.metric("oracle_valid")
def oracle_valid(view: StepView, market: str) -> bool:
    """Whether the oracle feed is valid; while it is not the market is reduce-only."""
    return bool(view.index(market)[1])


@STEP_METRICS.metric("mark_price")
def mark_price(view: StepView, market: str) -> float:
    """Mark price in the market's mode (USD)."""
    return from_wad(view.reading(market).mark_price)


@STEP_METRICS.metric("funding_rate_per_day")
def funding_rate_per_day(view: StepView, market: str) -> float:
    """Current funding rate, fraction per day; positive: longs pay shorts."""
    return from_wad(view.reading(market).funding_rate)


@STEP_METRICS.metric("cumulative_funding")
def cumulative_funding(view: StepView, market: str) -> float:
    """The funding index at the market's last accrual (USD per base unit; grows while longs pay)."""
    return from_wad(view.market_state(market)["cumulative_funding"])


@STEP_METRICS.metric("oi_long")
def oi_long(view: StepView, market: str) -> float:
    """Open interest on the long side (base units)."""
    return from_wad(view.market_state(market)["oi_long"])


@STEP_METRICS.metric("oi_short")
def oi_short(view: StepView, market: str) -> float:
    """Open interest on the short side (base units)."""
    return from_wad(view.market_state(market)["oi_short"])


@STEP_METRICS.metric("vault_nav", per_market=False)
def vault_nav(view: StepView, market: str) -> float:
    """The Vault's net asset value (USD): tokens plus what the Exchange owes it at mark."""
    return view.protocol.vault_nav()


@STEP_METRICS.metric("vault_share_price", per_market=False)
def vault_share_price(view: StepView, market: str) -> float:
    """Vault NAV per share (USD; 1.0 before the first deposit)."""
    return from_wad(view.share_price())


@STEP_METRICS.metric("lp_pnl", per_market=False)
def lp_pnl(view: StepView, market: str) -> float:
    """The LP agents' profit and loss, marked to market this step: their shares at the share
    price, plus what they withdrew, minus what they deposited (USD)."""
    return lp_mark_to_market(view.tally, view.lp_owners, view.share_price())


@STEP_METRICS.metric("insurance_balance", per_market=False)
def insurance_balance(view: StepView, market: str) -> float:
    """Tokens the InsuranceFund holds (USD)."""
    return view.protocol.insurance_balance()


@STEP_METRICS.metric("deficit")
def deficit(view: StepView, market: str) -> float:
    """Bad debt the fund could not pay, awaiting ADL (USD)."""
    return from_wad(view.market_state(market)["deficit"])


@STEP_METRICS.metric("liquidations")
def liquidations(view: StepView, market: str) -> int:
    """Liquidation events this step."""
    return len(view.events_in(market, "Liquidation"))


@STEP_METRICS.metric("liquidated_size")
def liquidated_size(view: StepView, market: str) -> float:
    """Base units closed by liquidations this step."""
    return sum(abs(from_wad(e.args["size"])) for e in view.events_in(market, "Liquidation"))


@STEP_METRICS.metric("liquidated_notional")
def liquidated_notional(view: StepView, market: str) -> float:
    """USD notional closed by liquidations this step (size times the event's price)."""
    return sum(abs(from_wad(e.args["size"])) * from_wad(e.args["price"]) for e in view.events_in(market, "Liquidation"))


@STEP_METRICS.metric("bankruptcies")
def bankruptcies(view: StepView, market: str) -> int:
    """Subaccounts declared bankrupt this step (the fund could not cover them)."""
    return len(view.events_in(market, "Bankruptcy"))


@STEP_METRICS.metric("bad_debt")
def bad_debt(view: StepView, market: str) -> float:
    """Negative equity closed this step (USD): BadDebt amounts, paid by the fund or left as deficit."""
    return sum(from_wad(e.args["amount"]) for e in view.events_in(market, "BadDebt"))


@STEP_METRICS.metric("deleverages")
def deleverages(view: StepView, market: str) -> int:
    """ADL fills this step."""
    return len(view.events_in(market, "Deleverage"))


@STEP_METRICS.metric("liquidatable_accounts", per_market=False)
def liquidatable_accounts(view: StepView, market: str) -> int:
    """Subaccounts below maintenance margin after the keepers acted (all markets)."""
    return len(view.liquidatable)


@STEP_METRICS.metric("keeper_delay_max", per_market=False)
def keeper_delay_max(view: StepView, market: str) -> int | None:
    """Longest wait (blocks from first seen liquidatable) of the accounts liquidated this step; empty: none."""
    return max(view.delays) if view.delays else None


# ---------------------------------------------------------------------------------------
# Running totals folded from events, for the summary
# ---------------------------------------------------------------------------------------


@dataclass
class RunTally:
    """What the summary needs from the event stream, folded event by event so a long run
    keeps counters rather than every event in memory."""

    event_counts: Counter[str] = field(default_factory=Counter)
    liquidation_notional: float = 0.0
    liquidated_size_by_market: dict[int, float] = field(default_factory=dict)
    bad_debt: float = 0.0
    bad_debt_insurance_paid: float = 0.0
    bad_debt_deficit: float = 0.0
    adl_deficit_covered: float = 0.0
    liquidated: set[Subaccount] = field(default_factory=set)  # by a Liquidation event
    bankrupt: set[Subaccount] = field(default_factory=set)  # declared bankrupt: not a liquidation
    subaccounts: set[Subaccount] = field(default_factory=set)
    token_holders: set[str] = field(default_factory=set)
    lp_deposited: Counter[str] = field(default_factory=Counter)  # USD by provider
    lp_withdrawn: Counter[str] = field(default_factory=Counter)
    lp_shares: Counter[str] = field(default_factory=Counter)  # Vault shares (1e18) held, by provider

    def observe(self, ev: RecordedEvent) -> None:
        args = ev.args
        self.event_counts[f"{ev.contract}.{ev.name}"] += 1
        account = ev.account()
        if ev.contract == "Exchange" and account is not None:
            self.subaccounts.add(account)
        if ev.contract == "Liquidator":
            if ev.name == "Liquidation" and account is not None:
                self.liquidated.add(account)
            elif ev.name == "Bankruptcy" and account is not None:
                self.bankrupt.add(account)
            if ev.name == "Liquidation":
                size = abs(from_wad(args["size"]))
                self.liquidation_notional += size * from_wad(args["price"])
                self.liquidated_size_by_market[args["market"]] = self.liquidated_size_by_market.get(args["market"], 0.0) + size
            elif ev.name == "Deleverage":
                self.adl_deficit_covered += from_wad(args["deficit_covered"])
        elif ev.contract == "Exchange" and ev.name == "BadDebt":
            self.bad_debt += from_wad(args["amount"])
            self.bad_debt_insurance_paid += from_wad(args["insurance_paid"])
            self.bad_debt_deficit += from_wad(args["deficit"])
        elif ev.contract == "MockUSDC" and ev.name == "Transfer":
            self.token_holders.update(a for a in (args["sender"], args["receiver"]) if int(a, 16) != 0)
        elif ev.contract == "Vault" and ev.name == "Deposit":
            self.lp_deposited[args["provider"]] += from_usdc(args["amount"])
            self.lp_shares[args["provider"]] += args["shares"]
        elif ev.contract == "Vault" and ev.name == "Withdraw":
            self.lp_withdrawn[args["provider"]] += from_usdc(args["amount"])
            self.lp_shares[args["provider"]] -= args["shares"]

    def count(self, contract: str, name: str) -> int:
        return self.event_counts[f"{contract}.{name}"]


def _with_node_block(row: dict[str, Any], node_block: int | None) -> dict[str, Any]:
    """`row` with the node's block after the logical one (steps.csv on a node)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        out[key] = value
        if key == "block":
            out[NODE_STEP_COLUMN] = node_block
    return out


def lp_mark_to_market(tally: RunTally, owners: Iterable[str], share_price: int) -> float:
    """What `owners` made as LPs at `share_price` (1e18): shares held at that price, plus
    withdrawn, minus deposited (USD), shares and flows from the Vault's events."""
    total = 0.0
    for owner in sorted(set(owners)):
        held = from_wad(tally.lp_shares[owner] * share_price // 10**18)
        total += held + tally.lp_withdrawn[owner] - tally.lp_deposited[owner]
    return total


SERIES_COLUMNS = ("insurance_balance", "vault_nav", "vault_share_price", "lp_pnl")
"""steps.csv's columns that are the same on every market's row and that the summary reads as a series."""


@dataclass
class StepDigest:
    """What the summary reads of steps.csv's rows, folded in step by step as they are written,
    so that a run keeps no rows and its memory does not grow with its length: the steps
    recorded, the first and last block, the last and lowest value of each series column (its
    value on the step's first row), the insurance fund's deepest drawdown from its running
    peak (starting from its balance when recording started), and per market the steps with an
    invalid feed and the largest index lag and mark premium. Each figure is folded in the order
    the rows came, as `min`, `max` and a running peak over the whole list would have taken it."""

    markets: list[str]
    insurance_start: float
    steps: int = 0
    first_block: int | None = None
    last_block: int | None = None
    last: dict[str, Any] = field(default_factory=dict)
    lowest: dict[str, Any] = field(default_factory=dict)
    insurance_peak: float = 0.0
    insurance_worst: float = 0.0
    oracle_invalid: dict[str, int] = field(default_factory=dict)
    index_lag: dict[str, float] = field(default_factory=dict)  # largest |index - true| / true
    mark_premium: dict[str, float] = field(default_factory=dict)  # largest |mark - index| / index
    _step: Any = None

    def __post_init__(self) -> None:
        self.oracle_invalid = dict.fromkeys(self.markets, 0)
        self._insurance(self.insurance_start)

    def fold(self, rows: list[dict[str, Any]]) -> None:
        """One recorded step's rows (one per market)."""
        if not rows:
            return
        if self.first_block is None:
            self.first_block = rows[0]["block"]
        self.last_block = rows[-1]["block"]
        if rows[0]["step"] != self._step:  # a step's series value is its first row's
            self._step = rows[0]["step"]
            self.steps += 1
            for column in SERIES_COLUMNS:
                value = rows[0][column]
                self.last[column] = value
                if column not in self.lowest or value < self.lowest[column]:
                    self.lowest[column] = value
            self._insurance(rows[0]["insurance_balance"])
        for row in rows:
            market = row["market"]
            if market in self.oracle_invalid and not row["oracle_valid"]:
                self.oracle_invalid[market] += 1
            if row["true_price"]:
                _raise(self.index_lag, market, abs(row["index_price"] - row["true_price"]) / row["true_price"])
            if row["index_price"]:
                _raise(self.mark_premium, market, abs(row["mark_price"] - row["index_price"]) / row["index_price"])

    def _insurance(self, balance: float) -> None:
        self.insurance_peak = max(self.insurance_peak, balance)
        if self.insurance_peak > 0:
            self.insurance_worst = max(self.insurance_worst, (self.insurance_peak - balance) / self.insurance_peak)


def _raise(largest: dict[str, float], key: str, value: float) -> None:
    """largest[key] = max(largest[key], value), the first value kept on a tie, as `max` keeps it."""
    if key not in largest or value > largest[key]:
        largest[key] = value


@dataclass
class Baseline:
    """Readings taken when the recorder starts, the reference for changes over the run."""

    block: int
    vault_nav: float
    vault_share_price: float
    insurance_balance: float


# ---------------------------------------------------------------------------------------
# The summary: one registered function per key
# ---------------------------------------------------------------------------------------


@dataclass
class RunView:
    """What summary metrics read: the step rows' digest, the event tally, the keeper delays,
    the participants, the baseline, and the protocol for final views."""

    protocol: Protocol
    participants: list[Participant]
    steps: StepDigest
    tally: RunTally
    baseline: Baseline
    delays: list[int]
    pending: dict[Subaccount, int]
    observed: dict[str, Any] = field(default_factory=dict)  # what observers add (StepObserver.summary_fields)
    _solvency: dict[str, bool] | None = None

    def solvency(self) -> dict[str, bool]:
        """The solvency checks, read from the chain once per summary."""
        if self._solvency is None:
            self._solvency = _solvency_checks(self)
        return self._solvency

    def market_names(self) -> list[str]:
        return [m.name for m in self.protocol.config.markets]

    def of_role(self, role: str) -> list[Participant]:
        return [p for p in self.participants if p.role == role]


SummaryMetric = Callable[[RunView], Any]


class SummaryCollector:
    """The registry of summary metrics, in key order (Mesa's end-of-run reporters)."""

    def __init__(self) -> None:
        self._metrics: dict[str, MetricSpec] = {}

    def metric(self, name: str) -> Callable[[F], F]:
        """Register `fn(run)` as summary key `name`."""

        def register(fn: F) -> F:
            if name in self._metrics:
                raise ValueError(f"summary metric {name!r} is already registered")
            self._metrics[name] = MetricSpec(name, fn, per_market=False)
            return fn

        return register

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._metrics)

    def collect(self, run: RunView) -> tuple[dict[str, Any], dict[str, str]]:
        """Every metric's value, and the errors of those that could not be read (a dead node
        after a crash, say): a broken metric must not lose the rest of the summary."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for spec in self._metrics.values():
            try:
                values[spec.name] = spec.fn(run)
            except Exception as exc:  # noqa: BLE001 - reported in the summary, never swallowed silently
                values[spec.name] = None
                errors[spec.name] = f"{type(exc).__name__}: {exc}"
        return values, errors


SUMMARY_METRICS = SummaryCollector()


def _solvency_checks(run: RunView) -> dict[str, bool]:
    """The solvency conditions at the end of the run, each read from views and balances."""
    protocol = run.protocol
    exchange = protocol.exchange
    precision = exchange.call("PRECISION")
    collateral = [exchange.call("accounts", o, s)[0] for o, s in sorted(run.tally.subaccounts)]
    held = protocol.usdc.call("balanceOf", exchange.address) * precision
    # profit credited that an illiquid Vault has not paid yet (vault_debt) is owed, not held
    books_balance = (held + exchange.call("vault_debt") == sum(c for c in collateral if c > 0)
                     and exchange.call("vault_receivable") == -sum(c for c in collateral if c < 0))
    holders = run.tally.token_holders | {exchange.address, protocol.vault.address, protocol.insurance_fund.address}
    supply_conserved = sum(protocol.usdc.call("balanceOf", h) for h in sorted(holders)) == protocol.usdc.call("totalSupply")
    return {
        "no_deficit": all(protocol.market_state(m)["deficit"] == 0 for m in run.market_names()),
        "exchange_books_balance": books_balance,
        "token_supply_conserved": supply_conserved,
        "vault_nav_positive": protocol.vault.call("nav") > 0,
    }


@SUMMARY_METRICS.metric("books_balance")
def books_balance(run: RunView) -> bool:
    """The books balance at the end: the Exchange holds exactly the collateral its books say,
    and every token is accounted for. Bad debt and a deficit are recorded on the books, so they
    balance with them: this says the accounting holds, not that nobody lost money."""
    checks = run.solvency()
    return checks["exchange_books_balance"] and checks["token_supply_conserved"]


@SUMMARY_METRICS.metric("solvency_checks")
def solvency_checks(run: RunView) -> dict[str, bool]:
    """Each solvency condition at the end, by name."""
    return dict(run.solvency())


@SUMMARY_METRICS.metric("deficit_at_end")
def deficit_at_end(run: RunView) -> float:
    """Uncovered bad debt left in all markets at the end (USD)."""
    return sum(run.protocol.deficit(m) for m in run.market_names())


@SUMMARY_METRICS.metric("total_bad_debt")
def total_bad_debt(run: RunView) -> float:
    """Negative equity closed over the run (USD), from BadDebt events."""
    return run.tally.bad_debt


@SUMMARY_METRICS.metric("bad_debt_paid_by_insurance")
def bad_debt_paid_by_insurance(run: RunView) -> float:
    """The part of the bad debt the InsuranceFund paid (USD)."""
    return run.tally.bad_debt_insurance_paid


@SUMMARY_METRICS.metric("bad_debt_to_deficit")
def bad_debt_to_deficit(run: RunView) -> float:
    """The part of the bad debt the fund could not pay, recorded as deficit (USD)."""
    return run.tally.bad_debt_deficit


@SUMMARY_METRICS.metric("insurance_start")
def insurance_start(run: RunView) -> float:
    """Insurance fund balance when recording started (USD)."""
    return run.baseline.insurance_balance


@SUMMARY_METRICS.metric("insurance_end")
def insurance_end(run: RunView) -> float | None:
    """Insurance fund balance at the last recorded step (USD)."""
    return run.steps.last.get("insurance_balance")


@SUMMARY_METRICS.metric("insurance_drawdown_pct")
def insurance_drawdown_pct(run: RunView) -> float:
    """Largest fall of the insurance balance from its running peak, % of that peak."""
    return 100.0 * run.steps.insurance_worst


@SUMMARY_METRICS.metric("liquidation_count")
def liquidation_count(run: RunView) -> int:
    """Liquidation events (partial ones each count)."""
    return run.tally.count("Liquidator", "Liquidation")


@SUMMARY_METRICS.metric("liquidation_notional")
def liquidation_notional(run: RunView) -> float:
    """USD notional closed by liquidations."""
    return run.tally.liquidation_notional


@SUMMARY_METRICS.metric("liquidated_size")
def liquidated_size_by_market(run: RunView) -> dict[str, float]:
    """Base units closed by liquidations, by market."""
    return {m: run.tally.liquidated_size_by_market.get(i, 0.0) for i, m in enumerate(run.market_names())}


@SUMMARY_METRICS.metric("bankruptcy_count")
def bankruptcy_count(run: RunView) -> int:
    """Subaccounts declared bankrupt (the fund could not cover their shortfall)."""
    return run.tally.count("Liquidator", "Bankruptcy")


@SUMMARY_METRICS.metric("liquidation_delay_blocks_median")
def liquidation_delay_blocks_median(run: RunView) -> float | None:
    """Median blocks from a subaccount first seen liquidatable to its liquidation (0: same step)."""
    return float(statistics.median(run.delays)) if run.delays else None


@SUMMARY_METRICS.metric("liquidation_delay_blocks_max")
def liquidation_delay_blocks_max(run: RunView) -> int | None:
    """Longest such delay, in blocks."""
    return max(run.delays) if run.delays else None


@SUMMARY_METRICS.metric("liquidation_delay_samples")
def liquidation_delay_samples(run: RunView) -> int:
    """Liquidation episodes the delays are measured over."""
    return len(run.delays)


@SUMMARY_METRICS.metric("liquidatable_at_end")
def liquidatable_at_end(run: RunView) -> int:
    """Subaccounts still liquidatable and not liquidated when recording stopped."""
    return len(run.pending)


@SUMMARY_METRICS.metric("adl_count")
def adl_count(run: RunView) -> int:
    """Auto-deleveraging fills."""
    return run.tally.count("Liquidator", "Deleverage")


@SUMMARY_METRICS.metric("adl_deficit_covered")
def adl_deficit_covered(run: RunView) -> float:
    """Deficit closed by ADL (USD)."""
    return run.tally.adl_deficit_covered


@SUMMARY_METRICS.metric("vault_nav_start")
def vault_nav_start(run: RunView) -> float:
    """Vault NAV when recording started (USD)."""
    return run.baseline.vault_nav


@SUMMARY_METRICS.metric("vault_nav_end")
def vault_nav_end(run: RunView) -> float | None:
    """Vault NAV at the last recorded step (USD)."""
    return run.steps.last.get("vault_nav")


@SUMMARY_METRICS.metric("vault_nav_min")
def vault_nav_min(run: RunView) -> float | None:
    """Lowest Vault NAV over the recorded steps (USD)."""
    return run.steps.lowest.get("vault_nav")


@SUMMARY_METRICS.metric("lp_share_price_start")
def lp_share_price_start(run: RunView) -> float:
    """Vault share price when recording started (USD per share)."""
    return run.baseline.vault_share_price


@SUMMARY_METRICS.metric("lp_share_price_end")
def lp_share_price_end(run: RunView) -> float | None:
    """Vault share price at the last recorded step (USD per share)."""
    return run.steps.last.get("vault_share_price")


@SUMMARY_METRICS.metric("lp_share_price_change_pct")
def lp_share_price_change_pct(run: RunView) -> float | None:
    """Change of the Vault share price over the run, %."""
    end = lp_share_price_end(run)
    start = run.baseline.vault_share_price
    return None if end is None or start == 0 else 100.0 * (end - start) / start


@SUMMARY_METRICS.metric("lp_pnl_usd")
def lp_pnl_usd(run: RunView) -> float | None:
    """The LP agents' profit and loss at the last recorded step, marked to market: shares at the
    share price, plus withdrawn, minus deposited (USD; steps.csv's lp_pnl has every step's)."""
    return run.steps.last.get("lp_pnl")


@SUMMARY_METRICS.metric("lp_pnl_min_usd")
def lp_pnl_min_usd(run: RunView) -> float | None:
    """The LP agents' worst profit and loss over the run, marked to market each step (USD)."""
    return run.steps.lowest.get("lp_pnl")


@SUMMARY_METRICS.metric("traders")
def traders(run: RunView) -> int:
    """Trader subaccounts (participants with role "trader")."""
    return len({(p.owner, p.subaccount) for p in run.of_role("trader")})


@SUMMARY_METRICS.metric("traders_liquidated")
def traders_liquidated(run: RunView) -> int:
    """Trader subaccounts liquidated at least once (bankruptcies are counted apart)."""
    return len({(p.owner, p.subaccount) for p in run.of_role("trader")} & run.tally.liquidated)


@SUMMARY_METRICS.metric("traders_bankrupt")
def traders_bankrupt(run: RunView) -> int:
    """Trader subaccounts declared bankrupt (under water beyond what the insurance fund paid)."""
    return len({(p.owner, p.subaccount) for p in run.of_role("trader")} & run.tally.bankrupt)


@SUMMARY_METRICS.metric("accounts_bankrupt")
def accounts_bankrupt(run: RunView) -> dict[str, int]:
    """Subaccounts declared bankrupt, by the role of their owner (a manipulator's included)."""
    roles = {(p.owner, p.subaccount): p.role for p in run.participants}
    counts = Counter(roles.get(account, "other") for account in run.tally.bankrupt)
    return dict(sorted(counts.items()))


@SUMMARY_METRICS.metric("trader_survival_rate")
def trader_survival_rate(run: RunView) -> float | None:
    """Traders never liquidated nor declared bankrupt / all traders."""
    accounts = {(p.owner, p.subaccount) for p in run.of_role("trader")}
    if not accounts:
        return None
    return len(accounts - run.tally.liquidated - run.tally.bankrupt) / len(accounts)


@SUMMARY_METRICS.metric("attacker_profit_usd")
def attacker_profit_usd(run: RunView) -> float | None:
    """The manipulators' profit (USD): everything they hold at the last step (equity of every
    subaccount, tokens, SpotPool base tokens at the true price, Vault shares) less what they
    held at the start; the traders' book measures it (sim/traders.py). None without one."""
    return run.observed.get("attacker_profit_usd")


@SUMMARY_METRICS.metric("trigger_orders_executed")
def trigger_orders_executed(run: RunView) -> int:
    """Stop-loss and take-profit orders executed by keepers."""
    return run.tally.count("TriggerOrders", "OrderExecuted")


@SUMMARY_METRICS.metric("oracle_deviation_breaches")
def oracle_deviation_breaches(run: RunView) -> int:
    """Oracle reports rejected for moving beyond the deviation guard."""
    return run.tally.count("Oracle", "DeviationBreach")


@SUMMARY_METRICS.metric("oracle_invalid_steps")
def oracle_invalid_steps(run: RunView) -> dict[str, int]:
    """Steps each market's feed was invalid (reduce-only)."""
    return {m: run.steps.oracle_invalid.get(m, 0) for m in run.market_names()}


@SUMMARY_METRICS.metric("max_index_lag_pct")
def max_index_lag_pct(run: RunView) -> dict[str, float | None]:
    """Largest |index - true price| / true price per market, %: how far the oracle fell behind."""
    lags = run.steps.index_lag
    return {m: 100.0 * lags[m] if m in lags else None for m in run.market_names()}


@SUMMARY_METRICS.metric("max_mark_premium_pct")
def max_mark_premium_pct(run: RunView) -> dict[str, float | None]:
    """Largest |mark - index| / index per market, %."""
    premiums = run.steps.mark_premium
    return {m: 100.0 * premiums[m] if m in premiums else None for m in run.market_names()}


@SUMMARY_METRICS.metric("event_counts")
def event_counts(run: RunView) -> dict[str, int]:
    """Events by contract and name over the run, setup included."""
    return dict(sorted(run.tally.event_counts.items()))


# ---------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A JSON-ready copy: tuples become lists, bytes hex, NaN/inf null, other objects str."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v) for v in items]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return json_safe(value.item())
    if hasattr(value, "model_dump"):
        return json_safe(value.model_dump())
    return str(value)


def csv_cell(value: Any) -> str:
    """One CSV cell, the same text on every run: None is empty, floats use Python's shortest
    round-trip form."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return str(value)


_PLAIN_JSON = (int, str, bool, type(None))


def _args_json(args: Mapping[str, Any]) -> str:
    """An event's args as compact JSON: straight from the dict when every value is a plain
    int, str, bool or None (almost every event), through `json_safe` otherwise."""
    plain = all(type(v) in _PLAIN_JSON for v in args.values())
    return json.dumps(args if plain else json_safe(args), separators=(",", ":"))


def csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([csv_cell(v) for v in values])
    return buffer.getvalue()


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file, then rename), so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------
# The recorder
# ---------------------------------------------------------------------------------------


class StepObserver(Interface):
    """A collector registered with the recorder that keeps a table of its own (e.g. the
    traders' table, sim/traders.py): it sees every step's view after the step's row is
    written, and is told when the run ends, complete or partial."""

    def observe(self, view: StepView) -> None: ...

    def finish(self, run_dir: Path, status: str) -> None: ...

    def summary_fields(self) -> dict[str, Any]:
        """Figures the observer measured for summary.json's registered metrics (RunView.observed)."""
        ...



class Recorder:
    """Owns a run directory's tables: `steps.csv`, `events.csv`, `summary.json`, `status.json`.

    Created after the protocol is deployed; events logged before that are recorded with step
    `SETUP_STEP` (-1). `status.json` says "running" from the start, so a run that dies
    without calling `finish` still leaves a directory that says it did not complete."""

    def __init__(self, run_dir: Path, protocol: Protocol, participants: list[Participant], meta: dict[str, Any],
                 observers: Iterable[StepObserver] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.observers = list(observers)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.protocol = protocol
        self.participants = list(participants)
        self._lp_owners = tuple(sorted({p.owner for p in self.participants if p.role == "lp"}))
        self.meta = dict(meta)
        self.markets = [m.name for m in protocol.config.markets]
        self.contract_names = {address: name for name, address in protocol.addresses().items()}
        self.collector = STEP_METRICS
        self.tally = RunTally()
        self.delays: list[int] = []
        self.pending: dict[Subaccount, int] = {}  # subaccount -> block first seen liquidatable
        self.last_step: int | None = None
        self.finished = False
        self._cursor = 0
        self._started_at = _now()
        self._started_clock = datetime.now(timezone.utc)

        self.baseline = Baseline(
            block=protocol.chain.block_number,
            vault_nav=protocol.vault_nav(),
            vault_share_price=from_wad(protocol.vault.call("share_price")),
            insurance_balance=protocol.insurance_balance(),
        )
        self.steps = StepDigest(self.markets, self.baseline.insurance_balance)  # steps.csv's rows, as the summary reads them
        self._write_status("running")
        self._steps_file = open(self.run_dir / STEPS_FILE, "w", newline="")  # noqa: SIM115 - open for the whole run
        self._events_file = open(self.run_dir / EVENTS_FILE, "w", newline="")  # noqa: SIM115
        # On a node, the node's own block numbers and transaction hashes beside the logical ones.
        self.on_node = hasattr(protocol.chain, "node_block_number")
        self._steps_file.write(csv_line(self._step_columns()))
        self._events_file.write(csv_line(EVENT_COLUMNS + (NODE_EVENT_COLUMNS if self.on_node else ())))
        self._write_events(self._read_events(SETUP_STEP))
        self._flush()

    # -- per step ------------------------------------------------------------------
    def record_step(self, step: int, true_prices: dict[str, float]) -> None:
        """Record one step: this step's events, then one row per market of views, then flush.

        Called once per step after the keepers act, so `liquidatable_accounts` counts what the
        keepers left behind."""
        if self.finished:
            raise RuntimeError(f"record_step({step}) after finish(): the recorder of {self.run_dir} is closed")
        events = self._read_events(step)
        readings = {market: self.protocol.read_market(market) for market in self.markets}
        liquidatable = self.protocol.liquidatable_accounts({r.market: r for r in readings.values()})
        delays = self._track_liquidation_delays(events, liquidatable)
        view = StepView(self.protocol, step, true_prices, events, liquidatable, delays, readings, self.tally,
                        self._lp_owners)
        rows = self.collector.collect(view, self.markets, self.protocol.chain.block_number, self.protocol.chain.timestamp)
        if self.on_node:
            rows = [_with_node_block(row, self.protocol.chain.node_block_number) for row in rows]  # type: ignore[attr-defined]
        self._write_events(events)
        self._steps_file.write("".join(csv_line(row.values()) for row in rows))
        self._flush()
        self.steps.fold(rows)
        self.last_step = step
        for observer in self.observers:
            observer.observe(view)

    @property
    def event_cursor(self) -> int:
        """The chain's log index up to which this recorder has written events.csv."""
        return self._cursor

    def _read_events(self, step: int) -> list[RecordedEvent]:
        """The chain's events since the last read, tagged with `step` and folded into the tally."""
        raw, self._cursor = self.protocol.chain.events_since(self._cursor)
        events = [RecordedEvent(step, self.contract_names.get(e.address, e.address), e) for e in raw]
        for ev in events:
            self.tally.observe(ev)
        return events

    def _track_liquidation_delays(self, events: list[RecordedEvent], liquidatable: list[Subaccount]) -> list[int]:
        """Blocks from a subaccount's first step seen liquidatable to its Liquidation or Bankruptcy;
        returns this step's samples.

        One sample per subaccount per step that liquidates it; 0 when it became liquidatable and
        was liquidated within one step. An account that recovers without liquidation ends its
        episode; one still liquidatable after a partial liquidation starts a new one."""
        first_hit: dict[Subaccount, int] = {}
        for ev in events:
            account = ev.account()
            if ev.contract == "Liquidator" and ev.name in LIQUIDATION_EVENTS and account is not None:
                first_hit.setdefault(account, ev.block)
        samples = []
        for account, block in first_hit.items():
            start = self.pending.pop(account, None)
            samples.append(0 if start is None else block - start)
        self.delays.extend(samples)
        now = set(liquidatable)
        for account in [a for a in self.pending if a not in now]:
            del self.pending[account]
        block = self.protocol.chain.block_number
        for account in liquidatable:
            self.pending.setdefault(account, block)
        return samples

    def _step_columns(self) -> list[str]:
        columns = list(self.collector.columns)
        if self.on_node:
            columns.insert(columns.index("block") + 1, NODE_STEP_COLUMN)
        return columns

    def _write_events(self, events: list[RecordedEvent]) -> None:
        node = self.on_node
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([(ev.step, ev.block, ev.event.log_index, ev.contract, ev.name, _args_json(ev.args),
                           *((ev.event.node_block, ev.event.tx_hash) if node else ()))
                          for ev in events])  # ints, strings and None: csv_cell would give the same text
        self._events_file.write(buffer.getvalue())

    def _flush(self) -> None:
        for f in (self._steps_file, self._events_file):
            f.flush()

    # -- end of run ----------------------------------------------------------------
    def summary(self, status: str = "complete", error: str | None = None) -> dict[str, Any]:
        """The summary dict: identity and status, block range, every summary metric, the meta."""
        observed: dict[str, Any] = {}
        for observer in self.observers:
            observed.update(observer.summary_fields() if hasattr(observer, "summary_fields") else {})
        metrics, metric_errors = SUMMARY_METRICS.collect(RunView(
            self.protocol, self.participants, self.steps, self.tally, self.baseline, self.delays, self.pending,
            observed))
        summary: dict[str, Any] = {
            "scenario": self.meta.get("scenario"),
            "seed": self.meta.get("seed"),
            "backend": self.meta.get("backend"),
            "status": status,
            "error": error,
            "steps_recorded": self.steps.steps,
            "last_step": self.last_step,
            "first_block": self.steps.first_block,
            "last_block": self.steps.last_block,
            **metrics,
        }
        if metric_errors:
            summary["metric_errors"] = metric_errors
        summary["meta"] = self.meta
        return json_safe(summary)

    def finish(self, status: str = "complete", error: str | None = None) -> dict[str, Any]:
        """Close the tables, write `summary.json`, then `status.json` ("complete" or "partial")."""
        if status not in ("complete", "partial"):
            raise ValueError(f"finish(status={status!r}): expected 'complete' or 'partial'")
        if not self.finished:
            self._flush()
            self._steps_file.close()
            self._events_file.close()
            self.finished = True
        try:
            summary = self.summary(status, error)
            write_json(self.run_dir / SUMMARY_FILE, summary)
            for observer in self.observers:
                observer.finish(self.run_dir, status)
        finally:
            self._write_status(status, error)
        return summary

    def _write_status(self, status: str, error: str | None = None) -> None:
        elapsed = (datetime.now(timezone.utc) - self._started_clock).total_seconds()
        write_json(self.run_dir / STATUS_FILE, {
            "status": status,
            "error": error,
            "last_step": self.last_step,
            "steps_recorded": self.steps.steps,
            "started_at": self._started_at,
            "updated_at": _now(),
            "elapsed_seconds": round(elapsed, 3),
            "meta": self.meta,
        })
