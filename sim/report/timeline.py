"""The "what happened" timeline: shocks, liquidations, bankruptcies, insurance payouts, ADL,
the oracle feed going invalid and valid again, and LP withdrawals, each with its step and
amount, folded from a run's tables.

`TimelineBuilder` folds rows one at a time (a `steps.csv` row, an `events.csv` row), so the
report feeds it a finished run's tables and the live dashboard feeds it the rows as they are
written. Events of one kind in one market that follow each other within `MERGE_GAP` steps
are one entry ("steps 153-160: 13 liquidations"), so a cascade reads as one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sim.report.run import RunData, Shock

MERGE_GAP = 3
"""Events of one kind and market at most this many steps apart are one timeline entry."""

WAD = 1e18
TOKEN = 1e6  # the collateral token's decimals

KIND_ORDER = ("shock", "feed_invalid", "feed_valid", "liquidation", "bankruptcy", "insurance_payout", "adl",
              "lp_withdrawal")
"""Entries of one step are listed in this order: cause before effect."""

KIND_LABELS = {
    "shock": "shock", "feed_invalid": "oracle", "feed_valid": "oracle", "liquidation": "liquidation",
    "bankruptcy": "bankruptcy", "insurance_payout": "insurance", "adl": "ADL", "lp_withdrawal": "LPs",
}


@dataclass
class TimelineEntry:
    """One line of the timeline: steps `step`..`last_step`, what happened, how many, how much."""

    step: int
    kind: str  # one of KIND_ORDER
    market: str = ""  # "" when not about one market
    count: int = 1
    amount: float = 0.0  # USD: notional closed, shortfall, insurance paid, deficit covered, withdrawn
    last_step: int = -1
    detail: str = ""  # shocks: the shock's own description
    first: bool = False  # the run's first liquidation wave
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.last_step < self.step:
            self.last_step = self.step

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    def text(self) -> str:
        """What happened, in words and dollars."""
        where = f" ({self.market})" if self.market else ""
        n, usd = self.count, _usd(self.amount)
        if self.kind == "shock":
            return self.detail
        if self.kind == "feed_invalid":
            return f"oracle feed invalid{where}: the market is reduce-only"
        if self.kind == "feed_valid":
            steps = int(self.extra.get("invalid_steps", 0))
            return f"oracle feed valid again{where}" + (f" after {steps} steps" if steps else "")
        if self.kind == "liquidation":
            head = "first liquidation" + ("s" if n > 1 else "") if self.first else _plural(n, "liquidation")
            if self.first and n > 1:
                head = f"first liquidations: {n}"
            return f"{head}{where}, {usd} notional closed"
        if self.kind == "bankruptcy":
            return f"{_plural(n, 'bankruptcy', 'bankruptcies')}{where}: {usd} shortfall, beyond the insurance fund"
        if self.kind == "insurance_payout":
            bad_debt = self.extra.get("bad_debt", 0.0)
            return f"insurance fund paid {usd} of {_usd(bad_debt)} bad debt{where}"
        if self.kind == "adl":
            return f"{_plural(n, 'ADL fill')}{where} covered {usd} of deficit"
        if self.kind == "lp_withdrawal":
            share = self.extra.get("share_of_nav")
            of_nav = f" ({100 * share:.1f}% of the Vault)" if share else ""
            return f"LPs withdrew {usd}{of_nav} in {_plural(n, 'withdrawal')}"
        return f"{self.kind}{where}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text()
        data["label"] = self.label
        return data


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _usd(value: float) -> str:
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


class TimelineBuilder:
    """Folds a run's rows into timeline entries, in the order the run wrote them."""

    def __init__(self, markets: Iterable[str], shocks: Iterable[Shock] = (), merge_gap: int = MERGE_GAP) -> None:
        self.markets = list(markets)
        self.merge_gap = merge_gap
        self._entries: list[TimelineEntry] = [
            TimelineEntry(s.step, "shock", s.market, last_step=s.last_step, detail=s.describe()) for s in shocks]
        self._open: dict[tuple[str, str], TimelineEntry] = {}  # (kind, market) -> entry still merging
        self._valid: dict[str, bool] = {}
        self._invalid_since: dict[str, int] = {}
        self._vault_nav = 0.0
        self._liquidated = False

    # -- folding rows ------------------------------------------------------------------------
    def add_step_row(self, row: Mapping[str, Any]) -> None:
        """A `steps.csv` row: oracle validity changes, and the Vault's NAV (for LP withdrawals)."""
        step, market = int(row["step"]), str(row["market"])
        if market not in self.markets:
            self.markets.append(market)
        if row.get("vault_nav") not in (None, ""):
            self._vault_nav = float(row["vault_nav"])
        valid = _truthy(row.get("oracle_valid", True))
        before = self._valid.get(market, True)
        if before and not valid:
            self._entries.append(TimelineEntry(step, "feed_invalid", market))
            self._invalid_since[market] = step
        elif not before and valid:
            since = self._invalid_since.pop(market, step)
            self._entries.append(TimelineEntry(step, "feed_valid", market, extra={"invalid_steps": step - since}))
        self._valid[market] = valid

    def add_event(self, step: int, contract: str, name: str, args: Mapping[str, Any] | str) -> None:
        """An `events.csv` row (args as a dict or its JSON). Setup events (step < 0) are skipped."""
        if step < 0:
            return
        if isinstance(args, str):
            args = json.loads(args)
        market = self._market(args.get("market"))
        if contract == "Liquidator" and name == "Liquidation":
            notional = abs(int(args["size"])) * int(args["price"]) / WAD / WAD
            first = not self._liquidated
            self._liquidated = True
            self._fold(step, "liquidation", market, notional, first=first)
        elif contract == "Liquidator" and name == "Bankruptcy":
            self._fold(step, "bankruptcy", market, int(args["shortfall"]) / TOKEN)
        elif contract == "Exchange" and name == "BadDebt" and int(args["insurance_paid"]) > 0:
            self._fold(step, "insurance_payout", market, int(args["insurance_paid"]) / WAD,
                       extra={"bad_debt": int(args["amount"]) / WAD})
        elif contract == "Liquidator" and name == "Deleverage":
            self._fold(step, "adl", market, int(args["deficit_covered"]) / WAD)
        elif contract == "Vault" and name == "Withdraw":
            amount = int(args["amount"]) / TOKEN
            share = amount / self._vault_nav if self._vault_nav > 0 else 0.0
            self._fold(step, "lp_withdrawal", "", amount, extra={"share_of_nav": share})

    def _market(self, market_id: Any) -> str:
        if isinstance(market_id, int) and 0 <= market_id < len(self.markets):
            return self.markets[market_id]
        return "" if market_id is None else str(market_id)

    def _fold(self, step: int, kind: str, market: str, amount: float, *, first: bool = False,
              extra: Mapping[str, float] | None = None) -> None:
        key = (kind, market)
        entry = self._open.get(key)
        if entry is not None and step - entry.last_step <= self.merge_gap:
            entry.count += 1
            entry.amount += amount
            entry.last_step = max(entry.last_step, step)
            for name, value in (extra or {}).items():
                entry.extra[name] = entry.extra.get(name, 0.0) + value
            return
        entry = TimelineEntry(step, kind, market, amount=amount, first=first, extra=dict(extra or {}))
        self._entries.append(entry)
        self._open[key] = entry

    # -- reading -----------------------------------------------------------------------------
    def entries(self) -> list[TimelineEntry]:
        """Every entry so far, by step, causes before effects within a step."""
        order = {kind: i for i, kind in enumerate(KIND_ORDER)}
        return sorted(self._entries, key=lambda e: (e.step, order.get(e.kind, len(order)), e.market))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


TIMELINE_EVENTS = {("Liquidator", "Liquidation"), ("Liquidator", "Bankruptcy"), ("Liquidator", "Deleverage"),
                   ("Exchange", "BadDebt"), ("Vault", "Withdraw")}
"""The events the timeline reads; the others are skipped before parsing."""


def build_timeline(run: RunData, merge_gap: int = MERGE_GAP) -> list[TimelineEntry]:
    """The timeline of a run directory's tables, rows folded in the order they were written
    (a step's events are written before its rows)."""
    builder = TimelineBuilder(run.markets, run.shocks, merge_gap)
    step_rows = run.steps.sort_values("step", kind="stable").to_dict("records") if not run.steps.empty else []
    events = run.events
    if not events.empty:
        wanted = [(c, e) in TIMELINE_EVENTS for c, e in zip(events["contract"], events["event"], strict=True)]
        events = events[wanted]
    i = 0
    for event in events.to_dict("records") if not events.empty else []:
        step = int(event["step"])
        while i < len(step_rows) and int(step_rows[i]["step"]) < step:
            builder.add_step_row(step_rows[i])
            i += 1
        builder.add_event(step, str(event["contract"]), str(event["event"]), str(event["args"]))
    for row in step_rows[i:]:
        builder.add_step_row(row)
    return builder.entries()
