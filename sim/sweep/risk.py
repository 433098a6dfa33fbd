"""Risk over seeds: one row per grid point, each figure with a bootstrap 95% interval.

Over the grid point's complete runs (failed and lost runs are counted, not used):

| figure | from the summary field | statistic |
|---|---|---|
| `var95_bad_debt`, `var99_bad_debt` | `total_bad_debt` | 95th, 99th percentile (Gauntlet's VaR) |
| `cvar95_bad_debt` | `total_bad_debt` | mean of the runs at or beyond the 95th percentile |
| `lar95_liquidations` | `liquidation_notional` | 95th percentile of liquidated notional (LaR) |
| `p_deficit` | `bad_debt_to_deficit` | share of runs with bad debt the insurance fund could not pay |
| `p_attacker_profit` | `attacker_profit_usd` | share of runs where the attacker made money (scenarios with one) |
| `insurance_drawdown_p50`, `_p95`, `_max` | `insurance_drawdown_pct` | percentiles and maximum |
| `lp_pnl_mean`, `lp_pnl_p5` | `lp_pnl_usd` | mean and 5th percentile |
| `trader_survival` | `trader_survival_rate` | mean |

A figure whose summary field is missing (an older or newer summary) is left out, and
`sweep.html` says so. Percentiles interpolate linearly (numpy's default). Each figure `X`
comes with `X_ci_low` and `X_ci_high`: the 2.5th and 97.5th percentiles of the figure over
`BOOTSTRAP` resamples of the runs with replacement, from a fixed seed, so `risk.parquet` is
the same for the same runs. A wide interval says more seeds are needed.

`max_leverage` (1 / the smallest initial margin fraction of the point's markets) is the
capital-efficiency measure the trade-off chart sets against VaR95.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.sweep.plan import SweepPlan
from sim.sweep.worker import COMPLETE

BOOTSTRAP = 2000
BOOTSTRAP_SEED = 20240312
RISK_FILE = "risk.parquet"

Statistic = Callable[[np.ndarray], np.ndarray]
"""Takes runs along the last axis ((n,) or (resamples, n)) and reduces that axis."""


def _percentile(q: float) -> Statistic:
    return lambda x: np.percentile(x, q, axis=-1)


def _cvar(q: float) -> Statistic:
    def cvar(x: np.ndarray) -> np.ndarray:
        cut = np.percentile(x, q, axis=-1, keepdims=True)
        tail = x >= cut
        return np.sum(np.where(tail, x, 0.0), axis=-1) / np.sum(tail, axis=-1)

    return cvar


def _share_positive(x: np.ndarray) -> np.ndarray:
    return np.mean(x > 0, axis=-1)


def _mean(x: np.ndarray) -> np.ndarray:
    return np.mean(x, axis=-1)


def _max(x: np.ndarray) -> np.ndarray:
    return np.max(x, axis=-1)


@dataclass(frozen=True)
class RiskFigure:
    """One column of the risk table: a statistic of one summary field over seeds."""

    name: str
    field: str
    statistic: Statistic
    label: str
    attacker_only: bool = False


FIGURES: tuple[RiskFigure, ...] = (
    RiskFigure("var95_bad_debt", "total_bad_debt", _percentile(95), "VaR95 bad debt (USD)"),
    RiskFigure("var99_bad_debt", "total_bad_debt", _percentile(99), "VaR99 bad debt (USD)"),
    RiskFigure("cvar95_bad_debt", "total_bad_debt", _cvar(95), "CVaR95 bad debt (USD)"),
    RiskFigure("lar95_liquidations", "liquidation_notional", _percentile(95), "LaR95 liquidated notional (USD)"),
    RiskFigure("p_deficit", "bad_debt_to_deficit", _share_positive, "P(deficit > 0)"),
    RiskFigure("p_attacker_profit", "attacker_profit_usd", _share_positive, "P(attacker profit > 0)", attacker_only=True),
    RiskFigure("insurance_drawdown_p50", "insurance_drawdown_pct", _percentile(50), "insurance drawdown p50 (%)"),
    RiskFigure("insurance_drawdown_p95", "insurance_drawdown_pct", _percentile(95), "insurance drawdown p95 (%)"),
    RiskFigure("insurance_drawdown_max", "insurance_drawdown_pct", _max, "insurance drawdown max (%)"),
    RiskFigure("lp_pnl_mean", "lp_pnl_usd", _mean, "LP PnL mean (USD)"),
    RiskFigure("lp_pnl_p5", "lp_pnl_usd", _percentile(5), "LP PnL p5 (USD)"),
    RiskFigure("trader_survival", "trader_survival_rate", _mean, "trader survival (mean)"),
)
HEADLINE_FIELDS = ("total_bad_debt", "liquidation_notional", "insurance_drawdown_pct", "lp_pnl_usd",
                   "trader_survival_rate", "attacker_profit_usd")


def bootstrap_interval(values: np.ndarray, statistic: Statistic, rng: np.random.Generator,
                       resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """The percentile bootstrap 95% interval of `statistic` over `values`."""
    n = len(values)
    draws = values[rng.integers(0, n, size=(resamples, n))]
    estimates = statistic(draws)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def missing_fields(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Summary fields the risk table needs that no row has."""
    present = {k for row in rows for k, v in row.items() if v is not None}
    return sorted({f.field for f in FIGURES} - present)


def risk_rows(plan: SweepPlan, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per grid point: the point's values, run counts, max leverage, every figure
    whose field the summaries have, each with its interval."""
    by_point: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("scenario_hash") == plan.scenario_hash:
            by_point.setdefault(row["grid_point"], []).append(row)
    out = []
    for point in plan.points:
        runs = by_point.get(point.canonical, [])
        complete = [r for r in runs if r.get("status") == COMPLETE]
        result: dict[str, Any] = {"grid_point": point.canonical, "point": point.label}
        result.update({f"grid.{k}": v for k, v in point.values.items()})
        result.update({"runs": len(runs), "complete": len(complete), "failed": len(runs) - len(complete),
                       "max_leverage": point.max_leverage})
        rng = np.random.default_rng([BOOTSTRAP_SEED, point.index])
        for figure in FIGURES:
            values = [r.get(figure.field) for r in complete]
            if figure.attacker_only and not point.has_attacker:
                continue
            if not values or any(v is None for v in values):
                continue
            x = np.asarray(values, dtype=float)
            result[figure.name] = float(figure.statistic(x))
            result[f"{figure.name}_ci_low"], result[f"{figure.name}_ci_high"] = bootstrap_interval(x, figure.statistic, rng)
        out.append(result)
    return out


def efficient_points(rows: Sequence[dict[str, Any]], risk: str = "var95_bad_debt",
                     efficiency: str = "max_leverage") -> list[int]:
    """Indices of the rows no other row beats: none has lower or equal risk with higher or
    equal efficiency, and one of them strictly (the Pareto front of the trade-off chart)."""
    points = [(i, r[risk], r[efficiency]) for i, r in enumerate(rows) if r.get(risk) is not None]
    front = []
    for i, risk_i, eff_i in points:
        dominated = any((rk <= risk_i and ef >= eff_i) and (rk < risk_i or ef > eff_i) for _, rk, ef in points)
        if not dominated:
            front.append(i)
    return front
