"""The headline: the summary's figures that matter, with readable names, units and sensible
precision, each coloured by what it means (bad debt and deficit, not only balanced books),
and the one-line verdict at the top of the report."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Severity = str  # "bad" | "warn" | "good" | ""


def usd(value: float) -> str:
    """Dollars: whole dollars from $1,000, cents below."""
    return f"-${abs(value):,.0f}" if value <= -1000 else f"${value:,.0f}" if value >= 1000 else (
        f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}")


def signed_usd(value: float) -> str:
    return ("+" if value > 0 else "") + usd(value)


def pct(value: float) -> str:
    return f"{value:.1f}%" if abs(value) >= 0.05 or value == 0 else f"{value:.3f}%"


def signed_pct(value: float) -> str:
    return ("+" if value > 0 else "") + pct(value)


def share(value: float) -> str:
    """A fraction (0.667) as a percentage (66.7%)."""
    return pct(100.0 * value)


def count(value: float) -> str:
    return f"{int(value):,}"


def blocks(value: float) -> str:
    return f"{value:,.1f} blocks".replace(".0 blocks", " blocks")


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


@dataclass(frozen=True)
class HeadlineFigure:
    """One row of the headline: a summary key, how it reads, and what colours it."""

    key: str
    label: str
    show: Callable[[Any], str]
    severity: Callable[[Any], Severity] = lambda v: ""
    note: str = ""


def _positive_is(level: Severity) -> Callable[[Any], Severity]:
    return lambda v: level if v and v > 0 else "good"


HEADLINE: tuple[HeadlineFigure, ...] = (
    HeadlineFigure("total_bad_debt", "Bad debt", usd, _positive_is("warn"), "negative equity closed"),
    HeadlineFigure("deficit_at_end", "Deficit left at the end", usd, _positive_is("bad"), "bad debt nobody paid yet"),
    HeadlineFigure("bad_debt_paid_by_insurance", "Paid by the insurance fund", usd),
    HeadlineFigure("adl_deficit_covered", "Covered by ADL", usd),
    HeadlineFigure("insurance_drawdown_pct", "Insurance fund drawdown", pct,
                   lambda v: "bad" if v >= 99.9 else "warn" if v > 0 else "good", "largest fall from its peak"),
    HeadlineFigure("liquidation_count", "Liquidations", count),
    HeadlineFigure("liquidation_notional", "Notional liquidated", usd),
    HeadlineFigure("bankruptcy_count", "Bankruptcies", count, _positive_is("warn"), "fund could not cover"),
    HeadlineFigure("adl_count", "ADL fills", count),
    HeadlineFigure("liquidation_delay_blocks_median", "Keeper delay, median", blocks, note="liquidatable to liquidated"),
    HeadlineFigure("liquidation_delay_blocks_max", "Keeper delay, longest", blocks),
    HeadlineFigure("lp_share_price_change_pct", "LP share price change", signed_pct,
                   lambda v: "bad" if v < 0 else "good"),
    HeadlineFigure("lp_pnl_usd", "LP profit and loss", signed_usd, lambda v: "bad" if v < 0 else "good"),
    HeadlineFigure("traders_bankrupt", "Traders declared bankrupt", count, _positive_is("warn")),
    HeadlineFigure("trader_survival_rate", "Traders never liquidated nor bankrupt", share),
    HeadlineFigure("books_balance", "Books balance, tokens conserved", yes_no, lambda v: "good" if v else "bad"),
)


def headline_rows(summary: dict[str, Any]) -> list[tuple[HeadlineFigure, str, Severity]]:
    """(figure, text, severity) for each headline key the summary has; a missing value reads "-"."""
    rows = []
    for figure in HEADLINE:
        if figure.key not in summary:
            continue
        value = summary[figure.key]
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            rows.append((figure, "-", ""))
        else:
            rows.append((figure, figure.show(value), figure.severity(value)))
    return rows


def verdict(summary: dict[str, Any] | None) -> tuple[Severity, str]:
    """The run in one line, coloured by the worst of: deficit left or books that do not balance
    (bad), bad debt that was paid (warn), none (good)."""
    if not summary:
        return "", "No summary: the run did not reach its end."
    checks = summary.get("solvency_checks") or {}
    broken = [name.replace("_", " ") for name, ok in checks.items() if ok is False and name != "no_deficit"]
    bad_debt = summary.get("total_bad_debt") or 0.0
    deficit = summary.get("deficit_at_end") or 0.0
    paid = summary.get("bad_debt_paid_by_insurance") or 0.0
    adl = summary.get("adl_deficit_covered") or 0.0
    if broken:
        return "bad", f"Solvency check failed: {', '.join(broken)}."
    if deficit > 0:
        return "bad", (f"Deficit left: {usd(deficit)} of {usd(bad_debt)} bad debt is still unpaid at the end "
                       f"(insurance paid {usd(paid)}, ADL {usd(adl)}).")
    if bad_debt > 0:
        return "warn", (f"Bad debt {usd(bad_debt)}, all of it paid: the insurance fund {usd(paid)}, "
                        f"ADL targets {usd(adl)}. No deficit left.")
    return "good", "No bad debt. The books balance and no deficit is left."
