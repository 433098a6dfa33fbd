"""`perpsim sweep`: the command's body (sim/cli.py declares its options).

Everything the user gave is checked before a worker starts: the seeds, each grid point
against the scenario schema, the output directory, and whether Ray is installed for
`--executor ray`. A problem raises `SweepInputError` (the CLI exits 2 with it).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from sim.sweep.executors import Executor, make_executor
from sim.sweep.plan import SweepInputError, SweepPlan, make_plan, parse_grid, parse_seeds
from sim.sweep.runner import Observer, SweepResult, run_sweep
from sim.sweep.worker import COMPLETE, RunRecord

TERMINAL_FIGURES = {  # risk.parquet column -> its short heading in the terminal's table
    "var95_bad_debt": "VaR95 bad debt", "cvar95_bad_debt": "CVaR95 bad debt", "lar95_liquidations": "LaR95 liq.",
    "p_deficit": "P(deficit)", "p_attacker_profit": "P(attack pays)", "insurance_drawdown_p95": "ins. drawdown p95 %",
    "lp_pnl_p5": "LP PnL p5", "trader_survival": "survival",
}


class ProgressBar(Observer):
    """A rich progress bar on stderr: runs done, failed and remaining, and the ETA."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("failed {task.fields[failed]}  remaining {task.fields[remaining]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(stderr=True))
        self.label = label
        self.task: Any = None
        self.total = 0
        self.done = 0
        self.failed = 0

    def begin(self, total: int) -> None:
        self.total = total
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=total, failed=0, remaining=total)

    def finished(self, record: RunRecord) -> None:
        self.done += 1
        self.failed += record.status != COMPLETE
        self.progress.update(self.task, completed=self.done, failed=self.failed, remaining=self.total - self.done)

    def end(self) -> None:
        self.progress.stop()


def build(scenario: str, *, seeds: str, grid: Sequence[str], steps: int | None, out_dir: Path | None,
          executor: str, workers: int | None, address: str | None, reports: bool) -> tuple[SweepPlan, Path, Executor]:
    """The plan, the output directory and the executor, every input checked."""
    if address and executor != "ray":
        raise SweepInputError(f"--address joins a Ray cluster: it needs --executor ray, not {executor}")
    plan_seeds = parse_seeds(seeds)
    axes = parse_grid(grid)
    out = out_dir or Path("sweeps") / f"{Path(scenario).stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    plan = make_plan(scenario, seeds=plan_seeds, axes=axes, steps=steps, out_dir=out, reports=reports)
    try:
        runner = make_executor(executor, workers, address)
    except ImportError as exc:
        raise SweepInputError(f"--executor {executor}: {exc}") from None
    return plan, out, runner


def main(scenario: str, *, seeds: str, grid: Sequence[str], steps: int | None, out_dir: Path | None, executor: str,
         workers: int | None, address: str | None, reports: bool, resume: bool, progress: bool | None) -> SweepResult:
    """Plan, run and report a sweep, printing what it does."""
    plan, out, runner = build(scenario, seeds=seeds, grid=grid, steps=steps, out_dir=out_dir, executor=executor,
                              workers=workers, address=address, reports=reports)
    click.echo(f"perpsim sweep: {plan.scenario_name}, {len(plan.points)} grid point(s) × {len(plan.seeds)} seed(s) = "
               f"{len(plan.tasks)} runs of {plan.steps} steps on {executor}"
               f"{f' with {runner.workers} workers' if runner.workers else ''}; writing {out}")
    show = sys.stderr.isatty() if progress is None else progress
    observer = ProgressBar(plan.scenario_name) if show else None
    args = sys.argv[sys.argv.index("sweep"):] if "sweep" in sys.argv else []
    command = " ".join(["perpsim", *(shlex.quote(a) for a in args)]) if args else ""
    result = run_sweep(plan, out, runner, resume=resume, observer=observer, meta={"command": command})
    click.echo(outcome_line(result))
    click.echo(risk_text(result.risk))
    click.echo(f"runs: {out / 'runs.parquet'}\nrisk: {out / 'risk.parquet'}\nreport: {result.html}")
    return result


def outcome_line(result: SweepResult) -> str:
    counts = result.counts
    parts = [f"{result.ran} run(s) in {result.wall_seconds:.1f} s ({result.runs_per_minute:.1f} runs/min): "
             f"{counts.get('complete', 0)} complete, {counts.get('failed', 0)} failed, {counts.get('lost', 0)} lost"]
    if result.skipped:
        parts.append(f"{result.skipped} skipped (already done)")
    return "; ".join(parts)


def risk_text(risk: Sequence[dict[str, Any]]) -> str:
    """The risk table's main figures as aligned text, one line per grid point: each figure
    with its bootstrap 95% interval (USD unless marked; sweep.html has them all)."""
    names = [n for n in TERMINAL_FIGURES if any(n in r for r in risk)]
    header = ["grid point", "runs", *(TERMINAL_FIGURES[n] for n in names)]
    lines = [header]
    for row in risk:
        lines.append([row["point"], str(row["complete"]), *(_cell(row, n) for n in names)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def _cell(row: dict[str, Any], name: str) -> str:
    if name not in row:
        return "-"
    return f"{_num(row[name])} [{_num(row[name + '_ci_low'])}, {_num(row[name + '_ci_high'])}]"


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
