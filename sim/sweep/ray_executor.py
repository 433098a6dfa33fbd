"""The `ray` executor: one Ray actor per worker, each a long-lived `WorkerState`.

Imported only for `--executor ray`; Ray is the optional `cluster` extra. With `address`
the sweep joins that cluster (every node needs perpsim installed, and `--reports` needs an
output directory every node can write); without it a local Ray instance starts with one CPU
per worker and no dashboard, and stops when the sweep ends. If this process has already
called `ray.init`, that instance is used and left running.

A worker lost mid-run (its actor's process died, or its node went away) is reported as
`None` by `wait`: a new actor takes its place, and the scheduler retries the run once.
"""

from __future__ import annotations

import logging
import os
from typing import Any

try:
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
except ImportError as exc:  # pragma: no cover - the message is what `perpsim sweep` prints
    raise ImportError("--executor ray needs Ray, the optional `cluster` extra: pip install -e '.[cluster]'") from exc

from sim.sweep.executors import Executor, default_workers, lead_own_session
from sim.sweep.plan import RunTask
from sim.sweep.worker import RunRecord, WorkerState

class SweepActor:
    """A Ray actor holding one worker's state (compiled contracts, deployment, snapshot)."""

    def __init__(self, backend: str) -> None:
        lead_own_session()
        self.state = WorkerState(backend)

    def run(self, task: RunTask) -> RunRecord:
        return self.state.run(task)

    def pid(self) -> int:
        return os.getpid()


def start_local_ray(num_cpus: int) -> None:
    """A local Ray instance for a sweep: `num_cpus` CPUs, no dashboard, quiet logs."""
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning on every start
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local sweep sends nothing anywhere
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             _system_config={"enable_metrics_collection": False})  # no dashboard: no metrics agent to export to


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, backend: str = "revm") -> None:
        self.requested = workers
        self.address = address
        self.backend = backend
        self.workers = workers or 0
        self._owns_ray = False
        self._actor_cls: Any = None
        self._actors: list[Any] = []
        self._running: dict[Any, int] = {}  # ObjectRef -> worker

    def start(self, limit: int | None = None) -> None:
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                start_local_ray(self.requested or default_workers())
            self._owns_ray = True
        if not self.workers:
            self.workers = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self.workers = min(self.workers, limit or self.workers)
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(SweepActor)
        self._actors = [self._new_actor() for _ in range(self.workers)]

    def _new_actor(self) -> Any:
        return self._actor_cls.remote(self.backend)

    def submit(self, worker: int, task: RunTask) -> None:
        self._running[self._actors[worker].run.remote(task)] = worker

    def wait(self, timeout: float) -> list[tuple[int, RunRecord | None]]:
        if not self._running:
            return []
        first, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if not first:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        done = []
        for ref in ready:
            worker = self._running.pop(ref)
            done.append((worker, self._result(ref, worker)))
        return done

    def _result(self, ref: Any, worker: int) -> RunRecord | None:
        try:
            return ray.get(ref)
        except RayTaskError as exc:  # the worker's own code failed outside the run (it catches the run's errors)
            raise RuntimeError(f"sweep worker {worker} failed outside a run: {exc}") from exc
        except (RayActorError, GetTimeoutError, RayError):
            self._replace(worker)
            return None

    def _replace(self, worker: int) -> None:
        try:
            ray.kill(self._actors[worker])
        except RayError:
            pass
        self._actors[worker] = self._new_actor()

    def kill(self, worker: int) -> None:
        ray.kill(self._actors[worker], no_restart=True)

    def close(self) -> None:
        for actor in self._actors:
            try:
                ray.kill(actor)
            except RayError:
                pass
        self._actors, self._running = [], {}
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

