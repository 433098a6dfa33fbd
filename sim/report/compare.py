"""Summaries as flat rows: `flatten`, `format_value`, and `compare_runs`, which puts two runs'
summaries side by side with their difference (`perpsim compare`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sim.metrics import SUMMARY_FILE


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {"solvency_checks": {"no_deficit": True}} -> "solvency_checks.no_deficit"."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def format_value(value: Any) -> str:
    """A summary value as text: thousands separators for money, enough digits for small numbers."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.2f}"
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _difference(a: Any, b: Any) -> str:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return "" if a == b else "differs"
    diff = b - a
    text = format_value(diff)
    return f"+{text}" if diff > 0 else text


IDENTITY_KEYS = ("scenario", "seed", "backend", "status", "error", "first_block", "last_block")
"""What a run is rather than what it measured: compared as same or differs, never subtracted."""


def _identity(a: Any, b: Any) -> str:
    return "same" if a == b else "differs"


def _metric_rows(summary: dict[str, Any]) -> dict[str, Any]:
    """The comparable part of a summary: everything but the meta and the event counts."""
    return flatten({k: v for k, v in summary.items() if k not in ("meta", "event_counts")})


def compare_runs(run_a: Path, run_b: Path) -> str:
    """The two runs' summaries side by side, with B - A for numbers ("differs" for others); the
    identity fields (scenario, seed, backend, status, ...) read "same" or "differs"."""
    summaries = []
    for run_dir in (Path(run_a), Path(run_b)):
        summary = _read_json(run_dir / SUMMARY_FILE)
        if summary is None:
            raise FileNotFoundError(f"{run_dir / SUMMARY_FILE} is missing or unreadable: did the run finish?")
        summaries.append(_metric_rows(summary))
    a, b = summaries
    keys = list(dict.fromkeys([*a, *b]))
    header = ("metric", f"A: {Path(run_a).name}", f"B: {Path(run_b).name}", "B - A")
    rows = [header] + [(k, format_value(a.get(k)), format_value(b.get(k)),
                        (_identity if k in IDENTITY_KEYS else _difference)(a.get(k), b.get(k))) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
