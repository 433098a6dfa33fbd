"""One sweep worker: runs tasks one after another in a long-lived process.

A worker pays its start-up once (interpreter, imports, compiled contracts) and keeps one
deployment: after deploying a protocol config it takes a snapshot through the facade, and a
later run with the same config reverts to it instead of deploying again. The run itself is
`sim.engine.run_scenario` on that chain, exactly as `perpsim run` does it, so a run from a
reverted snapshot gives the same summary as a fresh `perpsim run` (tests/sim/test_sweep.py
checks it). Python-side state lives in objects each run builds afresh (the simulation, its
agents, the recorder); the facade's own caches go back with `Protocol.revert`.

A run that raises becomes a `failed` record with its error; the deployment is dropped, as
the chain may have stopped mid-transaction, and the next run deploys afresh.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.chain import Chain, make_chain
from sim.protocol import Protocol
from sim.sweep.plan import RunTask

COMPLETE = "complete"
FAILED = "failed"  # the run raised; its error is recorded
LOST = "lost"  # the worker process died during the run, twice


@dataclass
class RunRecord:
    """What a sweep keeps of one run: its key, how it ended, and its summary."""

    run_key: str
    scenario_hash: str
    grid_point: str
    seed: int
    status: str
    error: str | None
    wall_seconds: float
    worker: str
    cpu_seconds: float = 0.0  # the worker's CPU time over the run: below wall_seconds, the CPU was shared
    attempts: int = 1
    deployment: str = ""  # "fresh" or "reused" (from the worker's snapshot)
    summary: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, task: RunTask, status: str, error: str | None, **kw: Any) -> RunRecord:
        key = task.key
        return cls(key.text, key.scenario_hash, key.grid_point, key.seed, status, error, **kw)


@dataclass
class _Deployment:
    chain: Chain
    protocol: Protocol
    snapshot: Any
    key: str


class WorkerState:
    """A worker's long-lived state: its deployment and its scratch directory."""

    def __init__(self, backend: str = "revm") -> None:
        self.backend = backend
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.deployment: _Deployment | None = None
        self.scratch = Path(tempfile.mkdtemp(prefix="perpsim-sweep-"))
        self.deployments = 0

    def run(self, task: RunTask) -> RunRecord:
        """Run one task; every exception becomes a `failed` record (the sweep goes on)."""
        started, cpu = time.perf_counter(), time.process_time()
        run_dir = Path(task.run_dir) if task.run_dir else self.scratch / "run"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        reused = "fresh"
        try:
            from sim.engine import run_scenario

            deployment, reused = self._deployment_for(task)
            result = run_scenario(task.scenario, out_dir=run_dir, progress=False, report=task.reports,
                                  chain=deployment.chain, protocol_factory=lambda chain, config: deployment.protocol)
            return RunRecord.of(task, COMPLETE if result.status == "complete" else FAILED, None,
                                wall_seconds=time.perf_counter() - started, worker=self.name, deployment=reused,
                                cpu_seconds=time.process_time() - cpu, summary=result.summary)
        except Exception as exc:  # noqa: BLE001 - recorded with the run, never lost
            self.drop()
            return _failed(task, exc, time.perf_counter() - started, time.process_time() - cpu, self.name, reused,
                           run_dir)
        finally:
            if not task.run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)

    def _deployment_for(self, task: RunTask) -> tuple[_Deployment, str]:
        """The deployment for the task's protocol config: the snapshot reverted to when the
        config is the one deployed, otherwise a fresh chain with the protocol deployed."""
        current = self.deployment
        if current is not None and current.key == task.protocol_key:
            current.protocol.revert(current.snapshot)
            return current, "reused"
        self.drop()
        config = task.scenario.protocol_config()
        chain = make_chain(self.backend)
        protocol = Protocol.deploy(chain, config)
        self.deployment = _Deployment(chain, protocol, protocol.snapshot(), task.protocol_key)
        self.deployments += 1
        return self.deployment, "fresh"

    def drop(self) -> None:
        """Forget the deployment (the next run deploys afresh)."""
        if self.deployment is not None:
            self.deployment.chain.close()
            self.deployment = None

    def close(self) -> None:
        self.drop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _failed(task: RunTask, exc: BaseException, seconds: float, cpu: float, worker: str, deployment: str,
            run_dir: Path) -> RunRecord:
    """A failed run's record: the error, and the partial summary if the recorder wrote one."""
    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    return RunRecord.of(task, FAILED, error, wall_seconds=seconds, cpu_seconds=cpu, worker=worker, deployment=deployment,
                        summary=summary)
