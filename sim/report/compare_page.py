"""`perpsim compare RUN_A RUN_B` as one HTML page: the two runs side by side on the figures
that say whether a defence held (bad debt, insurance drawdown, deficit, attacker profit, LP PnL
marked to market, liquidations and their delay), their verdicts, and one chart of both runs'
LP share price. Like the report, it reads only the two run directories and embeds its chart,
so the page is one self-contained file.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import matplotlib.pyplot as plt

from sim.report.charts import DPI, FULL_WIDTH, MARKET_COLOURS, embed_png
from sim.report.compare import compare_runs
from sim.report.headline import usd, verdict
from sim.report.page import CSS
from sim.report.run import RunData, load_run


@dataclass(frozen=True)
class Figure:
    """One row of the comparison: a label, how to read it from a run, how to show it."""

    label: str
    read: Callable[[RunData], float | None]
    show: Callable[[float], str]
    lower_is_better: bool = True


def _summary(key: str) -> Callable[[RunData], float | None]:
    def read(run: RunData) -> float | None:
        value = (run.summary or {}).get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return read


def attacker_pnl(run: RunData) -> float | None:
    """The manipulators' profit, as summary.json's `attacker_profit_usd` measures it (everything
    they hold against what they held at the start, sim/traders.py); None when the run has no
    manipulator."""
    return _summary("attacker_profit_usd")(run)


def _pct(value: float) -> str:
    return f"{value:,.2f}%"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _blocks(value: float) -> str:
    return f"{value:,.1f}"


FIGURES = (
    Figure("bad debt", _summary("total_bad_debt"), usd),
    Figure("insurance drawdown", _summary("insurance_drawdown_pct"), _pct),
    Figure("deficit left at the end", _summary("deficit_at_end"), usd),
    Figure("attacker profit", attacker_pnl, usd),
    Figure("LP PnL, marked to market, at the end", _summary("lp_pnl_usd"), usd, lower_is_better=False),
    Figure("LP PnL, marked to market, at its worst", _summary("lp_pnl_min_usd"), usd, lower_is_better=False),
    Figure("liquidations", _summary("liquidation_count"), _count),
    Figure("bankruptcies", _summary("bankruptcy_count"), _count),
    Figure("liquidation delay, median (blocks)", _summary("liquidation_delay_blocks_median"), _blocks),
    Figure("liquidation delay, max (blocks)", _summary("liquidation_delay_blocks_max"), _blocks),
)


def _cell(value: float | None, show: Callable[[float], str]) -> str:
    return "-" if value is None or not math.isfinite(value) else show(value)


def _difference(figure: Figure, a: float | None, b: float | None) -> tuple[str, str]:
    """B - A as text, and its class: "good" when B is better, "bad" when worse."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return "-", ""
    delta = b - a
    if delta == 0:
        return "same", ""
    text = ("+" if delta > 0 else "-") + figure.show(abs(delta)).lstrip("-")
    better = delta < 0 if figure.lower_is_better else delta > 0
    return text, "good" if better else "bad"


def _share_price_chart(runs: tuple[RunData, RunData], names: tuple[str, str], path: Path) -> Path | None:
    """Both runs' LP share price against the step, one line each."""
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 4.2))
    drawn = False
    for run, name, colour, style in zip(runs, names, MARKET_COLOURS, ("-", "--"), strict=False):
        steps = run.steps
        if steps.empty or "vault_share_price" not in steps:
            continue
        per_step = steps.drop_duplicates("step")  # the share price is the same on every market's row
        ax.plot(per_step["step"], per_step["vault_share_price"], style, color=colour, linewidth=1.8, label=name)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_title("LP share price", fontsize=13, fontweight="bold")
    ax.set_ylabel("USD per share")
    ax.set_xlabel("step (one block)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9, framealpha=0.85)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def comparison_html(run_a: Path, run_b: Path) -> str:
    """The page comparing two run directories (A, then B)."""
    runs = (load_run(Path(run_a)), load_run(Path(run_b)))
    for run in runs:
        if run.summary is None:
            raise FileNotFoundError(f"{run.run_dir} has no readable summary.json: did the run finish?")
    names = (f"A: {runs[0].run_dir.name}", f"B: {runs[1].run_dir.name}")
    rows = []
    for figure in FIGURES:
        a, b = (figure.read(run) for run in runs)
        if a is None and b is None:
            continue  # e.g. attacker profit where neither run has an attacker
        delta, css = _difference(figure, a, b)
        rows.append(f"<tr><td>{_esc(figure.label)}</td><td class='num'>{_esc(_cell(a, figure.show))}</td>"
                    f"<td class='num'>{_esc(_cell(b, figure.show))}</td><td class='num {css}'>{_esc(delta)}</td></tr>")
    verdicts = "".join(f"<div class='banner {severity}'>{_esc(name)}: {_esc(text)}</div>"
                       for name, (severity, text) in zip(names, (verdict(run.summary) for run in runs), strict=True))
    with TemporaryDirectory() as tmp:
        chart = _share_price_chart(runs, names, Path(tmp) / "share-price.png")
        image = embed_png(chart, "LP share price of both runs") if chart is not None else "<p>No steps recorded.</p>"
    scenario = [(run.scenario or {}).get("name", "?") for run in runs]
    title = scenario[0] if scenario[0] == scenario[1] else f"{scenario[0]} / {scenario[1]}"
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>perpsim compare: {_esc(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_esc(title)}<span class='sub'>two runs compared</span></h1>",
        verdicts,
        "<section class='box' id='figures'><h2>Side by side</h2><table><thead><tr><th>figure</th>"
        f"<th class='num'>{_esc(names[0])}</th><th class='num'>{_esc(names[1])}</th><th class='num'>B - A</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>",
        f"<section class='box' id='share-price'>{image}</section>",
        "<section><details><summary>Every summary figure</summary>"
        f"<pre>{_esc(compare_runs(runs[0].run_dir, runs[1].run_dir))}</pre></details></section>",
        "</main></body></html>\n",
    ])


def write_comparison(run_a: Path, run_b: Path, out: Path) -> Path:
    """Write the comparison page to `out` (its folder made if needed); returns `out`."""
    page = comparison_html(run_a, run_b)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


__all__ = ["FIGURES", "attacker_pnl", "comparison_html", "write_comparison"]
