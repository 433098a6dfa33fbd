"""What a sweep runs: seeds, grid axes, and every (grid point, seed) as a keyed task.

`--grid KEY=V1,V2,...` names any scenario field by its dotted path. List entries are picked
by index or by what names them: `markets.ETH.imf` (a market by its `name`),
`agents.noise_trader.count` (an agent table by its `kind`, when only one has it),
`agents[1].count`, `shocks.0.fraction`. Values are read as TOML values (`0.1`, `true`,
`"median"`), or as bare strings when they are not one.

`make_plan` applies each grid point to the scenario file's own table and validates it with
the scenario's validator, point by point, before anything runs: a key that does not exist or a
value out of range is a `SweepInputError` naming the grid key, the point and the field.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.agents.zoo import ZOO
from sim.scenario import Scenario, ScenarioError, resolve_scenario_path, validate_scenario

MAX_SEEDS = 1_000_000


class SweepInputError(ValueError):
    """A sweep that cannot start: bad seeds, a bad grid key or value, a bad option."""


@dataclass(frozen=True)
class GridAxis:
    """One `--grid` option: a dotted key and the values it takes, in the order given."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class RunKey:
    """What identifies a run across sweeps (and what `--resume` matches on)."""

    scenario_hash: str
    grid_point: str  # canonical JSON of the point's {key: value}; "{}" without a grid
    seed: int

    @property
    def text(self) -> str:
        return f"{self.scenario_hash}/{self.grid_point}/{self.seed}"


@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: its assignments, the validated scenario they give, and what the
    sweep needs to know of its protocol (read once, when the point is planned)."""

    index: int
    values: dict[str, Any]
    scenario: Scenario
    protocol_key: str  # equal for points that deploy the same protocol: one deployment serves them
    max_leverage: float  # capital efficiency: the highest leverage a market allows (1 / initial margin)
    has_attacker: bool
    label: str  # for tables and charts: "imf=0.1, deviation_guard=0"

    @classmethod
    def of(cls, index: int, values: dict[str, Any], scenario: Scenario, short: dict[str, str]) -> GridPoint:
        config = scenario.protocol_config()
        label = ", ".join(f"{short[k]}={_show(v)}" for k, v in values.items()) or "(no grid)"
        return cls(index, values, scenario, config.model_dump_json(), max(1.0 / m.imf for m in config.markets),
                   any(ZOO[a.kind].role == "manipulator" for a in scenario.agents), label)

    @property
    def canonical(self) -> str:
        return json.dumps(self.values, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class RunTask:
    """One run: a grid point at a seed. `scenario` has the point and the seed applied."""

    key: RunKey
    point: int  # GridPoint.index
    scenario: Scenario
    protocol_key: str
    run_dir: str | None  # keep the run directory here (--reports); None: a scratch directory
    reports: bool

    @property
    def name(self) -> str:
        return f"point-{self.point}-seed-{self.key.seed}"


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep will run, in order (grid point by grid point, then seed)."""

    source: str
    scenario_name: str
    scenario_hash: str
    steps: int
    seeds: tuple[int, ...]
    axes: tuple[GridAxis, ...]
    points: tuple[GridPoint, ...]
    tasks: tuple[RunTask, ...]


# ---------------------------------------------------------------------------------------
# Parsing the options
# ---------------------------------------------------------------------------------------


def parse_seeds(text: str) -> tuple[int, ...]:
    """`N` (seeds 0 to N-1) or `A..B` (A to B, both included)."""
    text = text.strip()
    first, sep, last = text.partition("..")
    try:
        if sep:
            lo, hi = int(first), int(last)
        else:
            lo, hi = 0, int(text) - 1
    except ValueError:
        raise SweepInputError(f"--seeds {text}: expected N (seeds 0 to N-1) or A..B (A to B, both included)") from None
    if lo < 0 or hi < lo or hi >= 2**63:
        raise SweepInputError(f"--seeds {text}: expected at least one seed, each from 0 to 2**63 - 1"
                              + (", N >= 1" if not sep else ", A <= B"))
    if hi - lo + 1 > MAX_SEEDS:
        raise SweepInputError(f"--seeds {text}: {hi - lo + 1:,} seeds; at most {MAX_SEEDS:,} per sweep")
    return tuple(range(lo, hi + 1))


def parse_grid(options: Sequence[str]) -> tuple[GridAxis, ...]:
    """`--grid KEY=V1,V2,...` options as axes; a key given twice is an error."""
    axes: list[GridAxis] = []
    for option in options:
        key, sep, raw = option.partition("=")
        key = _normal_key(key)
        if not sep or not key or not raw.strip():
            raise SweepInputError(f"--grid {option!r}: expected KEY=V1,V2,... e.g. --grid 'markets.ETH.imf=0.05,0.1'")
        if key == "seed":
            raise SweepInputError(f"--grid {option!r}: seeds are the sweep's own axis; give them with --seeds")
        if any(a.key == key for a in axes):
            raise SweepInputError(f"--grid {option!r}: {key} is already a grid key; give its values in one --grid")
        values = tuple(_parse_value(v) for v in _split_values(raw))
        if len(set(map(_canonical, values))) != len(values):
            raise SweepInputError(f"--grid {option!r}: a value is repeated")
        axes.append(GridAxis(key, values))
    return tuple(axes)


def _normal_key(key: str) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", key.strip()).strip(".")


def _split_values(raw: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes (a value may be a TOML array)."""
    parts, depth, quote, current = [], 0, "", ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


# ---------------------------------------------------------------------------------------
# Applying a grid point to the scenario's table
# ---------------------------------------------------------------------------------------


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` (dotted, list entries by index, name or kind) in the scenario table `data`.

    Tables on the way are created when missing (`defences.deviation_guard` in a file with no
    `[defences]`); whether the field exists is the schema's to say, when the point is
    validated. A list entry that does not exist is an error here."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, here)]
        elif isinstance(node, dict):
            if part not in node:
                node[part] = [] if _is_list_field(parts[:depth + 1]) else {}
            node = node[part]
        else:
            raise SweepInputError(f"--grid {key}: {'.'.join(parts[:depth])} is a value ({node!r}), not a table")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SweepInputError(f"--grid {key}: {'.'.join(parts[:-1])} is a value ({node!r}), not a table")


def _is_list_field(parts: list[str]) -> bool:
    return len(parts) == 1 and parts[0] in ("markets", "agents", "shocks")


def _list_index(items: list[Any], token: str, where: str) -> int:
    """A list entry by index, or by the `name` (markets) or `kind` (agents, shocks) naming it."""
    if token.isdigit():
        index = int(token)
        if index >= len(items):
            raise SweepInputError(f"--grid: {where}: no entry {index}; the scenario has {len(items)}")
        return index
    matches = [i for i, item in enumerate(items)
               if isinstance(item, Mapping) and token in (item.get("name"), item.get("kind"))]
    if len(matches) == 1:
        return matches[0]
    names = [str(item.get("name", item.get("kind"))) for item in items if isinstance(item, Mapping)]
    if not matches:
        raise SweepInputError(f"--grid: {where}: no entry named {token!r}; the scenario has "
                              f"{', '.join(names) or 'none'} (or give an index)")
    raise SweepInputError(f"--grid: {where}: {len(matches)} entries are {token!r} (at {matches}); give an index")


# ---------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------


def read_scenario_table(path_or_name: str) -> tuple[Path, dict[str, Any]]:
    """The scenario file and its parsed TOML table (the grid edits this, then validates)."""
    try:
        path = resolve_scenario_path(path_or_name)
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except ScenarioError as exc:
        raise SweepInputError(str(exc)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SweepInputError(f"{path_or_name}: cannot read the scenario: {exc}") from None


def make_plan(path_or_name: str, *, seeds: Sequence[int], axes: Sequence[GridAxis] = (), steps: int | None = None,
              out_dir: Path | None = None, reports: bool = False) -> SweepPlan:
    """Every grid point validated, then one task per point and seed.

    Raises `SweepInputError` listing every problem, each with the grid point it is in, before
    anything runs."""
    path, table = read_scenario_table(path_or_name)
    if steps is not None:
        table["steps"] = steps
    base = _validate(table, path, label="")
    scenario_hash = _scenario_hash(base)
    points: list[GridPoint] = []
    short = short_keys([axis.key for axis in axes])
    problems: dict[str, list[str]] = {}
    for index, combo in enumerate(itertools.product(*(axis.values for axis in axes))):
        values = {axis.key: value for axis, value in zip(axes, combo, strict=True)}
        data = deepcopy(table)
        for key, value in values.items():
            set_path(data, key, value)
        label = ", ".join(f"{k}={_show(v)}" for k, v in values.items())
        try:
            points.append(GridPoint.of(index, values, _validate(data, path, label), short))
        except ScenarioError as exc:
            for line in str(exc).splitlines():
                problems.setdefault(line, []).append(label)
    if problems:
        lines = [f"{line}" + (f" (and {len(where) - 1} more grid points)" if len(where) > 1 else "")
                 for line, where in problems.items()]
        raise SweepInputError(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the grid:\n" + "\n".join(lines))
    tasks = []
    for point in points:
        for seed in seeds:
            key = RunKey(scenario_hash, point.canonical, seed)
            task_dir = None
            if reports and out_dir is not None:
                task_dir = str(out_dir / "runs" / f"point-{point.index}-seed-{seed}")
            tasks.append(RunTask(key, point.index, _with_seed(point.scenario, seed), point.protocol_key, task_dir,
                                 reports))
    return SweepPlan(str(path), base.name, scenario_hash, base.steps, tuple(seeds), tuple(axes), tuple(points), tuple(tasks))


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key's last part (`imf` for `markets.ETH.imf`), or the whole key where two share it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: part if last.count(part) == 1 else key for key, part in zip(keys, last, strict=True)}


def _with_seed(scenario: Scenario, seed: int) -> Scenario:
    """The validated point at another seed. A seed (checked by `parse_seeds`) cannot make a
    valid scenario invalid, so this skips `with_overrides`' full revalidation, run by run."""
    copy = scenario.model_copy(update={"seed": seed})
    copy._source = scenario._source
    return copy


def _validate(data: dict[str, Any], path: Path, label: str) -> Scenario:
    source = f"{path.name} with {label}" if label else path.name
    return validate_scenario(data, source=source, base_dir=path.parent, path=path.resolve())


def _scenario_hash(scenario: Scenario) -> str:
    """The scenario as run (steps included), its seed left out: seeds are the sweep's own axis."""
    data = scenario.model_dump(mode="json", exclude={"seed"})
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
