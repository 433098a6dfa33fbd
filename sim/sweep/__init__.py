"""Monte Carlo sweeps: one scenario over many seeds and a parameter grid, summarised as risk.

Takes a scenario (a shipped name or a TOML file), seeds (`--seeds N` or `A..B`), grid axes
over any scenario field (`--grid 'markets.ETH.imf=0.05,0.1,0.2'`, repeatable; their product
is the grid, each point validated against the schema before anything runs), the steps, and
an executor: `local` worker processes on this machine, or `ray` (the optional `cluster`
extra), on a local Ray instance or a cluster it joins.

Gives a sweep directory: `runs.parquet` (one row per run: its key, status, error, wall
time and every summary.json field, flattened), `risk.parquet` (one row per grid point:
VaR95/VaR99/CVaR95 of bad debt, LaR95 of liquidations, P(deficit), P(attacker profit),
insurance drawdown, LP PnL, trader survival, each with a bootstrap 95% interval),
`sweep.html` (histograms, VaR95 heatmaps, the VaR-against-leverage trade-off, the risk
table) and `sweep.json`. Runs reach the chain only through the engine (`run_scenario`) and
the facade (`Protocol` deploy, snapshot, revert).

    plan.py           seeds, grid axes, the validated points, one keyed task per point and seed
    worker.py         a long-lived worker: runs tasks, reuses its deployment through snapshot/revert
    executors.py      local worker processes; ray_executor.py: Ray actors
    runner.py         the scheduler, the sweep directory, --resume, Ctrl-C
    results.py        rows to runs.jsonl / runs.parquet
    risk.py           the risk figures and their bootstrap intervals
    report.py         sweep.html
    command.py        the `perpsim sweep` command's body
"""

from sim.sweep.plan import GridAxis, RunKey, RunTask, SweepInputError, SweepPlan, make_plan, parse_grid, parse_seeds
from sim.sweep.runner import SweepInterrupted, SweepResult, run_sweep

__all__ = [
    "GridAxis", "RunKey", "RunTask", "SweepInputError", "SweepInterrupted", "SweepPlan", "SweepResult", "make_plan",
    "parse_grid", "parse_seeds", "run_sweep",
]
