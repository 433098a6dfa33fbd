"""`sweep.html`: one self-contained page for a sweep.

A histogram per headline summary field (one outline per grid point), a heatmap of VaR95
for each pair of grid keys with more than one value (the worst over any other key), the
trade-off chart of VaR95 against max leverage with the efficient points joined, the risk
table with its bootstrap intervals, and the runs that failed.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.sweep.plan import SweepPlan  # noqa: E402
from sim.sweep.risk import FIGURES, HEADLINE_FIELDS, efficient_points, missing_fields  # noqa: E402
from sim.sweep.worker import COMPLETE  # noqa: E402

HTML_FILE = "sweep.html"
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_HEATMAPS = 3
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.88em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .ci { color: #777; font-size: 0.85em; }
.efficient { font-weight: bold; } figure { margin: 1em 0 2em; } figure img { max-width: 100%; }
figcaption, .note { color: #555; font-size: 0.9em; } pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
"""


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(src: str, caption: str) -> str:
    return f"<figure><img alt='{html.escape(caption)}' src='{src}'><figcaption>{html.escape(caption)}</figcaption></figure>"


# ---------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------


def histograms(plan: SweepPlan, rows: Sequence[dict[str, Any]]) -> str | None:
    """One panel per headline field the summaries have; one outline per grid point."""
    complete = [r for r in rows if r.get("status") == COMPLETE]
    fields = [f for f in HEADLINE_FIELDS if any(r.get(f) is not None for r in complete)]
    if not fields:
        return None
    cols = 3
    nrows = math.ceil(len(fields) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(12, 3.2 * nrows), squeeze=False)
    for ax, field in zip(axes.flat, fields, strict=False):
        values = [r[field] for r in complete if r.get(field) is not None]
        bins = np.histogram_bin_edges(np.asarray(values, dtype=float), bins=min(30, max(5, len(values) // 3)))
        for i, point in enumerate(plan.points):
            x = [r[field] for r in complete if r["grid_point"] == point.canonical and r.get(field) is not None]
            if x:
                ax.hist(x, bins=bins, histtype="step", linewidth=1.5, color=COLOURS[i % len(COLOURS)],
                        label=point.label if len(plan.points) <= len(COLOURS) else None)
        ax.set_title(field, fontsize=10)
        ax.set_ylabel("runs")
    for ax in list(axes.flat)[len(fields):]:
        ax.set_visible(False)
    if 1 < len(plan.points) <= len(COLOURS):
        fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(plan.points), 3),
                   fontsize=8, bbox_to_anchor=(0.5, -0.02 - 0.03 * math.ceil(len(plan.points) / 3)))
    fig.tight_layout()
    return _png(fig)


def heatmaps(plan: SweepPlan, risk: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """VaR95 over each pair of grid keys that vary (worst over any other key)."""
    keys = [a.key for a in plan.axes if len(a.values) > 1]
    out = []
    for kx, ky in list(itertools.combinations(keys, 2))[:MAX_HEATMAPS]:
        xs = next(a.values for a in plan.axes if a.key == kx)
        ys = next(a.values for a in plan.axes if a.key == ky)
        grid = np.full((len(ys), len(xs)), np.nan)
        for row, point in zip(risk, plan.points, strict=True):
            value = row.get("var95_bad_debt")
            if value is None:
                continue
            i, j = ys.index(point.values[ky]), xs.index(point.values[kx])
            grid[i, j] = value if np.isnan(grid[i, j]) else max(grid[i, j], value)
        if np.all(np.isnan(grid)):
            continue
        fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.8 * len(ys) + 2))
        image = ax.imshow(grid, cmap="Reds", origin="lower", aspect="auto")
        ax.set_xticks(range(len(xs)), [json.dumps(v) for v in xs])
        ax.set_yticks(range(len(ys)), [json.dumps(v) for v in ys])
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
        middle = (np.nanmin(grid) + np.nanmax(grid)) / 2
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, fmt(float(value)) if not np.isnan(value) else "-", ha="center", va="center", fontsize=8,
                    color="white" if not np.isnan(value) and value > middle else "black")
        fig.colorbar(image, ax=ax, label="VaR95 bad debt (USD)")
        others = [k for k in keys if k not in (kx, ky)]
        caption = f"VaR95 of bad debt over {kx} × {ky}" + (f" (worst over {', '.join(others)})" if others else "")
        out.append((_png(fig), caption))
    return out


def tradeoff(plan: SweepPlan, risk: Sequence[dict[str, Any]]) -> str | None:
    """VaR95 against max leverage, one dot per grid point, the efficient ones joined."""
    usable = [r for r in risk if r.get("var95_bad_debt") is not None]
    if not usable:
        return None
    front = set(efficient_points(usable))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = [r["max_leverage"] for r in usable]
    y = [r["var95_bad_debt"] for r in usable]
    ax.scatter(x, y, color="#999", zorder=2, label="grid point")
    best = sorted((usable[i]["max_leverage"], usable[i]["var95_bad_debt"]) for i in front)
    ax.plot([b[0] for b in best], [b[1] for b in best], "o-", color="#d62728", zorder=3, label="efficient")
    for r in usable:
        ax.annotate(r["point"], (r["max_leverage"], r["var95_bad_debt"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("max leverage (1 / initial margin)")
    ax.set_ylabel("VaR95 bad debt (USD)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------


def risk_table(risk: Sequence[dict[str, Any]]) -> str:
    shown = [f for f in FIGURES if any(f.name in r for r in risk)]
    front = set(efficient_points([r for r in risk if r.get("var95_bad_debt") is not None]))
    usable_index = [i for i, r in enumerate(risk) if r.get("var95_bad_debt") is not None]
    efficient_rows = {usable_index[i] for i in front}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["grid point", "runs", "failed", "max leverage", *(f.label for f in shown)])
    body = []
    for i, row in enumerate(risk):
        cells = [f"<td class='{'efficient' if i in efficient_rows else ''}'>{html.escape(row['point'])}</td>",
                 f"<td class='num'>{row['complete']}</td>", f"<td class='num'>{row['failed']}</td>",
                 f"<td class='num'>{fmt(row['max_leverage'])}</td>"]
        for f in shown:
            if f.name not in row:
                cells.append("<td>-</td>")
                continue
            ci = f"<br><span class='ci'>[{fmt(row[f.name + '_ci_low'])}, {fmt(row[f.name + '_ci_high'])}]</span>"
            cells.append(f"<td class='num'>{fmt(row[f.name])}{ci}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def failures_table(rows: Sequence[dict[str, Any]]) -> str:
    bad = [r for r in rows if r.get("status") != COMPLETE]
    if not bad:
        return "<p>Every run completed.</p>"
    body = "".join(f"<tr><td>{html.escape(r['grid_point'])}</td><td class='num'>{r['seed']}</td>"
                   f"<td>{html.escape(str(r['status']))}</td><td>{html.escape(str(r.get('error')))}</td></tr>"
                   for r in bad)
    return f"<table><tr><th>grid point</th><th>seed</th><th>status</th><th>error</th></tr>{body}</table>"


def write_html(out_dir: Path, plan: SweepPlan, rows: Sequence[dict[str, Any]], risk: Sequence[dict[str, Any]],
               meta: dict[str, Any]) -> Path:
    """Write `sweep.html` into `out_dir` and return its path."""
    rows = [r for r in rows if r.get("scenario_hash") == plan.scenario_hash]
    complete = sum(1 for r in rows if r.get("status") == COMPLETE)
    missing = [f for f in missing_fields([r for r in rows if r.get("status") == COMPLETE])
               if f != "attacker_profit_usd" or any(p.has_attacker for p in plan.points)]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>perpsim sweep: {html.escape(plan.scenario_name)}</title><style>{CSS}</style></head><body>",
        f"<h1>perpsim sweep: {html.escape(plan.scenario_name)}</h1>",
        f"<p>{len(plan.points)} grid point(s) × {len(plan.seeds)} seed(s), {plan.steps} steps each: {complete} of "
        f"{len(rows)} runs complete. Scenario hash {plan.scenario_hash}.</p>",
        f"<pre>{html.escape(str(meta.get('command', '')))}</pre>",
        "<h2>Risk by grid point</h2>",
        "<p class='note'>Each figure over the point's complete runs, with its bootstrap 95% interval below it; "
        "bold: on the efficient front (no point has lower VaR95 at higher leverage).</p>",
        risk_table(risk),
    ]
    if missing:
        parts.append(f"<p class='note'>Not in these summaries, so left out: {html.escape(', '.join(missing))}.</p>")
    chart = tradeoff(plan, risk)
    if chart:
        parts.append(_figure(chart, "Trade-off: VaR95 of bad debt against max leverage; red: the efficient points"))
    for src, caption in heatmaps(plan, risk):
        parts.append(_figure(src, caption))
    chart = histograms(plan, rows)
    if chart:
        parts.append(_figure(chart, "Distributions over seeds of the headline summary fields, one outline per grid point"))
    parts += ["<h2>Runs that did not complete</h2>", failures_table(rows), "</body></html>\n"]
    path = Path(out_dir) / HTML_FILE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
