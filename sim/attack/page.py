"""`attack.html`: the search on one page (the report's and the sweep's HTML helpers reused).

The headline (best profit, defences), the profit of every trial, the best plan's timeline
(each action, whether it landed, its gas), and the attacker's marked wealth against steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sim.attack.executor import TrialResult  # noqa: E402
from sim.attack.search import SearchResult  # noqa: E402
from sim.report.charts import usd_axis  # noqa: E402
from sim.report.headline import signed_usd  # noqa: E402
from sim.report.page import CSS, _esc, _table  # noqa: E402
from sim.sweep.report import _figure, _png  # noqa: E402


def profit_chart(result: SearchResult) -> str:
    """Each trial's profit in trial order, the best so far as a line."""
    fig, ax = plt.subplots(figsize=(9, 3))
    profits = [t.result.profit for t in result.trials]
    colours = ["#2ca02c" if p > 0 else "#999999" for p in profits]
    ax.scatter(range(1, len(profits) + 1), profits, s=6, c=colours)
    best, running = [], float("-inf")
    for p in profits:
        running = max(running, p)
        best.append(running)
    ax.plot(range(1, len(best) + 1), best, color="#d62728", lw=1.2, label="best so far")
    ax.axhline(0, color="#444", lw=0.6)
    ax.set_xlabel("trial")
    ax.set_yscale("symlog", linthresh=1000)
    usd_axis(ax.yaxis)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def wealth_chart(traced: TrialResult) -> str:
    fig, ax = plt.subplots(figsize=(9, 2.8))
    steps = [s for s, _ in traced.wealth]
    ax.plot(steps, [w for _, w in traced.wealth], marker="o", color="#1f77b4")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    usd_axis(ax.yaxis)
    return _png(fig)


def write_page(path: Path, record: dict[str, Any], result: SearchResult, traced: TrialResult) -> Path:
    best = record["best"]
    verdict = "bad" if best["profitable"] else "good"
    headline = (f"Best plan: {signed_usd(best['profit_usd'])} after ${best['declared_costs_usd']:,.2f} of declared "
                f"costs, from step {best['at_step']}" if best["moves"] else "No plan made a profit")
    defences = _table(["defence", "as deployed"],
                      [[(_esc(k), ""), (_esc(v), "")] for k, v in record["defences"].items()])
    timeline = _table(["step", "block", "action", "landed", "gas"],
                      [[(str(t["step"]), "num"), (str(t["block"]), "num"), (_esc(t["what"]), ""),
                        ("yes" if t["ok"] else f"no: {_esc(t['reason'])}", "" if t["ok"] else "bad"),
                        (f"{t['gas']:,}", "num")] for t in best["transactions"]], numeric=(0, 1, 4))
    search = record["search"]
    facts = (f"{search['trials_run']} trials ({search['trials']} searched, the rest shrinking the winner), "
             f"{search['trials_per_second']:.1f} trials/s, first profitable plan at trial "
             f"{search['trials_to_first_profit'] or '-'}; seed {search['seed']}")
    body = f"""<main><h1>perpsim attack<span class='sub'>{_esc(record['scenario'])}</span></h1>
<p class='banner {verdict}'>{_esc(headline)}</p>
<p class='desc'>{_esc(facts)}</p>
<section class='grid pair'><div class='box'><h2>The plan</h2><ol>{''.join(f'<li>{_esc(w)}</li>' for w in best['plan'])}
<li>unwind: redeem, close, withdraw, sell back</li></ol>{timeline}</div>
<div class='box'><h2>Defences</h2>{defences}</div></section>
<section>{_figure(profit_chart(result), 'Profit of every trial (after declared costs); red: the best so far')}
{_figure(wealth_chart(traced), "The attacker's marked wealth (wallet, equity, Vault shares, base tokens) "
         "through the best plan, from the step before it")}</section></main>"""
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>perpsim attack: "
                    f"{_esc(record['scenario'])}</title><style>{CSS}</style></head><body>{body}</body></html>")
    return path
