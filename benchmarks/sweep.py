"""Sweep throughput: runs per minute on 1 and 2 workers, local and Ray, and what reusing a
worker's deployment saves against a fresh process per run.

For each executor and worker count it starts the workers, warms each one with a run of its
own (start-up, imports, compiled contracts, first deployment), then times `--runs` runs of
`--scenario` at `--steps` steps through the sweep scheduler: runs per minute, and the
speed-up of 2 workers over 1. Start-up is printed apart: a sweep pays it once.

Then the cost of one run three ways, on one core:
- a fresh process per run (`python -c` importing perpsim, deploying, running): what a sweep
  would cost without long-lived workers;
- in a warm worker that deploys afresh (its first run of a protocol config);
- in a warm worker that reverts to its deployment's snapshot (every later run).

The load average is printed before each figure: other work on the machine depresses them.
Not a test. `python -m benchmarks.sweep` (Ray needs the `cluster` extra; `--executor local`
skips it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.sweep.executors import Executor, LocalExecutor
from sim.sweep.plan import SweepPlan, make_plan
from sim.sweep.runner import Observer, schedule
from sim.sweep.worker import COMPLETE, RunRecord, WorkerState

TARGET_SPEEDUP = 1.8
TARGET_REUSE = 1.4
WARM_SEED = 10_000  # warm-up runs use seeds from here, apart from the timed ones


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f})"


def timed_runs(executor: Executor, plan: SweepPlan, warm: SweepPlan) -> tuple[float, float, list[RunRecord]]:
    """(start-up seconds, timed seconds, records): workers started and warmed, then the plan's runs."""
    records: list[RunRecord] = []
    started = time.perf_counter()
    executor.start()
    try:
        schedule(list(warm.tasks[: executor.workers]), executor, lambda r: None, Observer())
        warmed = time.perf_counter()
        schedule(list(plan.tasks), executor, records.append, Observer())
        done = time.perf_counter()
    finally:
        executor.close()
    bad = [r for r in records if r.status != COMPLETE]
    if bad:
        raise SystemExit(f"{len(bad)} benchmark run(s) failed: {bad[0].error}")
    return warmed - started, done - warmed, records


def fresh_process_seconds(scenario: str, steps: int, seeds: list[int]) -> list[float]:
    """Wall seconds of one run in a new interpreter, per seed (what `perpsim run` costs without its report)."""
    times = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="perpsim-bench-") as tmp:
            code = ("from sim.engine import run_scenario; from sim.scenario import load_scenario; "
                    f"run_scenario(load_scenario({scenario!r}).with_overrides(seed={seed}, steps={steps}), "
                    f"out_dir={str(Path(tmp) / 'run')!r}, report=False, progress=False)")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
    return times


def make_executor(name: str, workers: int) -> Executor:
    if name == "local":
        return LocalExecutor(workers)
    from sim.sweep.ray_executor import RayExecutor

    return RayExecutor(workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="calm")
    parser.add_argument("--steps", type=int, default=50, help="steps per run (calm at reduced size)")
    parser.add_argument("--runs", type=int, default=16, help="timed runs per executor and worker count")
    parser.add_argument("--executor", action="append", choices=("local", "ray"), help="default: local and ray")
    parser.add_argument("--fresh", type=int, default=4, help="runs for the fresh-process baseline")
    args = parser.parse_args(argv)

    plan = make_plan(args.scenario, seeds=range(args.runs), steps=args.steps)
    warm = make_plan(args.scenario, seeds=range(WARM_SEED, WARM_SEED + 2), steps=args.steps)
    print(f"sweep benchmark: {args.scenario}, {args.steps} steps per run, {args.runs} timed runs; "
          f"{os.cpu_count()} cores; {load()}")
    print(f"{'executor':<9} {'workers':>7} {'start-up s':>10} {'timed s':>8} {'runs/min':>9} {'speed-up':>9}  load before")
    reused: list[float] = []
    fresh_deploy: list[float] = []
    for name in args.executor or ["local", "ray"]:
        if name == "ray":
            from sim.sweep.ray_executor import start_local_ray

            start_local_ray(2)
        rates = {}
        for workers in (1, 2):
            before = load()
            startup, seconds, records = timed_runs(make_executor(name, workers), plan, warm)
            rates[workers] = 60.0 * len(records) / seconds
            speedup = f"{rates[2] / rates[1]:.2f}x" if workers == 2 else ""
            print(f"{name:<9} {workers:>7} {startup:>10.1f} {seconds:>8.1f} {rates[workers]:>9.1f} {speedup:>9}  {before}",
                  flush=True)
            if name == "local" and workers == 1:
                reused = [r.wall_seconds for r in records if r.deployment == "reused"]
        if name == "ray":
            import ray

            ray.shutdown()
        speedup = rates[2] / rates[1]
        print(f"  {name}: 2 workers over 1 = {speedup:.2f}x (target >= {TARGET_SPEEDUP}x): "
              f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}")

    # one run three ways; fresh deployments measured in a warm worker, one seed per deployment
    deploy_plan = make_plan(args.scenario, seeds=range(args.fresh), steps=args.steps)
    worker = WorkerState()
    try:
        worker.run(warm.tasks[0])
        for task in deploy_plan.tasks:
            worker.drop()
            fresh_deploy.append(worker.run(task).wall_seconds)
    finally:
        worker.close()
    before = load()
    fresh = fresh_process_seconds(args.scenario, args.steps, list(range(args.fresh)))
    per_fresh, per_deploy, per_reused = (statistics.median(x) for x in (fresh, fresh_deploy, reused))
    print(f"\none {args.scenario} run of {args.steps} steps, median seconds ({before}):")
    print(f"  fresh process per run              {per_fresh:6.2f}")
    print(f"  warm worker, fresh deployment      {per_deploy:6.2f}")
    print(f"  warm worker, snapshot reverted     {per_reused:6.2f}")
    saving = per_fresh / per_reused
    print(f"  snapshot reuse against a fresh process: {saving:.2f}x cheaper (target >= {TARGET_REUSE}x): "
          f"{'met' if saving >= TARGET_REUSE else 'NOT met'}; against a fresh deployment in the same worker: "
          f"{per_deploy / per_reused:.2f}x")
    print(f"done; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
