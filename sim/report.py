"""Charts and the HTML report of a run, drawn from the run directory's tables alone
(DESIGN §6). Nothing here touches a chain: `write_report` reads `steps.csv`, `events.csv`,
`summary.json`, `status.json` and `scenario.toml`, so a report can be redrawn from any run
directory, finished or not, long after the run.

Each chart is a small named function registered in `CHARTS`; adding a chart is one function.
`compare_runs` puts two runs' summaries side by side with their difference.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import Formatter, MaxNLocator  # noqa: E402

from sim.metrics import EVENTS_FILE, STATUS_FILE, STEPS_FILE, SUMMARY_FILE  # noqa: E402

REPORT_FILE = "report.html"
SCENARIO_FILE = "scenario.toml"
FIGURE_WIDTH = 11.0  # inches; at DPI this is about 1,100 px, readable inline in a browser
PANEL_HEIGHT = 3.0
DPI = 100
SHOCK_COLOUR = "#8e44ad"
MARKET_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


# ---------------------------------------------------------------------------------------
# Reading a run directory
# ---------------------------------------------------------------------------------------


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

    @property
    def markets(self) -> list[str]:
        return list(dict.fromkeys(self.steps["market"])) if not self.steps.empty else []

    @property
    def steps_recorded(self) -> int:
        """Steps in `steps.csv` (a killed run's status.json does not know how far it got)."""
        return int(self.steps["step"].nunique()) if not self.steps.empty else 0

    @property
    def state(self) -> str:
        """complete | partial | incomplete (status still "running": the run was killed or is live)."""
        status = (self.status or {}).get("status") or (self.summary or {}).get("status")
        return "incomplete" if status in (None, "running") else str(status)

    @property
    def error(self) -> str | None:
        return (self.status or {}).get("error") or (self.summary or {}).get("error")

    @property
    def shocks(self) -> list[dict[str, Any]]:
        """Shocks as {"step", "kind", "duration"}: from the meta's "shocks" when the engine gave
        them, else from the scenario file's `[[shocks]]` (`at_step`, `kind`, `duration`)."""
        raw = self.meta.get("shocks") or (self.scenario or {}).get("shocks") or []
        shocks = []
        for shock in raw:
            if not isinstance(shock, dict):
                continue
            step = shock.get("step", shock.get("at_step"))
            if isinstance(step, (int, float)) and not isinstance(step, bool):
                shocks.append({"step": step, "kind": str(shock.get("kind", "shock")),
                               "duration": int(shock.get("duration") or 1)})
        return shocks

    def per_step(self) -> pd.DataFrame:
        """One row per step (columns that are the same on every market's row come from the first)."""
        return self.steps.drop_duplicates("step", keep="first").set_index("step")

    def market_frame(self, market: str) -> pd.DataFrame:
        return self.steps[self.steps["market"] == market].set_index("step")

    def title(self) -> str:
        return str(self.meta.get("scenario") or (self.scenario or {}).get("name") or self.run_dir.name)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _read_csv(path: Path) -> pd.DataFrame:
    """A table the recorder wrote; a run that died mid-write may leave a torn last line."""
    try:
        return pd.read_csv(path, on_bad_lines="skip")
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def load_run(run_dir: Path) -> RunData:
    """Read a run directory; missing files give empty tables or None, never an error, so a
    crashed run still has a report."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    steps = _read_csv(run_dir / STEPS_FILE)
    if not steps.empty and "oracle_valid" in steps:
        steps["oracle_valid"] = steps["oracle_valid"].astype(str).str.lower().eq("true")
    summary = _read_json(run_dir / SUMMARY_FILE)
    status = _read_json(run_dir / STATUS_FILE)
    scenario_path = run_dir / SCENARIO_FILE
    scenario_text = scenario_path.read_text() if scenario_path.exists() else None
    try:
        scenario = tomllib.loads(scenario_text) if scenario_text else None
    except tomllib.TOMLDecodeError:
        scenario = None
    meta = (summary or {}).get("meta") or (status or {}).get("meta") or {}
    return RunData(run_dir, steps, _read_csv(run_dir / EVENTS_FILE), summary, status, scenario, scenario_text, meta)


# ---------------------------------------------------------------------------------------
# Chart helpers
# ---------------------------------------------------------------------------------------


class UsdFormatter(Formatter):
    """Dollar tick labels ($1.2M, $35.0k, $1,750) with just enough decimals that neighbouring
    ticks differ: $1.005M, $1.010M rather than $1.01M twice."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    def set_locs(self, locs: Any) -> None:
        self.ticks = [float(x) for x in locs]

    def __call__(self, value: float, pos: int | None = None) -> str:
        if value == 0:
            return "$0"
        ticks = self.ticks or [float(value)]
        top = max(abs(x) for x in ticks)
        scale, suffix = next(((s, u) for s, u, shown_from in ((1e9, "B", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4))
                              if top >= shown_from), (1.0, ""))
        scaled = [x / scale for x in ticks]
        decimals = next((d for d in range(7) if all(abs(x * 10**d - round(x * 10**d)) < 1e-6 for x in scaled)), 6)
        sign = "-" if value < 0 else ""
        return f"{sign}${abs(value) / scale:,.{decimals}f}{suffix}"


def _usd_axis(axis: Any) -> None:
    axis.set_major_formatter(UsdFormatter())


def _step_label(run: RunData) -> str:
    seconds = run.meta.get("step_seconds")
    return f"step (one block, {seconds} s)" if seconds else "step (one block)"


def _figure(rows: int, title: str, sharex: bool = True) -> tuple[Figure, list[Axes]]:
    fig, axes = plt.subplots(rows, 1, figsize=(FIGURE_WIDTH, 1.2 + PANEL_HEIGHT * rows), sharex=sharex, squeeze=False)
    fig.suptitle(title, fontsize=14, fontweight="bold")
    return fig, list(axes[:, 0])


def _mark_shocks(run: RunData, axes: Iterable[Axes]) -> None:
    """A dashed vertical line at each shock on every panel, labelled on the top panel; labels
    of nearby shocks are stacked so they do not cover each other."""
    axes = list(axes)
    if not run.shocks:
        return
    by_step: dict[float, list[str]] = {}
    for shock in run.shocks:
        step, duration = float(shock["step"]), shock["duration"]
        by_step.setdefault(step, []).append(shock["kind"] + (f" ({duration} steps)" if duration > 1 else ""))
        if duration > 1:
            for ax in axes:
                ax.axvspan(step - 0.5, step + duration - 0.5, color=SHOCK_COLOUR, alpha=0.07, linewidth=0, zorder=0)
    top = axes[0]
    low, high = top.get_xlim()
    placed: list[tuple[float, int]] = []  # (x as a fraction of the axis, row)
    for step in sorted(by_step):
        for ax in axes:
            ax.axvline(step, color=SHOCK_COLOUR, linestyle="--", linewidth=1.2, alpha=0.8, zorder=1)
        x = (step - low) / (high - low) if high > low else 0.0
        row = next(r for r in range(len(placed) + 1) if all(abs(x - px) > 0.15 or pr != r for px, pr in placed))
        placed.append((x, row))
        top.annotate(", ".join(by_step[step]), xy=(step, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(3, -3 - 14 * row), textcoords="offset points", va="top", fontsize=8,
                     color=SHOCK_COLOUR, zorder=5,
                     bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": SHOCK_COLOUR, "alpha": 0.9})


def _stems(ax: Axes, x: Any, y: Any, colour: str, label: str, marker: str = "o") -> None:
    """Per-step amounts as stems with a marker on top: visible at any run length, where bars
    one step wide vanish."""
    x, y = list(x), list(y)
    points = [(a, b) for a, b in zip(x, y, strict=True) if b]
    if not points:
        ax.plot([], [], color=colour, marker=marker, linestyle="none", label=label)
        return
    xs, ys = zip(*points, strict=True)
    ax.vlines(xs, 0, ys, color=colour, linewidth=2.0, alpha=0.9)
    ax.plot(xs, ys, color=colour, marker=marker, linestyle="none", markersize=6, label=label)


def _shade_invalid_oracle(ax: Axes, frame: pd.DataFrame) -> bool:
    """Shade the steps where the oracle feed was invalid; True when there were any."""
    if "oracle_valid" not in frame:
        return False
    invalid = [int(step) for step in frame.index[~frame["oracle_valid"].astype(bool)]]
    spans: list[list[int]] = []
    for step in invalid:  # merge consecutive steps into one band
        if spans and step == spans[-1][1] + 1:
            spans[-1][1] = step
        else:
            spans.append([step, step])
    for i, (first, last) in enumerate(spans):
        ax.axvspan(first - 0.5, last + 0.5, color="#e74c3c", alpha=0.15, linewidth=0,
                   label="oracle invalid" if i == 0 else None)
    return bool(spans)


def _zero_based(ax: Axes, values: Iterable[float]) -> None:
    """A y axis from 0 with headroom above the largest value for the legend (0 to 1 when all are 0)."""
    top = max((float(v) for v in values if v == v), default=0.0)
    ax.set_ylim(0, top * 1.25 if top > 0 else 1.0)


def _finish(fig: Figure, axes: list[Axes], run: RunData, path: Path) -> Path:
    axes[-1].set_xlabel(_step_label(run))
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, _ = ax.get_legend_handles_labels()
        if handles and ax.get_legend() is None:
            ax.legend(loc="best", fontsize=9, framealpha=0.85)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------
# Charts: each takes the run and an output path and returns the path (None: nothing to draw)
# ---------------------------------------------------------------------------------------

Chart = Callable[[RunData, Path], "Path | None"]
CHARTS: dict[str, tuple[str, Chart]] = {}


def chart(name: str, caption: str) -> Callable[[Chart], Chart]:
    """Register a chart drawn to `<name>.png` with the caption the report shows under it."""

    def register(fn: Chart) -> Chart:
        if name in CHARTS:
            raise ValueError(f"chart {name!r} is already registered")
        CHARTS[name] = (caption, fn)
        return fn

    return register


@chart("prices", "True price (the price process), oracle index and mark price per market. "
                 "Red bands: steps where the oracle feed was invalid; dashed lines and purple bands: shocks.")
def prices_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(len(run.markets), "Price, index and mark")
    for ax, market in zip(axes, run.markets, strict=True):
        frame = run.market_frame(market)
        ax.plot(frame.index, frame["true_price"], color="#7f7f7f", linestyle=":", linewidth=2.0, label="true price")
        ax.plot(frame.index, frame["index_price"], color="#1f77b4", linewidth=1.6, label="oracle index")
        ax.plot(frame.index, frame["mark_price"], color="#ff7f0e", linewidth=1.2, linestyle="--", label="mark")
        _shade_invalid_oracle(ax, frame)
        ax.set_title(market)
        ax.set_ylabel(f"{market} price (USD)")
        _usd_axis(ax.yaxis)
    _mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("funding", "Funding rate per market, % per day (positive: longs pay shorts).")
def funding_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(1, "Funding rate")
    ax = axes[0]
    for colour, market in zip(MARKET_COLOURS * 2, run.markets, strict=False):
        frame = run.market_frame(market)
        ax.plot(frame.index, 100.0 * frame["funding_rate_per_day"], color=colour, linewidth=1.6, label=market)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel("funding rate (% per day)")
    _mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("open_interest", "Open interest per market, long and short sides, in base units of the asset.")
def open_interest_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(len(run.markets), "Open interest")
    for ax, market in zip(axes, run.markets, strict=True):
        frame = run.market_frame(market)
        ax.plot(frame.index, frame["oi_long"], color="#2ca02c", linewidth=1.6, label="long")
        ax.plot(frame.index, frame["oi_short"], color="#d62728", linewidth=1.6, label="short")
        ax.set_title(market)
        ax.set_ylabel(f"open interest ({market})")
        _zero_based(ax, [*frame["oi_long"], *frame["oi_short"]])
    _mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("solvency", "Vault NAV (what LPs own), the insurance fund's balance, and the deficit: "
                   "bad debt the fund could not pay, awaiting ADL.")
def solvency_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    per_step = run.per_step()
    fig, axes = _figure(3, "Vault, insurance fund and deficit")
    axes[0].plot(per_step.index, per_step["vault_nav"], color="#1f77b4", linewidth=1.8, label="Vault NAV")
    axes[0].set_ylabel("Vault NAV (USD)")
    axes[1].plot(per_step.index, per_step["insurance_balance"], color="#2ca02c", linewidth=1.8, label="insurance fund")
    axes[1].set_ylabel("insurance (USD)")
    deficit = run.steps.pivot_table(index="step", columns="market", values="deficit", aggfunc="first")
    axes[2].fill_between(deficit.index, deficit.sum(axis=1), color="#d62728", alpha=0.35, step="mid",
                         label="deficit, all markets")
    axes[2].plot(deficit.index, deficit.sum(axis=1), color="#d62728", linewidth=1.4, drawstyle="steps-mid")
    axes[2].set_ylabel("deficit (USD)")
    _zero_based(axes[2], deficit.sum(axis=1))
    if not (deficit.sum(axis=1) > 0).any():
        axes[2].text(0.5, 0.5, "no deficit: the insurance fund covered all bad debt", transform=axes[2].transAxes,
                     ha="center", va="center", color="#555", fontsize=10)
    for ax in axes:
        _usd_axis(ax.yaxis)
    _mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("liquidations", "Liquidations per step (stems, by market) with the accounts left liquidatable after "
                       "the keepers acted; bad debt per step (stems) and its running total.")
def liquidations_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(2, "Liquidations and bad debt")
    counts = run.steps.pivot_table(index="step", columns="market", values="liquidations", aggfunc="first")
    markers = "os^Dv<>p"
    for i, market in enumerate(run.markets):
        _stems(axes[0], counts.index, counts[market], MARKET_COLOURS[i % len(MARKET_COLOURS)],
               f"liquidations {market}", markers[i % len(markers)])
    per_step = run.per_step()
    axes[0].plot(per_step.index, per_step["liquidatable_accounts"], color="black", linewidth=1.4,
                 drawstyle="steps-mid", label="liquidatable accounts (after keepers)")
    axes[0].set_ylabel("count")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    _zero_based(axes[0], [*counts.to_numpy().ravel(), *per_step["liquidatable_accounts"]])
    bad_debt = run.steps.groupby("step")["bad_debt"].sum()
    _stems(axes[1], bad_debt.index, bad_debt.values, "#d62728", "bad debt this step")
    axes[1].set_ylabel("bad debt per step (USD)")
    _usd_axis(axes[1].yaxis)
    total = axes[1].twinx()
    total.plot(bad_debt.index, bad_debt.cumsum().values, color="#34495e", linewidth=1.6, drawstyle="steps-mid",
               label="cumulative bad debt (right axis)")
    total.set_ylabel("cumulative bad debt (USD)")
    _usd_axis(total.yaxis)
    _zero_based(axes[1], bad_debt.values)
    _zero_based(total, bad_debt.cumsum().values)
    axes[1].set_zorder(total.get_zorder() + 1)  # the stems' axes on top, so its legend is not hidden
    axes[1].patch.set_visible(False)
    handles = [*axes[1].get_legend_handles_labels()[0], *total.get_legend_handles_labels()[0]]
    axes[1].legend(handles=handles, loc="upper left", fontsize=9, framealpha=0.85)
    _mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


def write_charts(run: RunData) -> list[tuple[str, str, Path]]:
    """Draw every registered chart into the run directory; (name, caption, path) of those drawn."""
    drawn = []
    for name, (caption, draw) in CHARTS.items():
        path = draw(run, run.run_dir / f"{name}.png")
        if path is not None:
            drawn.append((name, caption, path))
    return drawn


# ---------------------------------------------------------------------------------------
# Summaries as flat rows (the report's table and compare_runs)
# ---------------------------------------------------------------------------------------


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {"solvency_checks": {"no_deficit": True}} -> "solvency_checks.no_deficit"."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def format_value(value: Any) -> str:
    """A summary value as text: thousands separators for money, enough digits for small numbers."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.2f}"
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _difference(a: Any, b: Any) -> str:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return "" if a == b else "differs"
    diff = b - a
    text = format_value(diff)
    return f"+{text}" if diff > 0 else text


def _metric_rows(summary: dict[str, Any]) -> dict[str, Any]:
    """The comparable part of a summary: everything but the meta and the event counts."""
    return flatten({k: v for k, v in summary.items() if k not in ("meta", "event_counts")})


def compare_runs(run_a: Path, run_b: Path) -> str:
    """The two runs' summaries side by side, with B - A for numbers ("differs" for others)."""
    summaries = []
    for run_dir in (Path(run_a), Path(run_b)):
        summary = _read_json(run_dir / SUMMARY_FILE)
        if summary is None:
            raise FileNotFoundError(f"{run_dir / SUMMARY_FILE} is missing or unreadable: did the run finish?")
        summaries.append(_metric_rows(summary))
    a, b = summaries
    keys = list(dict.fromkeys([*a, *b]))
    header = ("metric", f"A: {Path(run_a).name}", f"B: {Path(run_b).name}", "B - A")
    rows = [header] + [(k, format_value(a.get(k)), format_value(b.get(k)), _difference(a.get(k), b.get(k))) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# The HTML page
# ---------------------------------------------------------------------------------------

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .subtitle { color: #555; margin-top: 0; }
.status { padding: 0.8em 1em; border-radius: 6px; margin: 1em 0; font-weight: bold; }
.complete { background: #e8f6ec; border: 1px solid #2ca02c; }
.partial, .incomplete { background: #fdecea; border: 2px solid #d62728; color: #8b1a1a; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.9em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #d62728; font-weight: bold; } .good { color: #2ca02c; font-weight: bold; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.columns { display: flex; gap: 3em; flex-wrap: wrap; }
"""

HEADLINE_KEYS = (
    "solvent", "total_bad_debt", "deficit_at_end", "insurance_drawdown_pct", "liquidation_count",
    "liquidation_notional", "liquidation_delay_blocks_median", "liquidation_delay_blocks_max", "adl_count",
    "lp_share_price_change_pct", "lp_pnl_usd", "trader_survival_rate",
)


def _table(rows: Iterable[tuple[str, Any]], headers: tuple[str, str] = ("metric", "value")) -> str:
    body = []
    for key, value in rows:
        css = "num" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        if isinstance(value, bool):
            css = "good" if value else "bad"
        body.append(f"<tr><td>{html.escape(str(key))}</td><td class='{css}'>{html.escape(format_value(value))}</td></tr>")
    return (f"<table><tr><th>{html.escape(headers[0])}</th><th>{html.escape(headers[1])}</th></tr>"
            + "".join(body) + "</table>")


def _status_banner(run: RunData) -> str:
    state = run.state
    steps = run.steps_recorded
    planned = run.meta.get("steps")
    progress = f" ({steps} of {planned} steps recorded)" if steps is not None and planned else ""
    if state == "complete":
        text = f"Run complete{progress}."
    elif state == "partial":
        text = f"PARTIAL RUN: stopped early{progress}. Error: {run.error or 'not given'}"
    else:
        text = (f"INCOMPLETE RUN: status.json still says 'running'{progress}: the run was killed "
                "or is still going. Tables hold what was recorded; there may be no summary.")
    return f"<div class='status {html.escape(state)}'>{html.escape(text)}</div>"


def _description(run: RunData) -> str:
    scenario = run.scenario or {}
    nested = scenario.get("scenario") if isinstance(scenario.get("scenario"), dict) else {}
    return str(run.meta.get("description") or scenario.get("description") or nested.get("description") or "")


def _run_facts(run: RunData) -> list[tuple[str, Any]]:
    summary = run.summary or {}
    facts: list[tuple[str, Any]] = [
        ("scenario", run.title()),
        ("seed", run.meta.get("seed")),
        ("backend", run.meta.get("backend")),
        ("steps planned", run.meta.get("steps")),
        ("step seconds", run.meta.get("step_seconds")),
        ("steps recorded", run.steps_recorded),
        ("blocks", f"{int(run.steps['block'].min())} to {int(run.steps['block'].max())}" if not run.steps.empty else None),
    ]
    for key in ("rpc_url", "chain_id", "node_client"):
        if run.meta.get(key) is not None:
            facts.append((key.replace("_", " "), run.meta[key]))
    if run.meta.get("node_first_block") is not None:
        last = run.meta.get("node_last_block")
        facts.append(("node blocks", f"{run.meta['node_first_block']} to {last if last is not None else '? (node stopped)'}"))
    if run.shocks:
        facts.append(("shocks", "; ".join(
            f"step {s['step']}: {s['kind']}" + (f" for {s['duration']} steps" if s["duration"] > 1 else "")
            for s in run.shocks)))
    return facts


def _image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def write_report(run_dir: Path) -> Path:
    """Draw the charts (PNG files in the run directory) and write `report.html`: one
    self-contained page with the charts embedded, the summary and the run's identity and
    status. Returns the page's path."""
    run = load_run(Path(run_dir))
    charts = write_charts(run)
    summary = run.summary or {}
    metrics = {k: v for k, v in summary.items() if k not in ("meta", "event_counts", "scenario", "seed", "backend")}
    flat = flatten(metrics)
    headline = [(k, flat[k]) for k in HEADLINE_KEYS if k in flat]
    events = summary.get("event_counts") or (
        run.events.groupby(["contract", "event"]).size().rename(lambda k: f"{k[0]}.{k[1]}").to_dict()
        if not run.events.empty else {})

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>perpsim: {html.escape(run.title())}</title><style>{CSS}</style></head><body>",
        f"<h1>perpsim run: {html.escape(run.title())}</h1>",
        f"<p class='subtitle'>{html.escape(_description(run))}</p>",
        _status_banner(run),
        "<div class='columns'><div><h2>Run</h2>", _table(_run_facts(run), ("", "")), "</div>",
        "<div><h2>Headline</h2>",
        _table(headline) if headline else "<p>No summary: the run did not reach finish().</p>",
        "</div></div>",
    ]
    for name, caption, path in charts:
        parts.append(f"<figure>{_image_tag(path, name)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    if flat:
        parts += ["<h2>Summary</h2>", _table(flat.items())]
    if events:
        parts += ["<h2>Events</h2>", _table(events.items(), ("contract.event", "count"))]
    if run.scenario_text:
        parts += ["<h2>Scenario as run</h2>", f"<pre>{html.escape(run.scenario_text)}</pre>"]
    parts.append("</body></html>\n")
    out = run.run_dir / REPORT_FILE
    out.write_text("\n".join(parts))
    return out
