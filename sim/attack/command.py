"""`perpsim attack`: the search from the command line, start to finish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sim.attack.executor import Executor, TrialResult
from sim.attack.outputs import write_outputs
from sim.attack.search import Search, SearchResult, progress_bar
from sim.attack.space import AttackInputError, AttackSpace, make_space
from sim.scenario import Problem, Scenario


@dataclass
class AttackRun:
    """A finished search: where it wrote, what it found."""

    out_dir: Path
    space: AttackSpace
    result: SearchResult
    paths: dict[str, Path]


def default_out_dir(scenario: Scenario, root: Path = Path("attacks")) -> Path:
    """`attacks/<scenario>-<timestamp>` (a suffix if that exists already)."""
    base = root / f"{scenario.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_out_dir(out_dir: Path, force: bool) -> None:
    """The output directory must be new or empty, or `force` given."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not force)):
        expected = "a directory, new or empty (or add --force to write over it)"
        raise AttackInputError([Problem("out", str(out_dir), expected, flag="--out")])


def run_attack(scenario: Scenario, *, out_dir: Path | None = None, backend: str = "revm", force: bool = False,
               progress: bool | None = None, **options: Any) -> AttackRun:
    """Check the space, search, shrink, and write the outputs. Raises AttackInputError
    (before any transaction) for a bad option."""
    space = make_space(scenario, **options)
    out_dir = out_dir if out_dir is not None else default_out_dir(scenario)
    check_out_dir(out_dir, force)
    executor = Executor(scenario, space, backend)
    try:
        with progress_bar(space.trials, f"attack {scenario.name}", progress) as advance:
            result = Search(executor, space, advance).run()
        traced: TrialResult = executor.run(result.best.at_step, result.best.moves, trace=True)
    finally:
        executor.close()
    paths = write_outputs(out_dir, scenario, space, result, backend, traced)
    return AttackRun(out_dir, space, result, paths)
