"""Following a run directory as it is written: `RunFeed` reads the rows appended to
`steps.csv` and `events.csv` since its last look (the recorder flushes both every step), and
`status.json`, and turns them into messages for the page.

It reads the directory, never the run, so the same feed serves a run in progress (`perpsim
run --dashboard`), a finished one (`perpsim dashboard RUN_DIR`), or one another process is
writing. A torn last line (a row being written) is kept until its newline arrives.
"""

from __future__ import annotations

import csv
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.metrics import EVENTS_FILE, STATUS_FILE, STEPS_FILE
from sim.report.page import REPORT_FILE
from sim.report.run import SCENARIO_FILE, Shock
from sim.report.timeline import TIMELINE_EVENTS, TimelineBuilder

STEP_FIELDS = ("true_price", "index_price", "mark_price", "oi_long", "oi_short", "funding_rate_per_day", "deficit",
               "liquidations", "deleverages", "bad_debt")
"""Per-market columns of steps.csv the page charts."""
SHARED_FIELDS = ("vault_share_price", "insurance_balance", "liquidatable_accounts")
"""Columns that are the same on every market's row."""


@dataclass
class TailedCsv:
    """A CSV file read in appends: the header once, then each complete new line."""

    path: Path
    offset: int = 0
    header: list[str] | None = None
    partial: str = ""

    def new_rows(self) -> list[dict[str, str]]:
        try:
            with open(self.path, encoding="utf-8", newline="") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
                self.offset = handle.tell()
        except FileNotFoundError:
            return []
        text = self.partial + chunk
        lines = text.split("\n")
        self.partial = lines.pop()  # "" after a final newline, else a line still being written
        rows = []
        for values in csv.reader(line for line in lines if line):
            if self.header is None:
                self.header = values
            elif len(values) == len(self.header):
                rows.append(dict(zip(self.header, values, strict=True)))
        return rows


def _number(text: str | None) -> float | None:
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class RunFeed:
    """A run directory seen as a stream of messages: `meta` once, then `steps` (new step
    records), `timeline` (the whole timeline, when it changed) and `status`."""

    run_dir: Path
    steps: TailedCsv = field(init=False)
    events: TailedCsv = field(init=False)
    timeline: TimelineBuilder | None = None
    meta_sent: bool = False
    markets: list[str] = field(default_factory=list)
    last_status: dict[str, Any] | None = None
    last_timeline: int = -1
    last_step: int = -1
    _pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    _done_steps: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.steps = TailedCsv(self.run_dir / STEPS_FILE)
        self.events = TailedCsv(self.run_dir / EVENTS_FILE)

    # -- what the run says about itself ------------------------------------------------------
    def _scenario(self) -> dict[str, Any]:
        try:
            return tomllib.loads((self.run_dir / SCENARIO_FILE).read_text())
        except (FileNotFoundError, tomllib.TOMLDecodeError):
            return {}

    def _status(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / STATUS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _meta(self) -> dict[str, Any] | None:
        """Who the run is, once the scenario file is there."""
        scenario = self._scenario()
        if not scenario:
            return None
        status_meta = self._status().get("meta") or {}
        self.markets = [str(m.get("name")) for m in scenario.get("markets", []) if isinstance(m, dict)]
        shocks = []
        for item in scenario.get("shocks", []):
            params = {k: v for k, v in item.items() if k not in ("at_step", "kind", "duration", "market")}
            shocks.append(Shock(int(item["at_step"]), str(item["kind"]), int(item.get("duration") or 1),
                                str(item.get("market") or ""), params))
        self.timeline = TimelineBuilder(self.markets, shocks)
        return {"scenario": scenario.get("name", self.run_dir.name), "description": scenario.get("description", ""),
                "seed": scenario.get("seed"), "steps": scenario.get("steps"), "markets": self.markets,
                "step_seconds": scenario.get("step_seconds"), "calendar_start": status_meta.get("calendar_start"),
                "shocks": [{"step": s.step, "last_step": s.last_step, "market": s.market, "text": s.describe()}
                           for s in shocks]}

    # -- messages ------------------------------------------------------------------------------
    def poll(self) -> Iterator[tuple[str, Any]]:
        """The messages since the last poll, as (event name, JSON-ready data)."""
        if not self.meta_sent:
            meta = self._meta()
            if meta is None:
                return
            self.meta_sent = True
            yield "meta", meta
        assert self.timeline is not None
        for event in self.events.new_rows():
            if (event["contract"], event["event"]) in TIMELINE_EVENTS:
                self.timeline.add_event(int(event["step"]), event["contract"], event["event"], event["args"])
        records = []
        for row in self.steps.new_rows():
            self.timeline.add_step_row(row)
            step = int(row["step"])
            record = self._pending.setdefault(step, {"step": step, "markets": {}})
            record["markets"][row["market"]] = {k: _number(row.get(k)) for k in STEP_FIELDS}
            record.update({k: _number(row.get(k)) for k in SHARED_FIELDS})
            if len(record["markets"]) == len(self.markets):
                records.append(self._pending.pop(step))
                self._done_steps.append(step)
        if records:
            yield "steps", records
        if self._done_steps:
            self.last_step = max(self.last_step, max(self._done_steps))
            self._done_steps.clear()
        entries = [e for e in self.timeline.entries() if e.step <= self.last_step]  # shocks once they happen
        signature = hash(tuple((e.step, e.last_step, e.kind, e.count) for e in entries))
        if signature != self.last_timeline:
            self.last_timeline = signature
            yield "timeline", [e.as_dict() for e in entries]
        status = self.status()
        if status != self.last_status:
            self.last_status = status
            yield "status", status

    def status(self) -> dict[str, Any]:
        """The run's state; `report` is the page's link once the run ended and its report exists."""
        raw = self._status()
        state = raw.get("status") or "starting"
        ended = state in ("complete", "partial")
        report = "report" if ended and (self.run_dir / REPORT_FILE).exists() else None
        return {"state": state, "last_step": raw.get("last_step"), "error": raw.get("error"), "report": report}
