"""The scenario reference, generated from the schema: every field of a scenario file with its
type, default, bounds and description.

    python -m sim.reference > docs/scenario-reference.md     (what `make docs` runs)

The same rows feed `perpsim list --markets --prices --shocks --defences --agents`. Nothing here
is written by hand but the prose around the tables, so the reference cannot drift from the
schema: tests/sim/test_reference.py fails when docs/scenario-reference.md is stale.
"""

from __future__ import annotations

import textwrap
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from types import UnionType
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sim.agents import ZOO
from sim.bounds import MAX_LOG_MOVE_PER_STEP
from sim.protocol import MarketConfig, OracleConfig
from sim.scenario import (
    PRICE_KINDS,
    SHOCK_MODELS,
    AgentSpec,
    AssetParams,
    Defences,
    MarketSpec,
    Scenario,
    dumps_toml,
)
from sim.scenario import _value as toml_value

DOCS_PATH = "docs/scenario-reference.md"


@dataclass(frozen=True)
class FieldRow:
    """One field of a table: what the reference and `perpsim list` show."""

    name: str
    type: str
    default: str  # as TOML; "required" when there is none
    bounds: str
    description: str


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(toml_value(a) for a in args)
    if origin in (typing.Union, UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in args if a is not type(None)):
            return "table"
        return " | ".join(dict.fromkeys(names))
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {_type_name(inner[0])}" if inner else "list"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "table"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(annotation, getattr(
        annotation, "__name__", str(annotation)))


def _constraints(info: FieldInfo) -> list[Any]:
    found = list(info.metadata)
    annotation = info.annotation
    stack = [annotation]
    while stack:
        current = stack.pop()
        if typing.get_origin(current) is typing.Annotated:
            base, *meta = typing.get_args(current)
            found += meta
            stack.append(base)
        elif typing.get_origin(current) in (typing.Union, UnionType):
            stack += list(typing.get_args(current))
    return found


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return repr(value)
    if value == 2**63 - 1:
        return "2^63 - 1"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**10 else f"{value:.4g}"
    return f"{value:g}"


def _bounds(info: FieldInfo) -> str:
    parts = []
    for c in _constraints(info):
        if isinstance(c, annotated_types.Ge):
            parts.append(f">= {_number(c.ge)}")
        elif isinstance(c, annotated_types.Gt):
            parts.append(f"> {_number(c.gt)}")
        elif isinstance(c, annotated_types.Le):
            parts.append(f"<= {_number(c.le)}")
        elif isinstance(c, annotated_types.Lt):
            parts.append(f"< {_number(c.lt)}")
        elif isinstance(c, annotated_types.MinLen) and c.min_length > 0:
            parts.append(f"at least {c.min_length}")
        elif isinstance(c, annotated_types.MaxLen):
            parts.append(f"at most {c.max_length}")
    return ", ".join(dict.fromkeys(parts))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "(none)"
    if isinstance(value, BaseModel):
        return "(the table's defaults)"
    return toml_value(value)


def field_rows(model: type, skip: Iterable[str] = ()) -> list[FieldRow]:
    """The rows of a pydantic model or pydantic dataclass, in declaration order."""
    fields: dict[str, FieldInfo] = dict(getattr(model, "model_fields", None) or model.__pydantic_fields__)
    return [FieldRow(name, _type_name(info.annotation), _default(info), _bounds(info), info.description or "")
            for name, info in fields.items() if name not in skip]


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())


# -- markdown ---------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(rows: list[FieldRow]) -> str:
    lines = ["| field | type | default | bounds | description |", "|---|---|---|---|---|"]
    lines += [f"| `{r.name}` | {_escape(r.type)} | `{_escape(r.default)}` | {_escape(r.bounds)} | {_escape(r.description)} |"
              for r in rows]
    return "\n".join(lines)


def text_table(rows: list[FieldRow], indent: str = "  ") -> str:
    """The rows for a terminal: `name = default  (type; bounds) description`."""
    lines = []
    for r in rows:
        detail = "; ".join(p for p in (r.type, r.bounds) if p)
        lines.append(f"{indent}{r.name} = {r.default}  ({detail}) {r.description}".rstrip())
    return "\n".join(lines)


# -- the sections ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A heading, the prose under it, and its tables (a heading and the rows of each)."""

    title: str
    text: str
    tables: tuple[tuple[str, str, list[FieldRow]], ...]  # (heading, text, rows)


_TOP_SKIP = ("markets", "oracle", "agents", "shocks", "defences")


def top_section() -> Section:
    return Section("Top level", "The file's top-level keys. `markets` is required; the other tables "
                   "(`[oracle]`, `[[agents]]`, `[[shocks]]`, `[defences]`) are described below.",
                   (("", "", field_rows(Scenario, skip=_TOP_SKIP)),))


def markets_section() -> Section:
    return Section(
        "[[markets]]",
        "One table per market (at most 16): the protocol's `MarketConfig` (sim/protocol.py), plus the price process "
        "that drives its true price. Fractions are 0.1 == 10%; bounds are the contracts' (sim/bounds.py).",
        (("", "", field_rows(MarketSpec)),))


def prices_section() -> Section:
    tables = [(f'kind = "{kind}"', _doc(model), field_rows(model, skip=("kind",))) for kind, model in PRICE_KINDS.items()]
    tables.append(("assets of a correlated process", _doc(AssetParams), field_rows(AssetParams)))
    return Section(
        "price = { kind = ... }",
        "A market's `price` table names its process by `kind`; drift and volatility are per year (365 days). "
        "A process starts at its market's `initial_price`: give one or the other, or both equal. "
        f"A random process may not move the price by more than e^{MAX_LOG_MOVE_PER_STEP:g} in one step "
        "(a float's range), which bounds `mu` and `sigma` for long steps.",
        tuple(tables))


def oracle_section() -> Section:
    return Section("[oracle]", "The price feeds' settings, shared by every market (`OracleConfig`).",
                   (("", "", field_rows(OracleConfig)),))


def agents_section() -> Section:
    tables = [("", "", field_rows(AgentSpec))]
    tables += [(f'kind = "{kind}"', f"({cls.role}, acts in the {cls.phase} phase) {_doc(cls)}", field_rows(cls.Config))
               for kind, cls in ZOO.items()]
    return Section("[[agents]]", "Agents by kind, count and `params`, the kind's `Config` fields below. Each agent "
                   "gets its own RNG from the scenario's seed and its index.", tuple(tables))


def shocks_section() -> Section:
    tables = tuple((f'kind = "{kind}"', _doc(model), field_rows(model, skip=("kind",)))
                   for kind, model in SHOCK_MODELS.items())
    return Section("[[shocks]]", "Timed events. Each kind takes only its own fields; a shock must start before "
                   "the last step.", tables)


def defences_section() -> Section:
    return Section("[defences]", _doc(Defences) + " Each can also be set on the command line: "
                   "`perpsim run SCENARIO --defence NAME=VALUE`.", (("", "", field_rows(Defences)),))


def section_text(section: Section) -> str:
    """A section for the terminal (`perpsim list --shocks`, ...)."""
    lines = [section.title, textwrap.fill(section.text, 100, initial_indent="  ", subsequent_indent="  ")]
    for heading, text, rows in section.tables:
        if heading:
            lines += ["", f"  {heading}"]
        if text:
            lines.append(textwrap.fill(text, 100, initial_indent="    ", subsequent_indent="    "))
        lines.append(text_table(rows, "      " if heading else "    "))
    return "\n".join(lines)


SECTIONS = {
    "top": top_section, "markets": markets_section, "prices": prices_section, "oracle": oracle_section,
    "agents": agents_section, "shocks": shocks_section, "defences": defences_section,
}
"""Each section by the `perpsim list` flag that prints it."""


def sections() -> list[Section]:
    return [make() for make in SECTIONS.values()]


# -- the document ---------------------------------------------------------------------------------

EXAMPLE = {
    "name": "two-markets",
    "description": "BTC and ETH move together; ETH gaps -25%, correlations jump, and the keepers are out for an hour.",
    "seed": 11,
    "steps": 600,
    "step_seconds": 12,
    "insurance_fund": 100_000.0,
    "vault_liquidity": 5_000_000.0,
    "markets": [
        {"name": "BTC", "initial_price": 60_000.0, "imf": 0.1, "mmf": 0.05, "skew_scale": 5_000.0, "max_oi": 500.0,
         "price": {"kind": "correlated",
                   "assets": {"BTC": {"s0": 60_000.0, "mu": 0.0, "sigma": 0.5},
                              "ETH": {"s0": 2_000.0, "mu": 0.0, "sigma": 0.7}},
                   "correlation": [[1.0, 0.6], [0.6, 1.0]],
                   "stress_correlation": [[1.0, 0.95], [0.95, 1.0]]}},
        {"name": "ETH", "skew_scale": 100_000.0, "max_oi": 20_000.0},
    ],
    "oracle": {"max_age": 120, "min_reporters": 2},
    "agents": [
        {"kind": "oracle_reporter", "count": 3},
        {"kind": "noise_trader", "count": 10, "params": {"market": "BTC", "collateral": 20_000.0}},
        {"kind": "noise_trader", "count": 10, "params": {"market": "ETH", "order_leverage": 3.0, "long_bias": 0.7}},
        {"kind": "lp", "count": 2, "params": {"deposit": 500_000.0}},
        {"kind": "liquidation_keeper", "count": 2, "params": {"reaction_delay": 2}},
        {"kind": "adl_keeper"},
    ],
    "shocks": [
        {"kind": "price_jump", "at_step": 200, "fraction": -0.25, "market": "ETH"},
        {"kind": "correlation_spike", "at_step": 200, "duration": 100},
        {"kind": "keeper_outage", "at_step": 200, "duration": 300, "kinds": ["liquidation_keeper"]},
    ],
    "defences": {"deviation_guard": 0.3},
}
"""A two-market scenario with a correlated price process, a gap and a keeper outage: the
reference's example (tests/sim/test_reference.py runs it through the validator)."""


def reference_markdown() -> str:
    """docs/scenario-reference.md."""
    out = [
        "# Scenario reference",
        "",
        "<!-- Generated from the schema by `make docs` (python -m sim.reference); do not edit by hand. -->",
        "",
        "A scenario is a TOML file: `perpsim validate FILE` checks it and reports every problem at once, naming the "
        "field, the value and what was expected; `perpsim run FILE` runs it. Every number is bounded: the bounds of "
        "what reaches the contracts are the contracts' own (contracts/modules/bounds.vy and their parameter "
        "checks, mirrored in sim/bounds.py), and the others keep the simulator's arithmetic finite. Numbers are "
        "strict: `true` is not 1, `1` is not `true`, and `inf` and `nan` are refused. A field a table does not "
        "have is an error. The same tables print with `perpsim list --markets --prices --shocks --defences "
        "--agents`.",
        "",
        "## Example",
        "",
        "Two markets priced by one correlated process, a gap in one of them, a correlation spike and a keeper "
        "outage:",
        "",
        "```toml",
        dumps_toml(EXAMPLE).rstrip(),
        "```",
    ]
    for section in sections():
        out += ["", f"## {section.title}", "", section.text]
        for heading, text, rows in section.tables:
            if heading:
                out += ["", f"### {heading}"]
            if text:
                out += ["", text]
            out += ["", markdown_table(rows)]
    return "\n".join(out) + "\n"


def main() -> None:
    print(reference_markdown(), end="")


if __name__ == "__main__":
    main()
