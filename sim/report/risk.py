"""The risk-framework section: which of the four risk layers kept which traders alive.

Read from `traders.csv` (sim/traders.py). Disciplined traders are grouped by the layer
combination they had on, behavioural traders by their behaviour; each group gets its
survival rate (never liquidated nor declared bankrupt), median maximum drawdown and median PnL, and the section
states the comparison in words: all four layers against each combination missing one,
each layer alone, none, and each behaviour.
"""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sim.report.charts import DPI, embed_png  # noqa: E402
from sim.report.run import RunData  # noqa: E402
from sim.traders import LAYER_NAMES, LAYERS  # noqa: E402

RISK_FILE = "risk_layers.png"


@dataclass(frozen=True)
class GroupStats:
    """One layer combination (or behaviour) and how its traders fared."""

    name: str
    behaviour: str  # "" for disciplined traders
    layers: tuple[str, ...]
    traders: int
    survived: int
    median_drawdown_pct: float
    median_pnl_pct: float
    stops_fired: int
    stops_slipped: int

    @property
    def survival_rate(self) -> float:
        return self.survived / self.traders if self.traders else 0.0


def _median(values: pd.Series) -> float:
    numbers = [float(v) for v in values if v == v]
    return statistics.median(numbers) if numbers else 0.0


def layer_groups(traders: pd.DataFrame) -> list[GroupStats]:
    """Traders (role "trader") by layer combination, then by behaviour; most layers first."""
    if traders.empty:
        return []
    frame = traders[traders["role"] == "trader"].copy()
    frame["behaviour"] = frame["behaviour"].fillna("").astype(str)
    groups = []
    for (behaviour, layer_name), rows in frame.groupby(["behaviour", "layers"], sort=False):
        layers = tuple(layer for layer in LAYERS if bool(rows[layer].iloc[0]))
        name = str(layer_name) if not behaviour else behaviour if layer_name == "no layers" else f"{behaviour} ({layer_name})"
        groups.append(GroupStats(
            name, str(behaviour), layers, len(rows), int(rows["survived"].astype(bool).sum()),
            _median(rows["max_drawdown_pct"]), _median(rows["pnl_pct"]),
            int(rows["stops_fired"].sum()), int(rows["stops_slipped"].sum())))
    return sorted(groups, key=lambda g: (g.behaviour != "", -len(g.layers), [LAYERS.index(x) for x in g.layers],
                                          g.behaviour))


def _rate(group: GroupStats) -> str:
    return f"{100 * group.survival_rate:.0f}%"


def findings(groups: list[GroupStats]) -> list[str]:
    """The comparison in sentences, for the combinations the run has."""
    disciplined = {g.layers: g for g in groups if not g.behaviour}
    out = []
    full = disciplined.get(LAYERS)
    if full is not None:
        missing = [(LAYER_NAMES[layer], disciplined.get(tuple(x for x in LAYERS if x != layer))) for layer in LAYERS]
        parts = [f"without the {name}, {_rate(g)}" for name, g in missing if g is not None]
        out.append(f"Traders with all four layers survived {_rate(full)} of the time ({full.traders} traders, median "
                   f"drawdown {full.median_drawdown_pct:.1f}%)" + ("; " + "; ".join(parts) if parts else "") + ".")
    singles = [(LAYER_NAMES[layer], disciplined.get((layer,))) for layer in LAYERS]
    singles = [(name, g) for name, g in singles if g is not None]
    if singles:
        out.append("With one layer only: " + ", ".join(f"{name} {_rate(g)}" for name, g in singles) + ".")
    none = disciplined.get(())
    if none is not None:
        out.append(f"With no layer: {_rate(none)} ({none.traders} traders, median drawdown "
                   f"{none.median_drawdown_pct:.1f}%).")
    behavioural = [g for g in groups if g.behaviour]
    if behavioural:
        out.append("Behavioural traders: " + ", ".join(f"{g.name} {_rate(g)}" for g in behavioural) + ".")
    return out


def _esc(value: object) -> str:
    return html.escape(str(value))


def _group_table(groups: list[GroupStats]) -> str:
    head = ("<tr><th>group</th>" + "".join(f"<th class='num'>{_esc(LAYER_NAMES[x])}</th>" for x in LAYERS)
            + "<th class='num'>traders</th><th class='num'>survived</th><th class='num'>survival</th>"
              "<th class='num'>median max drawdown</th><th class='num'>median PnL</th>"
              "<th class='num'>stops fired / slipped</th></tr>")
    rows = []
    for g in groups:
        marks = "".join(f"<td class='num'>{'✓' if x in g.layers else '–'}</td>" for x in LAYERS)
        css = "good" if g.survival_rate == 1 else "bad" if g.survival_rate < 0.5 else "warn"
        rows.append(f"<tr><td>{_esc(g.name)}</td>{marks}<td class='num'>{g.traders}</td><td class='num'>{g.survived}</td>"
                    f"<td class='num {css}'>{_rate(g)}</td><td class='num'>{g.median_drawdown_pct:.1f}%</td>"
                    f"<td class='num'>{g.median_pnl_pct:+.1f}%</td><td class='num'>{g.stops_fired} / {g.stops_slipped}</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _num(value: object, fmt: str, empty: str = "-") -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return empty
    return empty if number != number else format(number, fmt)


def _trader_table(traders: pd.DataFrame) -> str:
    head = ("<tr><th>trader</th><th>layers or behaviour</th><th class='num'>peak risk (notional / equity)</th>"
            "<th class='num'>min margin buffer over maintenance</th><th class='num'>hedge ratio</th>"
            "<th class='num'>stops placed / fired / slipped</th><th class='num'>worst stop slip</th>"
            "<th>liquidated</th><th class='num'>PnL</th><th class='num'>max drawdown</th></tr>")
    rows = []
    for r in traders.to_dict("records"):
        what = r["behaviour"] if isinstance(r["behaviour"], str) and r["behaviour"] else r["layers"]
        liquidated = (("bankrupt, " if r["bankrupt"] else "") + f"step {int(r['first_liquidated_step'])}"
                      if not r["survived"] else "no")
        rows.append(
            f"<tr><td>{_esc(r['label'])}</td><td>{_esc(what)}</td>"
            f"<td class='num'>{_num(r['peak_risk'], '.2f')}×</td>"
            f"<td class='num'>{_num(100 * float(r['min_margin_buffer']) if r['min_margin_buffer'] == r['min_margin_buffer'] else None, '.0f')}%</td>"
            f"<td class='num'>{_num(r['hedge_ratio'], '.2f')}</td>"
            f"<td class='num'>{int(r['stops_placed'])} / {int(r['stops_fired'])} / {int(r['stops_slipped'])}</td>"
            f"<td class='num'>{_num(r['stop_slip_max_pct'], '.2f')}%</td>"
            f"<td class='{'' if r['survived'] else 'bad'}'>{_esc(liquidated)}</td>"
            f"<td class='num'>{_num(r['pnl'], ',.0f')}</td><td class='num'>{_num(r['max_drawdown_pct'], '.1f')}%</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def risk_chart(groups: list[GroupStats], path: Path) -> Path:
    """Survival rate and median maximum drawdown per group, as horizontal bars."""
    names = [g.name for g in groups][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13.0, 0.9 + 0.32 * len(groups)), sharey=True)
    colours = ["#1f77b4" if not g.behaviour else "#e67e22" for g in groups][::-1]
    left.barh(names, [100 * g.survival_rate for g in groups][::-1], color=colours)
    left.set_xlim(0, 100)
    left.set_xlabel("traders never liquidated nor bankrupt (%)")
    right.barh(names, [g.median_drawdown_pct for g in groups][::-1], color=colours)
    right.set_xlabel("median maximum drawdown (% of peak account value)")
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.suptitle("Survival and drawdown by layer combination (blue) and behaviour (orange)", fontsize=11,
                 fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def risk_section(run: RunData) -> str:
    """The section's HTML; empty when the run has no traders table."""
    traders = run.traders
    if traders.empty:
        return ""
    groups = layer_groups(traders)
    parts = ["<section class='box' id='risk'><h2>Risk framework: which layers kept whom alive</h2>"]
    parts += [f"<p class='finding'>{_esc(line)}</p>" for line in findings(groups)]
    if groups:
        parts.append(embed_png(risk_chart(groups, run.run_dir / RISK_FILE), "survival by layer combination"))
        parts.append(_group_table(groups))
    parts.append("<p class='muted'>Layers: size cap (position notional at most max_leverage × equity), margin "
                 "buffer (cut the position when equity nears maintenance), hedge (an opposite position in another "
                 "market), stop-loss (a trigger order keepers execute). Survival: never liquidated nor declared bankrupt. Drawdown: the "
                 "largest fall of equity plus withdrawals from its peak (above 100% when the account ended under "
                 "water). A stop slipped when it filled worse than its trigger.</p>")
    parts.append(f"<details><summary>Every trader ({len(traders)})</summary>{_trader_table(traders)}</details>")
    parts.append("</section>")
    return "\n".join(parts)
