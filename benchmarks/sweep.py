"""Sweep throughput: runs per minute on 1 and 2 workers, local and Ray, and what reusing a
worker's deployment saves against a fresh process per run.

For each executor and worker count it starts the workers, warms each one with a run of its
own (start-up, imports, compiled contracts, first deployment), then times `--runs` runs of
`--scenario` at `--steps` steps through the sweep scheduler: runs per minute, and the
speed-up of 2 workers over 1. Start-up is printed apart: a sweep pays it once. "CPU s/run"
is a run's CPU time in its worker, "cores got" the workers' CPU time over the timed wall
time: on an idle 2-core machine about 1 with one worker and 2 with two; less says that other
work took the rest. It does
`--rounds` rounds of 1 then 2 workers and keeps each one's best: on a shared machine other
work only ever slows a round down.

Then the cost of one run three ways, seed by seed, interleaved:
- a fresh process per run (`python -c` importing perpsim, deploying, running): what a sweep
  would cost without long-lived workers;
- in a warm worker that deploys afresh (its first run of a protocol config);
- in the same worker, reverting to that deployment's snapshot (every later run).

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


def autogroup_note() -> str:
    """Linux's autogroup shares the CPU between sessions, not processes: what a worker gets
    depends on how many other sessions are busy."""
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return ""
    return ("note: the kernel shares CPU between sessions (autogroup); each worker runs in a session of its own, "
            "so while other sessions are busy each gets its share, not a free core") if on else ""


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


def fresh_process_seconds(scenario: str, steps: int, seed: int) -> float:
    """Wall seconds of one run in a new interpreter (what `perpsim run` costs without its report)."""
    with tempfile.TemporaryDirectory(prefix="perpsim-bench-") as tmp:
        code = ("from sim.engine import run_scenario; from sim.scenario import load_scenario; "
                f"run_scenario(load_scenario({scenario!r}).with_overrides(seed={seed}, steps={steps}), "
                f"out_dir={str(Path(tmp) / 'run')!r}, report=False, progress=False)")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start


def one_run_three_ways(scenario: str, steps: int, seeds: int, warm: SweepPlan) -> dict[str, list[float]]:
    """Per seed, interleaved so that load drifts touch all three alike: a fresh process; a warm
    worker deploying afresh; the same worker reverting to that deployment's snapshot."""
    plan = make_plan(scenario, seeds=range(seeds), steps=steps)
    times: dict[str, list[float]] = {"fresh process": [], "warm worker, fresh deployment": [],
                                     "warm worker, snapshot reverted": []}
    worker = WorkerState()
    try:
        worker.run(warm.tasks[0])
        for task in plan.tasks:
            times["fresh process"].append(fresh_process_seconds(scenario, steps, task.key.seed))
            worker.drop()
            first, again = worker.run(task), worker.run(task)
            assert (first.deployment, again.deployment) == ("fresh", "reused")
            times["warm worker, fresh deployment"].append(first.wall_seconds)
            times["warm worker, snapshot reverted"].append(again.wall_seconds)
    finally:
        worker.close()
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
    parser.add_argument("--rounds", type=int, default=2,
                        help="1-then-2-worker rounds per executor; the best round of each counts")
    parser.add_argument("--executor", action="append", choices=("local", "ray"), help="default: local and ray")
    parser.add_argument("--fresh", type=int, default=4, help="seeds for the one-run-three-ways comparison")
    args = parser.parse_args(argv)

    plan = make_plan(args.scenario, seeds=range(args.runs), steps=args.steps)
    warm = make_plan(args.scenario, seeds=range(WARM_SEED, WARM_SEED + 2), steps=args.steps)
    print(f"sweep benchmark: {args.scenario}, {args.steps} steps per run, {args.runs} timed runs; "
          f"{os.cpu_count()} cores; {load()}")
    if autogroup_note():
        print(autogroup_note())
    print(f"{'executor':<9} {'round':>5} {'workers':>7} {'start-up s':>10} {'timed s':>8} {'runs/min':>9} "
          f"{'CPU s/run':>9} {'cores got':>9}  load before")
    for name in args.executor or ["local", "ray"]:
        if name == "ray":
            from sim.sweep.ray_executor import start_local_ray

            start_local_ray(2)
        best = {1: 0.0, 2: 0.0}
        ratios = []
        for round_ in range(1, args.rounds + 1):
            rates = {}
            for workers in (1, 2):
                before = load()
                startup, seconds, records = timed_runs(make_executor(name, workers), plan, warm)
                rate = rates[workers] = 60.0 * len(records) / seconds
                best[workers] = max(best[workers], rate)
                cpu = [r.cpu_seconds for r in records]
                print(f"{name:<9} {round_:>5} {workers:>7} {startup:>10.1f} {seconds:>8.1f} {rate:>9.1f} "
                      f"{statistics.median(cpu):>9.2f} {sum(cpu) / seconds:>9.2f}  {before}", flush=True)
            ratios.append(rates[2] / rates[1])
        if name == "ray":
            import ray

            ray.shutdown()
        speedup = best[2] / best[1]
        print(f"  {name}: best runs/min {best[1]:.1f} on 1 worker, {best[2]:.1f} on 2: speed-up {speedup:.2f}x "
              f"(target >= {TARGET_SPEEDUP}x): {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}; round by round: "
              f"{', '.join(f'{r:.2f}x' for r in ratios)}", flush=True)

    before = load()
    times = one_run_three_ways(args.scenario, args.steps, args.fresh, warm)
    print(f"\none {args.scenario} run of {args.steps} steps, median seconds over {args.fresh} seeds ({before}):")
    for label, values in times.items():
        print(f"  {label:<34} {statistics.median(values):6.2f}")
    fresh, deploy, reused = (statistics.median(v) for v in times.values())
    saving = fresh / reused
    print(f"  snapshot reuse against a fresh process: {saving:.2f}x cheaper (target >= {TARGET_REUSE}x): "
          f"{'met' if saving >= TARGET_REUSE else 'NOT met'}; against a fresh deployment in the same worker: "
          f"{deploy / reused:.2f}x")
    print(f"done; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
