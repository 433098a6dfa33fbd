"""The sweep's run table: `runs.jsonl` as runs finish, `runs.parquet` rewritten from it.

Each finished run is one flat row: the run key (scenario hash, grid point, seed), the grid
point's values as `grid.<key>` columns, status, error, wall time, worker, attempts, whether
the deployment was reused, then every field of the run's `summary.json`, flattened
(`solvency_checks.no_deficit`, `meta.steps`, ...). Summary fields are read generically:
whatever the summary holds becomes a column, so new metrics need no change here. A summary
field whose name is a run column (`seed`, `status`, `error`) is kept as `summary.<name>`.

`runs.jsonl` gets one line per run, flushed as the run finishes, so a killed sweep loses
nothing it finished and `--resume` knows what to skip. `runs.parquet` is rewritten from all
rows atomically (a temporary file, then a rename): at most every few seconds while the
sweep runs, and when it ends or is interrupted, so it is always a whole, readable file.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sim.sweep.worker import RunRecord

RUNS_FILE = "runs.parquet"
JOURNAL_FILE = "runs.jsonl"
RUN_COLUMNS = ("run_key", "scenario_hash", "grid_point", "seed", "status", "error", "wall_seconds", "cpu_seconds",
               "worker", "attempts", "deployment")
GRID_PREFIX = "grid."
SUMMARY_PREFIX = "summary."


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; a list becomes its JSON text (one cell per field)."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(flatten(item, f"{name}."))
        elif isinstance(item, (list, tuple)):
            flat[name] = json.dumps(item, sort_keys=True)
        else:
            flat[name] = item
    return flat


def record_row(record: RunRecord) -> dict[str, Any]:
    """One run as a flat row (see the module doc for the columns)."""
    data = asdict(record)
    summary = data.pop("summary") or {}
    row = {name: data[name] for name in RUN_COLUMNS}
    for key, value in json.loads(record.grid_point).items():
        row[f"{GRID_PREFIX}{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    for key, value in flatten(summary).items():
        row[f"{SUMMARY_PREFIX}{key}" if key in row or key.startswith(GRID_PREFIX) else key] = value
    return row


# ---------------------------------------------------------------------------------------
# Rows to a typed table
# ---------------------------------------------------------------------------------------


def _column_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "null"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int" if all(-(2**63) <= v < 2**63 for v in present) else "str"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "str"


def rows_table(rows: list[dict[str, Any]]) -> Any:
    """A pyarrow Table: columns in first-seen order, each typed by what it holds (bool, int64,
    float64, else string; null when no row has a value); a value missing from a row is null."""
    import pyarrow as pa

    columns = list(dict.fromkeys(key for row in rows for key in row))
    arrays, fields = [], []
    for name in columns:
        values = [row.get(name) for row in rows]
        kind = _column_type(values)
        if kind == "null":
            arrays.append(pa.nulls(len(values)))
        elif kind == "bool":
            arrays.append(pa.array(values, pa.bool_()))
        elif kind == "int":
            arrays.append(pa.array(values, pa.int64()))
        elif kind == "float":
            arrays.append(pa.array([None if v is None else float(v) for v in values], pa.float64()))
        else:
            arrays.append(pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values],
                                   pa.string()))
        fields.append(name)
    return pa.Table.from_arrays(arrays, names=fields) if columns else pa.table({})


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write `rows` to `path` atomically: a reader sees the old file or the new one, whole."""
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(rows_table(rows), tmp)
    os.replace(tmp, path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A parquet file's rows as dicts (nulls as None)."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class RunStore:
    """The rows of one sweep directory, kept in `runs.jsonl` and `runs.parquet`."""

    def __init__(self, out_dir: Path, write_every: float = 5.0) -> None:
        self.out_dir = Path(out_dir)
        self.journal_path = self.out_dir / JOURNAL_FILE
        self.parquet_path = self.out_dir / RUNS_FILE
        self.write_every = write_every
        self.rows: dict[str, dict[str, Any]] = {}  # run_key -> row
        self.order: dict[str, int] = {}  # run_key -> position in runs.parquet (the plan's order)
        self._journal: Any = None
        self._written_at = 0.0
        self._dirty = False

    def load(self) -> dict[str, dict[str, Any]]:
        """Rows already recorded in this directory (for --resume): the journal, else the parquet."""
        rows: dict[str, dict[str, Any]] = {}
        if self.journal_path.exists():
            for line in self.journal_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut short when the sweep was killed
                rows[row["run_key"]] = row
        elif self.parquet_path.exists():
            rows = {row["run_key"]: row for row in read_rows(self.parquet_path)}
        self.rows.update(rows)
        return rows

    def open(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._journal = open(self.journal_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole sweep
        if self.rows and not self.journal_path.stat().st_size:
            self._append(self.rows.values())  # resumed from a parquet alone: the journal starts from it

    def add(self, record: RunRecord) -> dict[str, Any]:
        row = record_row(record)
        self.rows[row["run_key"]] = row
        self._append([row])
        self._dirty = True
        if time.monotonic() - self._written_at >= self.write_every:
            self.write()
        return row

    def _append(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._journal.write(json.dumps(_json_ready(row), sort_keys=False) + "\n")
        self._journal.flush()

    def sorted_rows(self) -> list[dict[str, Any]]:
        """Every row, in the plan's order (rows of runs the plan does not name come last)."""
        last = len(self.order)
        return sorted(self.rows.values(), key=lambda row: self.order.get(row["run_key"], last))

    def write(self) -> None:
        """Rewrite runs.parquet from every row."""
        write_parquet(self.parquet_path, self.sorted_rows())
        self._written_at = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        if self._dirty or not self.parquet_path.exists():
            self.write()
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
