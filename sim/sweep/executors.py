"""Where runs execute: `local` worker processes, or Ray actors (`sim.sweep.ray_executor`).

An executor owns N long-lived workers (each a `WorkerState` in its own process). The
scheduler (`sim.sweep.runner`) gives an idle worker one task at a time, and `wait` hands back
what finished: a `RunRecord`, or `None` when the worker died mid-run, in which case the
executor has already put a fresh worker in its place.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from sim.sweep.plan import RunTask
from sim.sweep.worker import RunRecord, WorkerState

EXECUTORS = ("local", "ray")


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


class Executor(ABC):
    """N workers, each running one task at a time."""

    name: str
    workers: int

    @abstractmethod
    def start(self, limit: int | None = None) -> None:
        """Start every worker, at most `limit` of them (no more than there are runs)."""

    @abstractmethod
    def submit(self, worker: int, task: RunTask) -> None:
        """Give idle worker `worker` a task."""

    @abstractmethod
    def wait(self, timeout: float) -> list[tuple[int, RunRecord | None]]:
        """What finished within `timeout` seconds, as (worker, record); record None: the
        worker died during the task (it has been replaced)."""

    @abstractmethod
    def kill(self, worker: int) -> None:
        """Kill a worker's process, as a crash would (tests use it)."""

    @abstractmethod
    def close(self) -> None:
        """Stop every worker, abandoning what they run."""

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------
# local: worker processes on this machine
# ---------------------------------------------------------------------------------------


def lead_own_session() -> None:
    """Make this worker process the leader of a session of its own.

    Linux's autogroup shares the CPU between sessions, not processes: workers left in the
    sweep's session share one session's part of the cores whenever anything else runs
    (measured here: 0.64 of a core for 1 local worker and for 2 alike; Ray's actors, which
    start in the driver's session, the same). A worker already leading one is left as it is."""
    try:
        os.setsid()
    except OSError:
        pass


def _worker_main(conn: Connection, backend: str) -> None:
    """A local worker's loop: receive a task, send back its record, until told to stop.
    Ctrl-C is the parent's to handle: it stops the workers; a worker whose parent is gone
    exits when its pipe closes."""
    lead_own_session()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = WorkerState(backend)
    try:
        while True:
            task = conn.recv()
            if task is None:
                break
            conn.send(state.run(task))
    except (EOFError, BrokenPipeError):
        pass  # the parent went away
    finally:
        state.close()


class _LocalWorker:
    def __init__(self, context: Any, backend: str) -> None:
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(target=_worker_main, args=(child, backend), daemon=True,
                                                    name="perpsim-sweep-worker")
        self.process.start()
        child.close()


class LocalExecutor(Executor):
    """`workers` processes on this machine. They start from a fork server that has imported
    the simulator once (multiprocessing's forkserver, preloaded), so a new worker, or one
    replacing a dead one, starts in a fraction of a second and no worker inherits the parent's
    threads. As with any multiprocessing start method but fork, a script that runs a local
    sweep needs the `if __name__ == "__main__":` guard: each worker imports the main module."""

    name = "local"

    def __init__(self, workers: int | None = None, backend: str = "revm") -> None:
        self.workers = workers or default_workers()
        self.backend = backend
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["sim.sweep.worker", "sim.engine"])
        self._slots: list[_LocalWorker | None] = [None] * self.workers
        self._busy: set[int] = set()

    def start(self, limit: int | None = None) -> None:
        self.workers = min(self.workers, limit or self.workers)
        for i in range(self.workers):
            self._slots[i] = _LocalWorker(self._context, self.backend)

    def _slot(self, worker: int) -> _LocalWorker:
        slot = self._slots[worker]
        if slot is None:
            raise RuntimeError(f"local worker {worker} is not running; start() the executor first")
        return slot

    def submit(self, worker: int, task: RunTask) -> None:
        try:
            self._slot(worker).conn.send(task)
        except (BrokenPipeError, OSError):
            pass  # it died while idle: wait() reports the task as lost
        self._busy.add(worker)

    def wait(self, timeout: float) -> list[tuple[int, RunRecord | None]]:
        watched: dict[Any, int] = {}
        for i in self._busy:
            slot = self._slot(i)
            watched[slot.conn] = i
            watched[slot.process.sentinel] = i
        if not watched:
            return []
        ready = wait(list(watched), timeout)
        done: dict[int, RunRecord | None] = {}
        for handle in ready:
            i = watched[handle]
            if i in done:
                continue
            done[i] = self._receive(i)
        for i in done:
            self._busy.discard(i)
        return list(done.items())

    def _receive(self, worker: int) -> RunRecord | None:
        slot = self._slot(worker)
        try:
            if slot.conn.poll():
                return slot.conn.recv()
        except (EOFError, OSError):
            pass
        self._replace(worker)
        return None

    def _replace(self, worker: int) -> None:
        slot = self._slot(worker)
        slot.process.kill()
        slot.process.join()
        slot.conn.close()
        self._slots[worker] = _LocalWorker(self._context, self.backend)

    def kill(self, worker: int) -> None:
        process = self._slot(worker).process
        if process.pid is not None:
            os.kill(process.pid, signal.SIGKILL)

    def pids(self) -> list[int | None]:
        return [slot.process.pid if slot else None for slot in self._slots]

    def close(self) -> None:
        for i, slot in enumerate(self._slots):
            if slot is None:
                continue
            if i not in self._busy:
                try:
                    slot.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            else:
                slot.process.kill()
        for i, slot in enumerate(self._slots):
            if slot is None:
                continue
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
            self._slots[i] = None
        self._busy.clear()


def make_executor(name: str, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor called `name` ("local" or "ray"); Ray is imported only here."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        from sim.sweep.ray_executor import RayExecutor

        return RayExecutor(workers, address)
    raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
