"""Running a plan: the scheduler, the sweep directory and its outputs.

The scheduler gives each idle worker its next task, preferring one with the protocol config
the worker has deployed, so a worker moves to another config only when its own has no runs
left (and then deploys once). A run whose worker died is retried once; if its worker dies
again it is recorded as `lost`. Every record goes to the `RunStore` as it arrives.

The sweep directory (`--out`):

| file | what |
|---|---|
| `sweep.json` | the sweep: command, scenario and its hash, steps, seeds, grid, executor, status, counts, timing |
| `runs.jsonl` | one line per finished run, flushed as it finishes (what `--resume` reads) |
| `runs.parquet` | one row per run (see `sim.sweep.results`) |
| `risk.parquet` | one row per grid point (see `sim.sweep.risk`) |
| `sweep.html` | charts and the risk table |
| `runs/` | with `--reports` only: each run's own directory and report |
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sim.metrics import write_json
from sim.sweep.executors import Executor
from sim.sweep.plan import RunTask, SweepInputError, SweepPlan
from sim.sweep.report import write_html
from sim.sweep.results import JOURNAL_FILE, RUNS_FILE, RunStore, write_parquet
from sim.sweep.risk import RISK_FILE, risk_rows
from sim.sweep.worker import COMPLETE, FAILED, LOST, RunRecord

SWEEP_FILE = "sweep.json"
MAX_ATTEMPTS = 2  # a run whose worker dies is retried once
DONE_STATUSES = (COMPLETE, FAILED)  # what --resume skips; a lost run is tried again


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C: the workers were stopped and runs.parquet holds every run that finished."""

    def __init__(self, result: SweepResult) -> None:
        super().__init__("sweep interrupted")
        self.result = result


@dataclass
class SweepResult:
    """What a sweep did and where it wrote it."""

    out_dir: Path
    planned: int
    skipped: int  # already done (--resume)
    counts: Counter[str] = field(default_factory=Counter)  # status -> runs, this session
    wall_seconds: float = 0.0
    deployments: Counter[str] = field(default_factory=Counter)  # "fresh"/"reused" -> runs
    rows: list[dict[str, Any]] = field(default_factory=list)
    risk: list[dict[str, Any]] = field(default_factory=list)
    html: Path | None = None

    @property
    def ran(self) -> int:
        return sum(self.counts.values())

    @property
    def runs_per_minute(self) -> float:
        return 60.0 * self.ran / self.wall_seconds if self.wall_seconds else 0.0


class Observer:
    """Hooks the scheduler calls as the sweep goes (the progress bar; tests)."""

    def begin(self, total: int) -> None: ...

    def submitted(self, task: RunTask, worker: int, attempt: int) -> None: ...

    def finished(self, record: RunRecord) -> None: ...

    def end(self) -> None: ...


# ---------------------------------------------------------------------------------------
# The scheduler
# ---------------------------------------------------------------------------------------


class TaskQueue:
    """Pending tasks grouped by protocol config, in plan order."""

    def __init__(self, tasks: list[RunTask]) -> None:
        self.groups: OrderedDict[str, deque[RunTask]] = OrderedDict()
        for task in tasks:
            self.groups.setdefault(task.protocol_key, deque()).append(task)

    def __bool__(self) -> bool:
        return any(self.groups.values())

    def next_for(self, deployed: str | None) -> RunTask:
        """The next task with the config `deployed`, else the first pending one."""
        if deployed is not None and self.groups.get(deployed):
            return self.groups[deployed].popleft()
        for queue in self.groups.values():
            if queue:
                return queue.popleft()
        raise IndexError("no pending task")

    def retry(self, task: RunTask) -> None:
        self.groups.setdefault(task.protocol_key, deque()).appendleft(task)


def schedule(tasks: list[RunTask], executor: Executor, on_record: Callable[[RunRecord], None],
             observer: Observer) -> None:
    """Run every task on the executor's workers; each record goes to `on_record`."""
    queue = TaskQueue(tasks)
    attempts: Counter[str] = Counter()
    deployed: dict[int, str] = {}
    idle = list(range(executor.workers))
    running: dict[int, RunTask] = {}
    while queue or running:
        while idle and queue:
            worker = idle.pop(0)
            task = queue.next_for(deployed.get(worker))
            attempts[task.key.text] += 1
            executor.submit(worker, task)
            running[worker] = task
            deployed[worker] = task.protocol_key
            observer.submitted(task, worker, attempts[task.key.text])
        for worker, record in executor.wait(timeout=0.5):
            task = running.pop(worker)
            idle.append(worker)
            tries = attempts[task.key.text]
            if record is None:  # the worker died mid-run; the executor has replaced it
                deployed.pop(worker, None)
                if tries < MAX_ATTEMPTS:
                    queue.retry(task)
                    continue
                record = RunRecord.of(task, LOST, f"the worker running this run died, {tries} times",
                                      wall_seconds=0.0, worker="", deployment="")
            record.attempts = tries
            on_record(record)
            observer.finished(record)


# ---------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def prepare_out_dir(out_dir: Path, plan: SweepPlan, resume: bool) -> RunStore:
    """The store for `out_dir`: empty for a new sweep, loaded for `--resume`.

    A directory that already holds a sweep is refused without `--resume`, and with it when
    its runs are of another scenario or length (their keys would never match)."""
    store = RunStore(out_dir)
    holds_sweep = any((out_dir / name).exists() for name in (JOURNAL_FILE, RUNS_FILE))
    if not resume:
        if holds_sweep:
            raise SweepInputError(f"--out {out_dir}: it already holds a sweep; add --resume to continue it, "
                                  f"or choose another directory")
        return store
    if not holds_sweep:
        return store
    rows = store.load()
    hashes = sorted({str(row.get("scenario_hash")) for row in rows.values()} - {plan.scenario_hash})
    if hashes:
        raise SweepInputError(f"--resume {out_dir}: its runs are of scenario hash {', '.join(hashes)}, this sweep's is "
                              f"{plan.scenario_hash}: the scenario file or --steps changed since. Use another --out.")
    return store


def run_sweep(plan: SweepPlan, out_dir: Path, executor: Executor, *, resume: bool = False,
              observer: Observer | None = None, meta: dict[str, Any] | None = None) -> SweepResult:
    """Run `plan` on `executor` into `out_dir` and write runs.parquet, risk.parquet and
    sweep.html. With `resume`, runs already done in `out_dir` (complete or failed) are
    skipped. Ctrl-C stops the workers, writes runs.parquet and raises `SweepInterrupted`."""
    out_dir = Path(out_dir)
    observer = observer or Observer()
    store = prepare_out_dir(out_dir, plan, resume)
    store.order = {task.key.text: i for i, task in enumerate(plan.tasks)}
    done = {key for key, row in store.rows.items() if row.get("status") in DONE_STATUSES}
    pending = [t for t in plan.tasks if t.key.text not in done]
    result = SweepResult(out_dir, planned=len(plan.tasks), skipped=len(plan.tasks) - len(pending))
    info = {"status": "running", "started_at": _now(), **(meta or {}), **_plan_meta(plan),
            "executor": executor.name}
    store.open()
    write_json(out_dir / SWEEP_FILE, info)

    def on_record(record: RunRecord) -> None:
        store.add(record)
        result.counts[record.status] += 1
        if record.deployment:
            result.deployments[record.deployment] += 1

    started = time.perf_counter()
    observer.begin(len(pending))
    try:
        if pending:
            with _started(executor, limit=len(pending)) as running:
                info["workers"] = running.workers
                write_json(out_dir / SWEEP_FILE, info)
                schedule(pending, running, on_record, observer)
    except BaseException as exc:
        result.wall_seconds = time.perf_counter() - started
        store.close()
        result.rows = store.sorted_rows()
        interrupted = isinstance(exc, KeyboardInterrupt)
        write_json(out_dir / SWEEP_FILE, {**info, **_counts(result), "finished_at": _now(),
                                          "status": "interrupted" if interrupted else f"stopped: {exc!r}"})
        if interrupted:
            raise SweepInterrupted(result) from None
        raise
    finally:
        observer.end()
    result.wall_seconds = time.perf_counter() - started
    store.close()
    result.rows = store.sorted_rows()
    result.risk = risk_rows(plan, result.rows)
    write_parquet(out_dir / RISK_FILE, result.risk)
    result.html = write_html(out_dir, plan, result.rows, result.risk, info)
    write_json(out_dir / SWEEP_FILE, {**info, **_counts(result), "status": "complete", "finished_at": _now()})
    return result


@contextmanager
def _started(executor: Executor, limit: int) -> Iterator[Executor]:
    try:
        executor.start(limit)
        yield executor
    finally:
        executor.close()


def _plan_meta(plan: SweepPlan) -> dict[str, Any]:
    seeds = plan.seeds
    contiguous = seeds == tuple(range(seeds[0], seeds[-1] + 1)) if seeds else True
    return {"scenario": plan.scenario_name, "source": plan.source, "scenario_hash": plan.scenario_hash,
            "steps": plan.steps, "seeds": f"{seeds[0]}..{seeds[-1]}" if contiguous and seeds else list(seeds),
            "grid": {axis.key: list(axis.values) for axis in plan.axes}, "grid_points": len(plan.points),
            "runs_planned": len(plan.tasks)}


def _counts(result: SweepResult) -> dict[str, Any]:
    return {"runs_skipped": result.skipped, "runs_this_session": dict(result.counts),
            "deployments": dict(result.deployments), "wall_seconds": round(result.wall_seconds, 3),
            "runs_per_minute": round(result.runs_per_minute, 2)}
