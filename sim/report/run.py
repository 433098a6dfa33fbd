"""Reading a run directory: its tables, summary, status and scenario, as one `RunData`.

Nothing here touches a chain. Missing files give empty tables or None, never an error, so a
crashed or killed run still has a report, and a run still going can be read by the
dashboard.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from sim.metrics import EVENTS_FILE, STATUS_FILE, STEPS_FILE, SUMMARY_FILE

SCENARIO_FILE = "scenario.toml"
TRADERS_FILE = "traders.csv"
ACCOUNTS_FILE = "accounts.csv"


@dataclass(frozen=True)
class Shock:
    """A shock as the report shows it: when, what, for how long, on which market ("" = all)."""

    step: int
    kind: str
    duration: int = 1
    market: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        return self.step + self.duration - 1

    def describe(self) -> str:
        """One line a reader understands: "price gaps -30% (ETH)", "keepers out for 12 steps"."""
        p, where = self.params, f" ({self.market})" if self.market else ""
        lasting = f" for {self.duration} steps" if self.duration > 1 else ""
        if self.kind == "price_jump" and isinstance(p.get("fraction"), (int, float)):
            return f"price gaps {100 * p['fraction']:+.0f}%{where or ' (every market)'}"
        if self.kind == "oracle_freeze":
            return f"oracle reports stop{where}{lasting}"
        if self.kind == "oracle_lag":
            return f"reporters lag {p.get('lag_blocks', '?')} blocks{lasting}"
        if self.kind == "reporter_compromise":
            return f"{p.get('reporters', '?')} reporters compromised (price x {p.get('factor', '?')}){lasting}"
        if self.kind == "keeper_outage":
            kinds = ", ".join(p.get("kinds") or []) or "all keepers"
            return f"keeper outage ({kinds}){lasting}"
        if self.kind == "lp_run":
            fraction = p.get("fraction")
            share = f"{100 * fraction:.0f}% of their shares" if isinstance(fraction, (int, float)) else "their shares"
            return f"LP run: LPs try to withdraw {share}{lasting}"
        if self.kind == "correlation_spike":
            return f"correlations spike{lasting}"
        if self.kind == "bribe":
            return (f"manipulator bribes {p.get('reporters', '?')} reporters (price x {p.get('factor', '?')})"
                    f"{lasting}")
        return f"{self.kind.replace('_', ' ')}{where}{lasting}"


@dataclass
class RunData:
    """Everything a report needs, read from one run directory."""

    run_dir: Path
    steps: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any] | None
    status: dict[str, Any] | None
    scenario: dict[str, Any] | None
    scenario_text: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    traders: pd.DataFrame = field(default_factory=pd.DataFrame)
    accounts: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def markets(self) -> list[str]:
        """Market names in the protocol's order: an event's `market` id indexes this list."""
        return list(dict.fromkeys(self.steps["market"])) if not self.steps.empty else []

    @property
    def steps_recorded(self) -> int:
        """Steps in `steps.csv` (a killed run's status.json does not know how far it got)."""
        return int(self.steps["step"].nunique()) if not self.steps.empty else 0

    @property
    def state(self) -> str:
        """complete | partial | incomplete (status still "running": the run was killed or is live).
        While the engine draws the report, status.json still says "running" (stage "report") but
        the run itself has ended: the summary's status is the run's."""
        status = (self.status or {}).get("status")
        if status in (None, "running"):
            status = (self.summary or {}).get("status") or status
        return "incomplete" if status in (None, "running") else str(status)

    @property
    def error(self) -> str | None:
        return (self.status or {}).get("error") or (self.summary or {}).get("error")

    @property
    def step_seconds(self) -> float | None:
        seconds = self.meta.get("step_seconds") or (self.scenario or {}).get("step_seconds")
        return float(seconds) if seconds else None

    @property
    def shocks(self) -> list[Shock]:
        """The scenario's shocks, then the bribes the engine recorded, in step order. Shocks come
        from the meta when the engine gave them, else from the scenario file's `[[shocks]]`."""
        raw = self.meta.get("shocks") or (self.scenario or {}).get("shocks") or []
        shocks = []
        for item in raw:
            if not isinstance(item, dict):
                continue
            step = item.get("step", item.get("at_step"))
            if not isinstance(step, (int, float)) or isinstance(step, bool):
                continue
            params = {k: v for k, v in item.items() if k not in ("step", "at_step", "kind", "duration", "market")}
            shocks.append(Shock(int(step), str(item.get("kind", "shock")), int(item.get("duration") or 1),
                                str(item.get("market") or ""), params))
        for bribe in self.meta.get("bribes") or []:
            start, end = int(bribe["step"]), int(bribe["end"])
            shocks.append(Shock(start, "bribe", max(end - start, 1), "",
                                {"reporters": bribe.get("reporters"), "factor": bribe.get("factor")}))
        return sorted(shocks, key=lambda s: s.step)

    def per_step(self) -> pd.DataFrame:
        """One row per step (columns that are the same on every market's row come from the first)."""
        return self.steps.drop_duplicates("step", keep="first").set_index("step")

    def market_frame(self, market: str) -> pd.DataFrame:
        return self.steps[self.steps["market"] == market].set_index("step")

    def pivot(self, column: str) -> pd.DataFrame:
        """A per-market column as one column per market, indexed by step."""
        return self.steps.pivot_table(index="step", columns="market", values=column, aggfunc="first")[self.markets]

    def title(self) -> str:
        return str(self.meta.get("scenario") or (self.scenario or {}).get("name") or self.run_dir.name)

    def description(self) -> str:
        scenario = self.scenario or {}
        return str(self.meta.get("description") or scenario.get("description") or "")

    # -- time ------------------------------------------------------------------------------
    @property
    def calendar_start(self) -> float | None:
        """A replay's series time before step 0 (Unix seconds); None for simulated prices."""
        start = self.meta.get("calendar_start")
        return float(start) if isinstance(start, (int, float)) and not isinstance(start, bool) else None

    def date_of(self, step: float) -> datetime | None:
        """The calendar time of a step of a replay (UTC); None when the run is not a replay."""
        if self.calendar_start is None or not self.step_seconds:
            return None
        return datetime.fromtimestamp(self.calendar_start + (step + 1) * self.step_seconds, tz=timezone.utc)

    def when(self, step: float) -> str:
        """How a step reads in the report: "step 150", or a replay's date and time."""
        date = self.date_of(step)
        return f"step {int(step)}" if date is None else f"{date:%d %b %Y %H:%M} UTC"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_csv(path: Path) -> pd.DataFrame:
    """A table the recorder wrote; a run that died mid-write may leave a torn last line."""
    try:
        return pd.read_csv(path, on_bad_lines="skip")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def load_run(run_dir: Path) -> RunData:
    """Read a run directory; missing files give empty tables or None, never an error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    steps = read_csv(run_dir / STEPS_FILE)
    if not steps.empty and "oracle_valid" in steps:
        steps["oracle_valid"] = steps["oracle_valid"].astype(str).str.lower().eq("true")
    events = read_csv(run_dir / EVENTS_FILE)
    summary = _read_json(run_dir / SUMMARY_FILE)
    status = _read_json(run_dir / STATUS_FILE)
    scenario_path = run_dir / SCENARIO_FILE
    scenario_text = scenario_path.read_text() if scenario_path.exists() else None
    try:
        scenario = tomllib.loads(scenario_text) if scenario_text else None
    except tomllib.TOMLDecodeError:
        scenario = None
    meta = (summary or {}).get("meta") or (status or {}).get("meta") or {}
    return RunData(run_dir, steps, events, summary, status, scenario, scenario_text, meta,
                   read_csv(run_dir / TRADERS_FILE), read_csv(run_dir / ACCOUNTS_FILE))
