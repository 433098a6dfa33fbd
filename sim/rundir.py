"""A run directory's life: claimed before anything runs, its status kept from the first moment
to the last, and what it lacks said plainly when the run stops early.

`prepare` refuses a directory that holds something (another run's results are never
overwritten without `--force`, and `--force` replaces only a run's own files). `RunStatus`
keeps `status.json` true at every moment, on top of what the recorder writes there:

- `status`: "running" while the process works; "complete" once every step is recorded, the
  summary written and the report drawn (if it was asked for); "partial" when it stopped
  early, Ctrl-C and crashes included;
- `stage`: where it is or where it stopped: "setup" (deployment and funding), "steps",
  "report", "done";
- `error`: why it stopped; `missing`: what a whole run has and this directory lacks (files,
  the steps not run, the report and its charts); `steps_planned`.

`redraw_report` draws the report of any run directory, finished or not (`perpsim report
RUN_DIR`), and marks a run complete whose only missing part was its report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sim.metrics import EVENTS_FILE, STATUS_FILE, STEPS_FILE, SUMMARY_FILE, write_json

SCENARIO_FILE = "scenario.toml"
TRANSACTIONS_FILE = "transactions.json"
REPORT_FILE = "report.html"
DATA_FILES = (SCENARIO_FILE, STEPS_FILE, EVENTS_FILE, SUMMARY_FILE, TRANSACTIONS_FILE)
"""What every finished run directory holds, besides status.json and the report."""
RUN_FILE_SUFFIXES = (".csv", ".json", ".png", ".html", ".toml", ".tmp")
"""What `--force` removes from a run directory it replaces (top level only)."""


class RunDirectoryError(Exception):
    """The run directory cannot be used; the message says why and what to do."""


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_run_directory(path: Path) -> bool:
    """Whether `path` holds (part of) a perpsim run."""
    return path.is_dir() and any((path / name).is_file() for name in (STATUS_FILE, SCENARIO_FILE, STEPS_FILE))


def check_available(run_dir: Path, force: bool = False) -> None:
    """Raise RunDirectoryError unless `run_dir` may take a new run: it is new or empty, or
    `force` and it holds a run (whose files `prepare` will replace)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is a file, not a directory")
    contents = sorted(run_dir.iterdir()) if run_dir.is_dir() else []
    if contents and not force:
        what = _describe(run_dir) if is_run_directory(run_dir) else f"{len(contents)} entries"
        raise RunDirectoryError(f"{run_dir} is not empty (it holds {what}): choose another --out, or pass --force "
                                "to replace the run in it")
    if contents and not is_run_directory(run_dir):
        raise RunDirectoryError(f"{run_dir} is not empty and holds no perpsim run; --force replaces only a run "
                                "directory's files: choose another --out")


def prepare(run_dir: Path, force: bool = False) -> None:
    """Create `run_dir` for a new run. A directory that holds anything is refused, unless
    `force` and it is a run directory: then the files a run writes are removed (and nothing
    else)."""
    check_available(run_dir, force)
    if run_dir.is_dir():
        for path in sorted(run_dir.iterdir()):
            if path.is_file() and path.suffix in RUN_FILE_SUFFIXES:
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def _describe(run_dir: Path) -> str:
    status = read_json(run_dir / STATUS_FILE)
    if not status:
        return "a run without status.json"
    steps = status.get("steps_recorded")
    return f"a {status.get('status', 'unknown')} run of {status.get('meta', {}).get('scenario', '?')}" + (
        f", {steps} steps recorded" if steps is not None else "")


def chart_files() -> list[str]:
    """The PNG files a report draws (one per registered chart)."""
    from sim.report import CHARTS

    return [f"{name}.png" for name in CHARTS]


def missing_outputs(run_dir: Path, steps_planned: int | None, report: bool = True) -> list[str]:
    """What a whole run has and `run_dir` lacks: data files, the steps not run, and (if
    `report`) the report and its charts."""
    missing = [name for name in DATA_FILES if not (run_dir / name).is_file()]
    status = read_json(run_dir / STATUS_FILE)
    recorded = status.get("steps_recorded") or 0
    if steps_planned and recorded < steps_planned:
        missing.append(f"steps {recorded} to {steps_planned - 1} (not run)")
    if not (run_dir / REPORT_FILE).is_file():
        missing.append(REPORT_FILE)
        if (run_dir / STEPS_FILE).is_file():
            missing += [name for name in chart_files() if not (run_dir / name).is_file()]
    return missing


class RunStatus:
    """`status.json` of one run, kept current by the engine around the recorder's writes."""

    def __init__(self, run_dir: Path, steps_planned: int) -> None:
        self.run_dir = run_dir
        self.steps_planned = steps_planned
        self.stage = "setup"

    @property
    def path(self) -> Path:
        return self.run_dir / STATUS_FILE

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into status.json (the recorder's fields are kept)."""
        status = read_json(self.path)
        status.update(fields)
        status["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        status.setdefault("steps_planned", self.steps_planned)
        write_json(self.path, status)
        return status

    def begin(self) -> None:
        write_json(self.path, {"status": "running", "stage": "setup", "error": None, "last_step": None,
                               "steps_recorded": 0, "steps_planned": self.steps_planned, "missing": None})

    def enter(self, stage: str) -> None:
        """The run moves on to `stage` (the recorder may have rewritten the file since)."""
        self.stage = stage
        self.update(status="running", stage=stage)

    def stopped(self, error: str) -> dict[str, Any]:
        """The run stopped early in the current stage."""
        self.update(status="partial", stage=self.stage, error=error)
        return self.update(missing=missing_outputs(self.run_dir, self.steps_planned))

    def done(self, report: bool) -> dict[str, Any]:
        """Every step recorded and the summary written; the report drawn if `report`."""
        self.stage = "done"
        return self.update(status="complete", stage="done", error=None,
                           missing=missing_outputs(self.run_dir, self.steps_planned, report=True))

    @contextmanager
    def drawing_report(self) -> Iterator[None]:
        """Around drawing the report: an interruption or a failure there leaves the run
        partial, saying the report (and which charts) are missing."""
        self.enter("report")
        try:
            yield
        except KeyboardInterrupt:
            self.stopped("interrupted while drawing the report")
            raise
        except Exception as exc:
            self.stopped(f"the report failed: {type(exc).__name__}: {exc}")
            raise


def redraw_report(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Draw the report of `run_dir` (`perpsim report`); return its path and the status after.

    A run whose simulation finished (its summary says complete) and lacked only the report
    becomes complete. A run still marked running is drawn as it is and its status left alone:
    it may be live, or killed without a word."""
    from sim.report import write_report

    if not is_run_directory(run_dir):
        raise RunDirectoryError(f"{run_dir} is not a run directory (no {STATUS_FILE}, {SCENARIO_FILE} or "
                                f"{STEPS_FILE})")
    status = read_json(run_dir / STATUS_FILE)
    path = write_report(run_dir)
    if not status or status.get("status") == "running":
        return path, status
    planned = status.get("steps_planned") or status.get("meta", {}).get("steps")
    missing = missing_outputs(run_dir, planned)
    summary = read_json(run_dir / SUMMARY_FILE)
    fields: dict[str, Any] = {"missing": missing}
    if not missing and summary.get("status") == "complete":
        fields.update(status="complete", stage="done", error=None)
    tracker = RunStatus(run_dir, planned or 0)
    return path, tracker.update(**fields)


__all__ = [
    "DATA_FILES", "REPORT_FILE", "RUN_FILE_SUFFIXES", "SCENARIO_FILE", "TRANSACTIONS_FILE", "RunDirectoryError",
    "RunStatus", "chart_files", "check_available", "is_run_directory", "missing_outputs", "prepare", "read_json", "redraw_report",
]
