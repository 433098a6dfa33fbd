"""The report's charts, drawn with matplotlib from a `RunData` into PNG files.

Every axis has one scale and says its unit; shocks are marked only on the panels of the
market they hit; a replay's x axis shows dates; a run of one or two steps still shows its
points. Each full-run chart is a small function registered in `CHARTS`; the zoomed panels
around shocks and the loss waterfall are drawn by `zoom_chart` and `waterfall_chart`.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import Formatter, FuncFormatter, MaxNLocator  # noqa: E402

from sim.report.losses import MarketLosses  # noqa: E402
from sim.report.run import RunData, Shock  # noqa: E402

FULL_WIDTH = 13.0  # inches; at DPI about 1,300 px, the page's content width
PANEL_HEIGHT = 2.6
DPI = 120  # charts are drawn larger than shown, so they stay sharp when the page scales them
SHOCK_COLOUR = "#8e44ad"
MARKET_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FEW_POINTS = 3  # a series this short is drawn with markers, or a line would not show
WAD = 1e18
TOKEN = 1e6


def embed_png(path: Path, alt: str) -> str:
    """An <img> with the PNG inside it, so the page needs no other file."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


# ---------------------------------------------------------------------------------------
# Axes: dollars, steps or dates, shocks
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


def usd_axis(axis: Any) -> None:
    axis.set_major_formatter(UsdFormatter())


def _step_axis(run: RunData, ax: Axes) -> None:
    """Integer steps, or for a replay the date and time of each step."""
    if run.calendar_start is None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"step (one block, {run.step_seconds:g} s)" if run.step_seconds else "step (one block)")
        return
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: _date_label(run, x)))
    first = run.date_of(0)
    ax.set_xlabel(f"date and time, UTC ({first:%Y}; one step = {run.step_seconds:g} s of the replay)"
                  if first else "date")


def _date_label(run: RunData, step: float) -> str:
    date = run.date_of(step)
    return "" if date is None else f"{date:%d %b}\n{date:%H:%M}"


def _figure(rows: int, title: str, width: float = FULL_WIDTH, height: float = PANEL_HEIGHT,
            ratios: Sequence[float] | None = None) -> tuple[Figure, list[Axes]]:
    fig, axes = plt.subplots(rows, 1, figsize=(width, 0.9 + height * rows), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": list(ratios)} if ratios else None)
    if title:
        fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig, list(axes[:, 0])


def _applies(shock: Shock, market: str | None) -> bool:
    """A shock belongs on a panel when it hits every market, or the panel's own market."""
    return market is None or not shock.market or shock.market == market


def mark_shocks(run: RunData, axes: Sequence[Axes], markets: Sequence[str | None] | None = None,
                window: tuple[float, float] | None = None) -> None:
    """A dashed line at each shock, a band over its duration, and its label on the first panel it
    is drawn on. `markets[i]` is panel i's market (None: a panel about every market)."""
    markets = list(markets) if markets is not None else [None] * len(axes)
    if window is None and not run.steps.empty:  # shocks after the last recorded step are not drawn
        window = (float(run.steps["step"].min()), float(run.steps["step"].max()))
    labelled: set[int] = set()
    rows: dict[int, list[float]] = {}
    for shock in run.shocks:
        if window is not None and not (window[0] <= shock.step <= window[1]):
            continue
        for i, (ax, market) in enumerate(zip(axes, markets, strict=True)):
            if not _applies(shock, market):
                continue
            ax.axvline(shock.step, color=SHOCK_COLOUR, linestyle="--", linewidth=1.2, alpha=0.8, zorder=1)
            if shock.duration > 1:
                ax.axvspan(shock.step - 0.5, shock.last_step + 0.5, color=SHOCK_COLOUR, alpha=0.08, linewidth=0,
                           zorder=0)
            if id(shock) in labelled:
                continue
            labelled.add(id(shock))
            row = _free_row(rows.setdefault(i, []), ax, shock.step)
            ax.annotate(shock.describe(), xy=(shock.step, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(4, -4 - 14 * row), textcoords="offset points", va="top", fontsize=8,
                        color=SHOCK_COLOUR, zorder=6, annotation_clip=False,
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": SHOCK_COLOUR,
                              "alpha": 0.9})


def _free_row(placed: list[float], ax: Axes, step: float) -> int:
    """The first label row at which a label at `step` clears the labels already placed."""
    low, high = ax.get_xlim()
    x = (step - low) / (high - low) if high > low else 0.0
    row = 0
    while any(abs(x - px) < 0.22 and pr == row for px, pr in zip(placed[::2], placed[1::2], strict=True)):
        row += 1
    placed.extend([x, row])
    return row


def _line(ax: Axes, x: Iterable[Any], y: Iterable[Any], **style: Any) -> None:
    """A line, with markers when there are too few points for a line to show."""
    x, y = list(x), list(y)
    if len(x) <= FEW_POINTS:
        style.setdefault("marker", "o")
    ax.plot(x, y, **style)


def _stems(ax: Axes, x: Iterable[Any], y: Iterable[Any], colour: str, label: str, marker: str = "o") -> None:
    """Per-step amounts as stems with a marker on top: visible at any run length, where bars
    one step wide vanish."""
    points = [(a, b) for a, b in zip(list(x), list(y), strict=True) if b == b and b]
    if not points:
        ax.plot([], [], color=colour, marker=marker, linestyle="none", label=label)
        return
    xs, ys = zip(*points, strict=True)
    ax.vlines(xs, 0, ys, color=colour, linewidth=2.0, alpha=0.9)
    ax.plot(xs, ys, color=colour, marker=marker, linestyle="none", markersize=5, label=label)


def _shade_invalid_oracle(ax: Axes, frame: pd.DataFrame) -> None:
    """Shade the steps where the oracle feed was invalid."""
    if "oracle_valid" not in frame:
        return
    spans: list[list[int]] = []
    for step in (int(s) for s in frame.index[~frame["oracle_valid"].astype(bool)]):
        if spans and step == spans[-1][1] + 1:
            spans[-1][1] = step
        else:
            spans.append([step, step])
    for i, (first, last) in enumerate(spans):
        ax.axvspan(first - 0.5, last + 0.5, color="#e74c3c", alpha=0.15, linewidth=0,
                   label="oracle feed invalid" if i == 0 else None)


def _zero_based(ax: Axes, values: Iterable[float]) -> None:
    """A y axis from 0 with headroom above the largest value for labels (0 to 1 when all are 0)."""
    top = max((float(v) for v in values if v == v), default=0.0)
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)


def _finish(fig: Figure, axes: list[Axes], run: RunData, path: Path, steps: Sequence[float] | None = None) -> Path:
    """Grid, legends, the step or date axis, limits that show even a one-step run; save."""
    steps = list(steps) if steps is not None else (list(run.steps["step"]) if not run.steps.empty else [0])
    low, high = min(steps), max(steps)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles and ax.get_legend() is None:
            ax.legend(loc="best", fontsize=8, framealpha=0.85)
    _step_axis(run, axes[-1])
    if high - low < 4:  # a very short run: every step a tick, and room around the points
        axes[0].set_xlim(low - 0.5, high + 0.5)
        axes[-1].set_xticks(range(int(low), int(high) + 1))
    else:
        axes[0].set_xlim(low, high)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------
# Series read from the events table
# ---------------------------------------------------------------------------------------


def event_amounts(run: RunData, contract: str, event: str, field: str, scale: float) -> pd.Series:
    """Per step, the sum of one event field (scaled to USD), over every market; 0 where none."""
    index = sorted(set(run.steps["step"])) if not run.steps.empty else []
    totals = dict.fromkeys(index, 0.0)
    frame = run.events
    if not frame.empty:
        frame = frame[(frame["contract"] == contract) & (frame["event"] == event) & (frame["step"] >= 0)]
        for step, args in zip(frame["step"], frame["args"], strict=True):
            totals[int(step)] = totals.get(int(step), 0.0) + int(json.loads(args)[field]) / scale
    return pd.Series(totals, dtype=float).sort_index()


# ---------------------------------------------------------------------------------------
# Full-run charts
# ---------------------------------------------------------------------------------------

Chart = Callable[[RunData, Path], "Path | None"]


@dataclass(frozen=True)
class ChartSpec:
    title: str
    caption: str
    draw: Chart


CHARTS: dict[str, ChartSpec] = {}


def chart(name: str, title: str, caption: str) -> Callable[[Chart], Chart]:
    """Register a full-run chart drawn to `<name>.png`, with the caption the report shows."""

    def register(fn: Chart) -> Chart:
        if name in CHARTS:
            raise ValueError(f"chart {name!r} is already registered")
        CHARTS[name] = ChartSpec(title, caption, fn)
        return fn

    return register


def _price_panels(run: RunData, axes: Sequence[Axes], markets: Sequence[str], steps: Any = None) -> None:
    for ax, market in zip(axes, markets, strict=True):
        frame = run.market_frame(market)
        if steps is not None:
            frame = frame.loc[[s for s in frame.index if s in steps]]
        _line(ax, frame.index, frame["true_price"], color="#7f7f7f", linestyle=":", linewidth=2.0, label="true price")
        _line(ax, frame.index, frame["index_price"], color="#1f77b4", linewidth=1.6, label="oracle index")
        _line(ax, frame.index, frame["mark_price"], color="#ff7f0e", linewidth=1.2, linestyle="--", label="mark")
        _shade_invalid_oracle(ax, frame)
        ax.set_ylabel(f"{market} (USD)")
        usd_axis(ax.yaxis)


@chart("prices", "Prices", "True price (the price process), oracle index and mark per market. Red bands: the "
       "oracle feed was invalid (reduce-only); purple: shocks and bribes, on the markets they hit.")
def prices_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(len(run.markets), "Price, oracle index and mark")
    _price_panels(run, axes, run.markets)
    for ax, market in zip(axes, run.markets, strict=True):
        ax.set_title(market, loc="left", fontsize=10)
    mark_shocks(run, axes, run.markets)
    return _finish(fig, axes, run, path)


@chart("losses", "Liquidations, ADL and bad debt",
       "Top: liquidations and ADL fills per step, and the accounts left liquidatable after the keepers acted "
       "(all counts). Middle: bad debt per step. Bottom: running totals of the bad debt and of what paid it, "
       "and the deficit still open.")
def losses_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(3, "Liquidations, ADL and bad debt")
    per_step = run.per_step()
    liquidations = run.steps.groupby("step")["liquidations"].sum()
    adl = run.steps.groupby("step")["deleverages"].sum()
    _stems(axes[0], liquidations.index, liquidations.values, "#d62728", "liquidations")
    _stems(axes[0], adl.index, adl.values, "#9467bd", "ADL fills", "D")
    _line(axes[0], per_step.index, per_step["liquidatable_accounts"], color="black", linewidth=1.2,
          drawstyle="steps-post", label="accounts liquidatable after keepers")
    axes[0].set_ylabel("count")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    _zero_based(axes[0], [*liquidations, *adl, *per_step["liquidatable_accounts"]])
    bad_debt = run.steps.groupby("step")["bad_debt"].sum()
    _stems(axes[1], bad_debt.index, bad_debt.values, "#d62728", "bad debt this step")
    axes[1].set_ylabel("bad debt per step (USD)")
    _zero_based(axes[1], bad_debt.values)
    insurance = event_amounts(run, "Exchange", "BadDebt", "insurance_paid", WAD).cumsum()
    covered = event_amounts(run, "Liquidator", "Deleverage", "deficit_covered", WAD).cumsum()
    deficit = run.pivot("deficit").sum(axis=1)
    totals = bad_debt.cumsum()
    _line(axes[2], totals.index, totals.values, color="#d62728", linewidth=2.0, drawstyle="steps-post",
          label="bad debt, total")
    _line(axes[2], insurance.index, insurance.values, color="#2ca02c", linewidth=1.6, drawstyle="steps-post",
          label="paid by the insurance fund")
    _line(axes[2], covered.index, covered.values, color="#9467bd", linewidth=1.6, drawstyle="steps-post",
          label="covered by ADL targets")
    axes[2].fill_between(deficit.index, deficit.values, step="post", color="#e67e22", alpha=0.3,
                         label="deficit open")
    axes[2].set_ylabel("cumulative (USD)")
    _zero_based(axes[2], [*totals, *deficit])
    for ax in axes[1:]:
        usd_axis(ax.yaxis)
    mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("keeper_delay", "Keeper delay",
       "Top: for each step with liquidations, the longest any account liquidated that step waited since it "
       "was first seen liquidatable (blocks). Bottom: accounts still liquidatable after the keepers acted.")
def keeper_delay_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    per_step = run.per_step()
    fig, axes = _figure(2, "Keeper delay")
    if "keeper_delay_max" in per_step:
        delay = pd.to_numeric(per_step["keeper_delay_max"], errors="coerce")
        _stems(axes[0], delay.index, delay.fillna(0).values, "#34495e", "longest wait, accounts liquidated")
        zero = delay[delay == 0]
        axes[0].plot(zero.index, zero.values, color="#34495e", marker="o", linestyle="none", markersize=5)
        _zero_based(axes[0], delay.fillna(0).values)
    else:
        axes[0].text(0.5, 0.5, "this run's steps.csv has no keeper_delay_max column", transform=axes[0].transAxes,
                     ha="center", va="center", color="#555")
    axes[0].set_ylabel("delay (blocks)")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    _line(axes[1], per_step.index, per_step["liquidatable_accounts"], color="black", linewidth=1.4,
          drawstyle="steps-post", label="accounts waiting for a keeper")
    axes[1].set_ylabel("accounts")
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    _zero_based(axes[1], per_step["liquidatable_accounts"])
    mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("lp", "LP share price", "The Vault's share price (what one LP share is worth) and the LPs' deposits and "
       "withdrawals per step. LP flows do not move the share price; losses and gains do.")
def lp_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    per_step = run.per_step()
    fig, axes = _figure(2, "LP share price and LP flows")
    _line(axes[0], per_step.index, per_step["vault_share_price"], color="#1f77b4", linewidth=1.8,
          label="share price")
    axes[0].set_ylabel("USD per share")
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda v, pos: f"${v:,.4f}"))
    withdrawn = event_amounts(run, "Vault", "Withdraw", "amount", TOKEN)
    deposited = event_amounts(run, "Vault", "Deposit", "amount", TOKEN)
    _stems(axes[1], withdrawn.index, withdrawn.values, "#d62728", "withdrawn")
    _stems(axes[1], deposited.index, deposited.values, "#2ca02c", "deposited", "s")
    axes[1].set_ylabel("LP flow per step (USD)")
    usd_axis(axes[1].yaxis)
    _zero_based(axes[1], [*withdrawn, *deposited])
    if not (withdrawn.any() or deposited.any()):
        axes[1].text(0.5, 0.5, "no LP deposits or withdrawals during the run", transform=axes[1].transAxes,
                     ha="center", va="center", color="#555")
    mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("insurance", "Insurance fund and deficit",
       "The insurance fund's balance and the deficit (bad debt the fund could not pay, awaiting ADL), on one "
       "dollar scale.")
def insurance_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    per_step = run.per_step()
    deficit = run.pivot("deficit").sum(axis=1)
    fig, axes = _figure(1, "Insurance fund and deficit", height=3.2)
    _line(axes[0], per_step.index, per_step["insurance_balance"], color="#2ca02c", linewidth=1.8,
          label="insurance fund balance")
    axes[0].fill_between(deficit.index, deficit.values, step="post", color="#e67e22", alpha=0.35,
                         label="deficit, all markets")
    axes[0].set_ylabel("USD")
    usd_axis(axes[0].yaxis)
    _zero_based(axes[0], [*per_step["insurance_balance"], *deficit])
    mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("funding", "Funding", "Funding rate per market, % per day (positive: longs pay shorts).")
def funding_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(1, "Funding rate", height=3.0)
    for colour, market in zip(MARKET_COLOURS * 2, run.markets, strict=False):
        frame = run.market_frame(market)
        _line(axes[0], frame.index, 100.0 * frame["funding_rate_per_day"], color=colour, linewidth=1.6, label=market)
    axes[0].axhline(0.0, color="black", linewidth=0.8)
    axes[0].set_ylabel("funding rate (% per day)")
    mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


@chart("open_interest", "Open interest", "Open interest per market, long and short sides, in base units of the "
       "market's asset.")
def open_interest_chart(run: RunData, path: Path) -> Path | None:
    if run.steps.empty:
        return None
    fig, axes = _figure(len(run.markets), "Open interest")
    for ax, market in zip(axes, run.markets, strict=True):
        frame = run.market_frame(market)
        _line(ax, frame.index, frame["oi_long"], color="#2ca02c", linewidth=1.6, label="long")
        _line(ax, frame.index, frame["oi_short"], color="#d62728", linewidth=1.6, label="short")
        ax.set_title(market, loc="left", fontsize=10)
        ax.set_ylabel(f"open interest ({market})")
        _zero_based(ax, [*frame["oi_long"], *frame["oi_short"]])
    mark_shocks(run, axes, run.markets)
    return _finish(fig, axes, run, path)


ATTACKER_CAPTION = ("Attacker PnL: each manipulator's profit and loss: everything it holds (equity of every subaccount, "
                    "tokens, SpotPool base tokens at the true price, Vault shares) less what it held at the start "
                    "(accounts.csv; the last step's is summary.json's attacker_profit_usd).")


def attacker_chart(run: RunData, path: Path) -> Path | None:
    """The attacker's PnL, drawn only where the scenario has one: not a registered chart, since
    every registered chart is drawn for every run (sim/rundir.py counts them)."""
    accounts = run.accounts
    if accounts.empty or "role" not in accounts or not (accounts["role"] == "manipulator").any():
        return None
    fig, axes = _figure(1, "Attacker PnL", height=3.0)
    for colour, (label, rows) in zip(MARKET_COLOURS * 4, accounts[accounts["role"] == "manipulator"].groupby("label"),
                                     strict=False):
        _line(axes[0], rows["step"], rows["pnl"], color=colour, linewidth=1.8, label=str(label))
    axes[0].axhline(0.0, color="black", linewidth=0.8)
    axes[0].set_ylabel("PnL (USD)")
    usd_axis(axes[0].yaxis)
    mark_shocks(run, axes)
    return _finish(fig, axes, run, path)


def write_charts(run: RunData) -> list[tuple[str, ChartSpec, Path]]:
    """Draw every registered chart into the run directory; (name, spec, path) of those drawn."""
    drawn = []
    for name, spec in CHARTS.items():
        path = spec.draw(run, run.run_dir / f"{name}.png")
        if path is not None:
            drawn.append((name, spec, path))
    return drawn


# ---------------------------------------------------------------------------------------
# Zoomed panels around shocks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoomWindow:
    """Steps `first`..`last` around the shocks in it."""

    first: int
    last: int
    shocks: tuple[Shock, ...]

    @property
    def markets(self) -> tuple[str, ...]:
        """The markets its shocks hit ("" inside means every market)."""
        return tuple(dict.fromkeys(s.market for s in self.shocks))


CONSEQUENCES = ("liquidations", "bankruptcies", "bad_debt", "deleverages")
"""steps.csv columns whose activity after a shock the zoom keeps in view."""


def zoom_windows(run: RunData) -> list[ZoomWindow]:
    """One window per group of nearby shocks: a little before the first, and on past the last
    liquidation, bankruptcy or ADL fill that follows (within a quarter of the run)."""
    if run.steps.empty or not run.shocks:
        return []
    first_step, last_step = int(run.steps["step"].min()), int(run.steps["step"].max())
    span = last_step - first_step + 1
    before, after = max(5, span // 40), max(25, span // 10)
    busy = run.steps[(run.steps[list(CONSEQUENCES)] != 0).any(axis=1)]["step"].astype(int).tolist()
    windows: list[list[Any]] = []
    for shock in run.shocks:
        if shock.step > last_step:
            continue
        end = shock.last_step + after
        later = [s for s in busy if shock.step <= s <= shock.step + max(span // 4, after)]
        end = max(end, (max(later) + 5) if later else end)
        start = max(first_step, shock.step - before)
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
            windows[-1][2].append(shock)
        else:
            windows.append([start, end, [shock]])
    return [ZoomWindow(int(a), int(min(b, last_step)), tuple(s)) for a, b, s in windows]


def whole_run_window(run: RunData) -> ZoomWindow | None:
    """The whole run as one window, for the first screen of a run without shocks."""
    if run.steps.empty:
        return None
    return ZoomWindow(int(run.steps["step"].min()), int(run.steps["step"].max()), ())


def zoom_chart(run: RunData, window: ZoomWindow, path: Path, width: float = 8.4, height: float = 1.7) -> Path:
    """Price, liquidations and money, steps `window.first`..`window.last`."""
    steps = range(window.first, window.last + 1)
    markets = [m for m in window.markets if m] or run.markets[:2]
    fig, axes = _figure(len(markets) + 2, "", width=width, height=height, ratios=[1.3] * len(markets) + [1.0, 1.2])
    _price_panels(run, axes[: len(markets)], markets, steps)
    frame = run.steps[run.steps["step"].between(window.first, window.last)]
    per_step = frame.drop_duplicates("step").set_index("step")
    counts = axes[len(markets)]
    liquidations = frame.groupby("step")["liquidations"].sum()
    adl = frame.groupby("step")["deleverages"].sum()
    _stems(counts, liquidations.index, liquidations.values, "#d62728", "liquidations")
    _stems(counts, adl.index, adl.values, "#9467bd", "ADL fills", "D")
    _line(counts, per_step.index, per_step["liquidatable_accounts"], color="black", linewidth=1.2,
          drawstyle="steps-post", label="liquidatable after keepers")
    counts.set_ylabel("count")
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    _zero_based(counts, [*liquidations, *adl, *per_step["liquidatable_accounts"]])
    money = axes[-1]
    deficit = frame.groupby("step")["deficit"].sum()
    bad_debt = frame.groupby("step")["bad_debt"].sum()
    _line(money, per_step.index, per_step["insurance_balance"], color="#2ca02c", linewidth=1.6, label="insurance fund")
    money.fill_between(deficit.index, deficit.values, step="post", color="#e67e22", alpha=0.35, label="deficit")
    _stems(money, bad_debt.index, bad_debt.values, "#d62728", "bad debt this step")
    money.set_ylabel("USD")
    usd_axis(money.yaxis)
    _zero_based(money, [*per_step["insurance_balance"], *deficit, *bad_debt])
    mark_shocks(run, axes, [*markets, None, None], window=(window.first, window.last))
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.yaxis.label.set_size(9)
    return _finish(fig, axes, run, path, steps=list(steps))


# ---------------------------------------------------------------------------------------
# The loss waterfall
# ---------------------------------------------------------------------------------------

PAYER_COLOURS = {"insurance fund": "#2ca02c", "ADL targets": "#9467bd", "Vault (LPs)": "#1f77b4",
                 "deficit left": "#e67e22"}


def waterfall_chart(losses: Sequence[MarketLosses], path: Path, width: float = 5.6, height: float = 2.9) -> Path:
    """Per market: the bad debt, then each payer's share stepping down to zero."""
    shown = [m for m in losses if m.market != "all markets"] or list(losses)
    fig, axes = plt.subplots(1, len(shown), figsize=(width, height), squeeze=False)
    for ax, market in zip(axes[0], shown, strict=True):
        labels = ["bad debt", *(name for name, _ in market.payers())]
        level = market.bad_debt
        ax.bar(0, market.bad_debt, color="#d62728", width=0.6)
        ax.text(0, market.bad_debt, _short_usd(market.bad_debt), ha="center", va="bottom", fontsize=8)
        for i, (name, amount) in enumerate(market.payers(), start=1):
            ax.bar(i, amount, bottom=level - amount, color=PAYER_COLOURS[name], width=0.6)
            ax.text(i, level, _short_usd(amount), ha="center", va="bottom", fontsize=8)
            level -= amount
        ax.set_xticks(range(len(labels)), [label.replace(" ", "\n", 1) for label in labels], fontsize=8)
        ax.set_title(f"{market.market}: who paid the bad debt", fontsize=9.5, loc="left")
        ax.set_ylabel("USD", fontsize=8)
        usd_axis(ax.yaxis)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylim(0, market.bad_debt * 1.18 if market.bad_debt > 0 else 1.0)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _short_usd(value: float) -> str:
    if abs(value) >= 1e6:
        return f"${value / 1e6:,.2f}M"
    if abs(value) >= 1e4:
        return f"${value / 1e3:,.1f}k"
    return f"${value:,.0f}"
