"""The scenario file: its TOML schema, validated in full before anything runs (DESIGN §6).

A scenario embeds the protocol's own config types, so the devnet's deploy script can read
the same file: each `[[markets]]` table is a `MarketConfig` plus a `price` sub-table (the
price process, for `sim.prices.make_process`), `[oracle]` is an `OracleConfig`, and the
top-level `reserve_factor`, `insurance_fund`, `vault_liquidity` and `reporters` are
`ProtocolConfig`'s. Around them: name, description, seed, steps, step_seconds, the agents
(`[[agents]]`: kind from the zoo, count, params for the kind's Config), timed shocks
(`[[shocks]]`) and defences (`[defences]`: flags that set market and oracle parameters).

    name = "calm"
    seed = 7
    steps = 500
    vault_liquidity = 2_000_000.0

    [[markets]]
    name = "ETH"
    skew_scale = 50_000.0
    price = { kind = "gbm", s0 = 2000.0, mu = 0.0, sigma = 0.6 }

    [[agents]]
    kind = "noise_trader"
    count = 20
    params = { trade_probability = 0.2, stop_loss = true }

    [[shocks]]
    kind = "price_jump"
    at_step = 100
    fraction = -0.3

A bad file raises `ScenarioError`, one line per problem, all problems at once, each naming
the file, the field's path (`agents[2].params.leverage`), the value and what was expected.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, field_validator

from sim.agents.zoo import KEEPER_KINDS, ZOO
from sim.prices import PriceProcess, PriceProcessError, Replay, ReplayDataError, make_process
from sim.protocol import MarketConfig, OracleConfig, ProtocolConfig

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Where shipped scenarios live: `load_scenario("calm")` reads `sim/scenarios/calm.toml`."""

_STRICT = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario: where (a field path), the value, what was expected."""

    path: str
    value: Any
    expected: str

    def line(self, source: str) -> str:
        if self.value is _MISSING:
            return f"{source}: {self.path}: missing; expected {self.expected}"
        if isinstance(self.value, (dict, list)) and len(repr(self.value)) > 60:
            return f"{source}: {self.path}: expected {self.expected}"
        return f"{source}: {self.path} = {_show(self.value)}: expected {self.expected}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class ScenarioError(ValueError):
    """A scenario that cannot run: every problem found, one line each, naming the file."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.line(source) for p in problems))


# ---------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------


class MarketSpec(MarketConfig):
    """A `[[markets]]` table: the protocol's MarketConfig, plus the price process that drives
    its true price. `price` may be left out only for a market that a `correlated` process
    on another market names in its `assets`."""

    price: dict[str, Any] | None = Field(None, description="price process for sim.prices.make_process")

    def market_config(self, initial_price: float | None = None, **changes: Any) -> MarketConfig:
        """The MarketConfig to deploy (the price table dropped, defences applied)."""
        data = self.model_dump(exclude={"price"})
        if initial_price is not None:
            data["initial_price"] = initial_price
        data.update(changes)
        return MarketConfig(**data)


class AgentSpec(BaseModel):
    """An `[[agents]]` table: `count` agents of `kind`, each built with `params`."""

    model_config = _STRICT

    kind: str = Field(description="an agent kind from the zoo (perpsim list)")
    count: int = Field(1, ge=1, le=10_000, description="how many agents of this kind")
    params: dict[str, Any] = Field(default_factory=dict, description="fields of the kind's Config")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in ZOO:
            raise ValueError(f"one of the zoo's kinds: {', '.join(ZOO)}")
        return kind


class _Shock(BaseModel):
    model_config = _STRICT

    at_step: int = Field(ge=0, description="step the shock starts in")

    duration: int = 1

    def active(self, step: int) -> bool:
        return self.at_step <= step < self.at_step + self.duration


class PriceJump(_Shock):
    """The true price gaps by `fraction` (-0.3: a 30% fall) in one step."""

    kind: Literal["price_jump"]
    fraction: float = Field(gt=-1, description="price multiplied by 1 + fraction")
    market: str = Field("", description="market whose price jumps; empty: every market")


class OracleFreeze(_Shock):
    """No report lands for `duration` steps: the feed goes stale after max_age."""

    kind: Literal["oracle_freeze"]
    duration: int = Field(ge=1, description="steps")
    market: str = Field("", description="market frozen; empty: every market")


class OracleLag(_Shock):
    """Every reporter reports the price of `lag_blocks` ago for `duration` steps."""

    kind: Literal["oracle_lag"]
    duration: int = Field(ge=1, description="steps")
    lag_blocks: int = Field(ge=1, description="blocks behind")


class ReporterCompromise(_Shock):
    """The first `reporters` reporters report the true price times `factor`."""

    kind: Literal["reporter_compromise"]
    duration: int = Field(ge=1, description="steps")
    reporters: int = Field(ge=1, le=16, description="how many reporters are compromised")
    factor: float = Field(gt=0, description="what they multiply the true price by")


class KeeperOutage(_Shock):
    """Keepers of `kinds` (all keepers by default) do not act for `duration` steps."""

    kind: Literal["keeper_outage"]
    duration: int = Field(ge=1, description="steps")
    kinds: list[str] = Field(default_factory=list, description=f"keeper kinds out; empty: all of {KEEPER_KINDS}")

    @field_validator("kinds")
    @classmethod
    def _keeper_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in KEEPER_KINDS]
        if unknown:
            raise ValueError(f"keeper kinds among {', '.join(KEEPER_KINDS)} (not {', '.join(unknown)})")
        return kinds


class LpRun(_Shock):
    """Every LP agent tries to withdraw `fraction` of its shares, for up to `duration` steps."""

    kind: Literal["lp_run"]
    duration: int = Field(1, ge=1, description="steps the LPs keep trying")
    fraction: float = Field(gt=0, le=1, description="share of its Vault shares each LP withdraws")


class CorrelationSpike(_Shock):
    """Correlated assets switch to their stress correlation for `duration` steps."""

    kind: Literal["correlation_spike"]
    duration: int = Field(ge=1, description="steps")


Shock = Annotated[
    Union[PriceJump, OracleFreeze, OracleLag, ReporterCompromise, KeeperOutage, LpRun, CorrelationSpike],
    Field(discriminator="kind"),
]
SHOCK_KINDS = ("price_jump", "oracle_freeze", "oracle_lag", "reporter_compromise", "keeper_outage", "lp_run",
               "correlation_spike")


class Defences(BaseModel):
    """Protocol defences on or off, each mapped onto market or oracle parameters. A defence
    left out changes nothing; one given overrides every market (or the oracle), and a market
    that sets the same parameter to something else is an error."""

    model_config = _STRICT

    deviation_guard: float | None = Field(
        None, ge=0, lt=1, description="oracle.max_deviation: reject moves beyond this fraction; 0: off")
    breach_timeout: int | None = Field(None, ge=0, description="oracle.breach_timeout, seconds; 0: never accept")
    min_reporters: int | None = Field(None, ge=1, le=16, description="oracle.min_reporters")
    liquidate_when_invalid: bool | None = Field(None, description="every market's liquidate_when_invalid")
    allow_unrealized_withdrawal: bool | None = Field(None, description="every market's allow_unrealized_withdrawal")
    mark_mode: Literal["oracle", "premium", "median"] | None = Field(None, description="every market's mark_mode")

    ORACLE_FIELDS: ClassVar[dict[str, str]] = {"deviation_guard": "max_deviation", "breach_timeout": "breach_timeout",
                     "min_reporters": "min_reporters"}
    MARKET_FIELDS: ClassVar[tuple[str, ...]] = ("liquidate_when_invalid", "allow_unrealized_withdrawal", "mark_mode")

    def oracle_changes(self) -> dict[str, Any]:
        return {target: getattr(self, name) for name, target in self.ORACLE_FIELDS.items()
                if getattr(self, name) is not None}

    def market_changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.MARKET_FIELDS if getattr(self, name) is not None}


_PROTOCOL = ProtocolConfig.model_fields


class Scenario(BaseModel):
    """A whole scenario, validated. Build the protocol's config with `protocol_config()` and
    the price processes with `price_processes()`."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="short name; used in run directory names")
    description: str = Field("", description="what the scenario shows")
    seed: int = Field(0, ge=0, lt=2**63, description="seeds every RNG of the run")
    steps: int = Field(ge=1, description="steps (blocks) to simulate")
    step_seconds: int = Field(12, ge=1, description="seconds between blocks")
    reserve_factor: float = _PROTOCOL["reserve_factor"]
    insurance_fund: float = _PROTOCOL["insurance_fund"]
    vault_liquidity: float = _PROTOCOL["vault_liquidity"]
    reporters: int | None = Field(None, ge=1, le=16, description="whitelisted reporters; default: the oracle_reporter agents")
    markets: list[MarketSpec] = Field(min_length=1, max_length=16)
    oracle: OracleConfig = OracleConfig()
    agents: list[AgentSpec] = Field(default_factory=list)
    shocks: list[Shock] = Field(default_factory=list)
    defences: Defences = Defences()

    _source: Path | None = PrivateAttr(None)

    # -- what the run needs ---------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        """The file this scenario was read from (replay paths are relative to its folder)."""
        return self._source

    @property
    def market_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.markets)

    @property
    def reporter_count(self) -> int:
        """Whitelisted reporters: `reporters`, or one per oracle_reporter agent."""
        if self.reporters is not None:
            return self.reporters
        return max(sum(a.count for a in self.agents if a.kind == "oracle_reporter"), 1)

    def price_processes(self) -> list[PriceProcess]:
        """Fresh price processes, one per `price` table; together they cover every market,
        each asset named after its market."""
        base_dir = self._source.parent if self._source is not None else None
        processes = []
        for i, market in enumerate(self.markets):
            if market.price is not None:
                processes.append(_make_process(market, i, base_dir))
        return processes

    def protocol_config(self) -> ProtocolConfig:
        """What `Protocol.deploy` needs: markets with their first price from the price
        process, defences applied."""
        starts: dict[str, float] = {}
        for process in self.price_processes():
            starts.update(process.prices)
        changes = self.defences.market_changes()
        markets = tuple(m.market_config(starts.get(m.name), **changes) for m in self.markets)
        oracle = self.oracle.model_copy(update=self.defences.oracle_changes())
        return ProtocolConfig(
            markets=markets, oracle=OracleConfig(**oracle.model_dump()), reporters=self.reporter_count,
            reserve_factor=self.reserve_factor, insurance_fund=self.insurance_fund,
            vault_liquidity=self.vault_liquidity,
        )

    def with_overrides(self, *, seed: int | None = None, steps: int | None = None) -> Scenario:
        """The same scenario with another seed or length (command-line overrides)."""
        update: dict[str, Any] = {}
        if seed is not None:
            if not 0 <= seed < 2**63:
                raise ScenarioError("--seed", [Problem("seed", seed, "an integer from 0 to 2**63 - 1")])
            update["seed"] = seed
        if steps is not None:
            if steps < 1:
                raise ScenarioError("--steps", [Problem("steps", steps, "an integer >= 1")])
            update["steps"] = steps
        copy = self.model_copy(update=update)
        copy._source = self._source
        return copy

    def to_toml(self) -> str:
        """The scenario as TOML, every field written out as it was deployed (defaults, each
        market's first price from its price process, defences applied): the scenario as run."""
        data = self.model_dump(mode="json", exclude_none=True)
        config = self.protocol_config()
        for market, deployed in zip(data["markets"], config.markets):
            market.update(deployed.model_dump(mode="json"))
        data["oracle"] = config.oracle.model_dump(mode="json")
        return dumps_toml(data)


# ---------------------------------------------------------------------------------------
# Loading and validating
# ---------------------------------------------------------------------------------------


def shipped_scenarios() -> dict[str, Path]:
    """Shipped scenario names -> files, sorted by name."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def resolve_scenario_path(path_or_name: str | Path) -> Path:
    """A scenario file: the path as given if it exists, else a shipped scenario's name."""
    candidate = Path(path_or_name)
    if candidate.is_file():
        return candidate
    shipped = shipped_scenarios()
    name = str(path_or_name)
    if name in shipped:
        return shipped[name]
    raise ScenarioError(name, [Problem("(file)", name, f"an existing scenario file, or a shipped scenario: {', '.join(shipped)}")])


def load_scenario(path_or_name: str | Path, *, defences: Mapping[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file (or a shipped one by name, e.g. "calm").

    `defences` replaces fields of the file's `[defences]` table before validation (the
    command line's `--defence NAME=VALUE`: the same scenario and seed with a defence flipped).
    Raises ScenarioError listing every problem, each naming the file and the field."""
    path = resolve_scenario_path(path_or_name)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [Problem("(file)", _MISSING, f"valid TOML: {exc}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(source, [Problem("(file)", _MISSING, f"a readable UTF-8 file: {exc}")]) from None
    if defences:
        table = data.get("defences", {})
        data["defences"] = {**table, **defences} if isinstance(table, Mapping) else table
    return validate_scenario(data, source=source, base_dir=path.parent, path=path.resolve())


def parse_defence(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` from the command line: VALUE read as a TOML value (`true`, `0.1`,
    `"median"`), or as a bare string when it is not one (`median`)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ScenarioError("--defence", [Problem("defences", text, f"NAME=VALUE, NAME one of {', '.join(Defences.model_fields)}")])
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return name, value


def validate_scenario(data: Mapping[str, Any], *, source: str = "<scenario>", base_dir: Path | None = None,
                      path: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict (parsed TOML): structure, agent params, then the
    cross-checks (markets named, reporters, prices, defences). All problems at once."""
    problems: list[Problem] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data)
    problems += _agent_param_problems(data)
    if scenario is not None and not problems:
        scenario._source = path
        problems += _cross_check(scenario, base_dir)
    if problems:
        raise ScenarioError(source, problems)
    assert scenario is not None
    return scenario


def _agent_param_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Each agent table's params checked against its kind's Config (the kind itself is
    checked by the schema)."""
    problems: list[Problem] = []
    agents = data.get("agents")
    if not isinstance(agents, list):
        return problems
    for i, spec in enumerate(agents):
        if not isinstance(spec, Mapping) or spec.get("kind") not in ZOO:
            continue
        params = spec.get("params", {})
        if not isinstance(params, Mapping):
            continue
        config_cls = ZOO[spec["kind"]].Config
        try:
            TypeAdapter(config_cls).validate_python(dict(params))
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(_problem(("agents", i, "params", *err["loc"]), err, config_cls))
    return problems


def _cross_check(s: Scenario, base_dir: Path | None) -> list[Problem]:
    """What the schema alone cannot see: names that must exist, counts that must agree."""
    problems: list[Problem] = []
    markets = s.market_names
    if len(set(markets)) != len(markets):
        problems.append(Problem("markets", list(markets), "unique market names"))
    reporter_agents = sum(a.count for a in s.agents if a.kind == "oracle_reporter")
    if reporter_agents == 0:
        problems.append(Problem("agents", [a.kind for a in s.agents],
                                "at least one oracle_reporter agent (prices reach the chain only through reporters)"))
    elif s.reporters is not None and s.reporters != reporter_agents:
        problems.append(Problem("reporters", s.reporters,
                                f"{reporter_agents}, the number of oracle_reporter agents (each whitelisted reporter is one agent)"))
    if reporter_agents > 16:
        problems.append(Problem("agents", reporter_agents, "at most 16 oracle_reporter agents (the Oracle's whitelist)"))
    for i, spec in enumerate(s.agents):
        cls = ZOO[spec.kind]
        config = cls.Config(**spec.params)
        check = getattr(cls, "check_config", None)
        if check is not None:
            for field, value, expected in check(config, markets):
                problems.append(Problem(f"agents[{i}].params.{field}", value, expected))
        if spec.kind == "manipulator" and config.reporters_bribed > s.reporter_count:  # type: ignore[attr-defined]
            problems.append(Problem(f"agents[{i}].params.reporters_bribed", config.reporters_bribed,  # type: ignore[attr-defined]
                                    f"at most the {s.reporter_count} reporters there are"))
    problems += _shock_problems(s)
    problems += _price_problems(s, base_dir)
    problems += _defence_problems(s, check_deployable=not problems)
    return problems


def _shock_problems(s: Scenario) -> list[Problem]:
    problems: list[Problem] = []
    has_correlated = any(m.price is not None and m.price.get("kind") == "correlated" for m in s.markets)
    for i, shock in enumerate(s.shocks):
        where = f"shocks[{i}]"
        if shock.at_step >= s.steps:
            problems.append(Problem(f"{where}.at_step", shock.at_step, f"a step before the end (steps = {s.steps})"))
        market = getattr(shock, "market", "")
        if market and market not in s.market_names:
            problems.append(Problem(f"{where}.market", market, f"one of the markets {list(s.market_names)} (or empty: all)"))
        if isinstance(shock, ReporterCompromise) and shock.reporters > s.reporter_count:
            problems.append(Problem(f"{where}.reporters", shock.reporters, f"at most the {s.reporter_count} reporters there are"))
        if isinstance(shock, CorrelationSpike) and not has_correlated:
            problems.append(Problem(f"{where}.kind", shock.kind, "a scenario with a correlated price process"))
    return problems


def _price_problems(s: Scenario, base_dir: Path | None) -> list[Problem]:
    """Every market gets its price from exactly one process; every process builds."""
    problems: list[Problem] = []
    covered: dict[str, str] = {}
    for i, market in enumerate(s.markets):
        where = f"markets[{i}].price"
        if market.price is None:
            continue
        if market.price.get("kind") == "correlated":
            assets = market.price.get("assets")
            names = list(assets) if isinstance(assets, Mapping) else []
            if names and market.name not in names:
                problems.append(Problem(f"{where}.assets", names, f"a table that includes this market, {market.name!r}"))
            for name in names:
                if name not in s.market_names:
                    problems.append(Problem(f"{where}.assets.{name}", name, f"market names ({list(s.market_names)})"))
                elif name in covered:
                    problems.append(Problem(f"{where}.assets.{name}", name, f"a market not already priced by {covered[name]}"))
                else:
                    covered[name] = where
        else:
            if "asset" in market.price:
                problems.append(Problem(f"{where}.asset", market.price["asset"],
                                        f"no asset field: the asset is the market's name, {market.name!r}"))
            covered.setdefault(market.name, where)
        try:
            process = _make_process(market, i, base_dir)
        except (PriceProcessError, ReplayDataError) as exc:
            problems.append(_price_error(exc, where))
            continue
        if isinstance(process, Replay) and not process.hold_at_end:
            needed = s.steps * s.step_seconds
            if needed > process.duration_seconds:
                problems.append(Problem(f"{where}.path", market.price.get("path"),
                                        f"a series covering {s.steps} steps of {s.step_seconds} s ({needed:g} s; it covers "
                                        f"{process.duration_seconds:g} s), or hold_at_end = true"))
        if market.name in process.prices and "initial_price" in market.model_fields_set:
            start = process.prices[market.name]
            if not math.isclose(start, market.initial_price, rel_tol=1e-9):
                problems.append(Problem(f"markets[{i}].initial_price", market.initial_price,
                                        f"the price process's first price {start:g}, or no initial_price"))
    for i, market in enumerate(s.markets):
        if market.name not in covered:
            problems.append(Problem(f"markets[{i}].price", _MISSING,
                                    "a price table (or this market among a correlated process's assets)"))
    return problems


def _price_error(exc: Exception, where: str) -> Problem:
    if isinstance(exc, PriceProcessError):
        field = exc.field if exc.field.startswith(where) else f"{where}.{exc.field}"
        return Problem(field, exc.value if exc.value is not None else _MISSING, exc.expected)
    return Problem(where, _MISSING, f"a usable replay series: {exc}")


def _make_process(market: MarketSpec, index: int, base_dir: Path | None) -> PriceProcess:
    config = dict(market.price or {})
    if config.get("kind") in ("gbm", "jump") and "s0" not in config:
        config["s0"] = market.initial_price
    process = make_process(config, where=f"markets[{index}].price", asset=market.name, base_dir=base_dir)
    return process


def _defence_problems(s: Scenario, check_deployable: bool) -> list[Problem]:
    problems: list[Problem] = []
    for field, value in s.defences.market_changes().items():
        for i, market in enumerate(s.markets):
            if field in market.model_fields_set and getattr(market, field) != value:
                problems.append(Problem(f"markets[{i}].{field}", getattr(market, field),
                                        f"{_show(value)} as [defences] sets it, or leave it to [defences]"))
    for field, target in Defences.ORACLE_FIELDS.items():
        value = getattr(s.defences, field)
        if value is not None and target in s.oracle.model_fields_set and getattr(s.oracle, target) != value:
            problems.append(Problem(f"oracle.{target}", getattr(s.oracle, target),
                                    f"{_show(value)} as [defences].{field} sets it, or leave it to [defences]"))
    if check_deployable and not problems:
        try:
            s.protocol_config()
        except (ValidationError, ValueError) as exc:
            problems.append(Problem("markets", _MISSING, f"a deployable protocol config: {exc}"))
    return problems


# -- turning pydantic's errors into problems ------------------------------------------------

_MODEL_AT: dict[str, type[BaseModel]] = {"markets": MarketSpec, "agents": AgentSpec, "oracle": OracleConfig,
                                         "defences": Defences}
_SHOCK_MODELS: dict[str, type[BaseModel]] = {
    "price_jump": PriceJump, "oracle_freeze": OracleFreeze, "oracle_lag": OracleLag,
    "reporter_compromise": ReporterCompromise, "keeper_outage": KeeperOutage, "lp_run": LpRun,
    "correlation_spike": CorrelationSpike,
}


def _pydantic_problems(exc: ValidationError, data: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        owner: type = Scenario
        if loc and loc[0] in ("oracle", "defences"):
            owner = _MODEL_AT[str(loc[0])]
        elif len(loc) >= 2 and loc[0] in ("markets", "agents"):
            owner = _MODEL_AT[str(loc[0])]
        if len(loc) >= 3 and loc[0] == "shocks" and loc[2] in _SHOCK_MODELS:
            owner = _SHOCK_MODELS[str(loc[2])]
            loc = loc[:2] + loc[3:]  # drop the discriminator's tag
        problems.append(_problem(loc, err, owner))
    return problems


def _problem(loc: tuple[Any, ...], err: Mapping[str, Any], owner: type | None) -> Problem:
    path = _path(loc)
    kind = err["type"]
    if kind == "missing":
        return Problem(path, _MISSING, "a value (it is required)")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = _field_names(owner)
        hint = _suggest(str(loc[-1]), allowed)
        listing = f": {', '.join(allowed)}" if allowed else ""
        return Problem(path, err.get("input"), f"a known field{hint}, not this unknown one{listing}")
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return Problem(path + ".kind" if kind == "union_tag_invalid" else path,
                       err.get("input", {}).get("kind", _MISSING) if isinstance(err.get("input"), Mapping) else _MISSING,
                       f"a shock kind: {', '.join(SHOCK_KINDS)}")
    return Problem(path, err.get("input", _MISSING), _expected(err["msg"]))


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _expected(message: str) -> str:
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    return message[:1].lower() + message[1:]


def _field_names(owner: type | None) -> list[str]:
    """The fields a model or pydantic dataclass accepts, for "no such field" messages."""
    if owner is None:
        return []
    return list(getattr(owner, "model_fields", None) or getattr(owner, "__pydantic_fields__", None) or {})


def _suggest(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------------------
# Writing TOML (the scenario as run, into the run directory)
# ---------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")


def dumps_toml(data: Mapping[str, Any]) -> str:
    """TOML for a scenario-shaped dict: scalars first, then tables, then arrays of tables
    (whose nested tables are written inline). Round-trips through tomllib."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, table in tables:
        lines += ["", f"[{_key(key)}]"] + [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{_key(key)}]]"] + [f"{_key(k)} = {_value(v)}" for k, v in item.items()]
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != json.loads(json.dumps(data)):
        raise RuntimeError("the scenario TOML writer did not round-trip; this is a bug in sim/scenario.py")
    return text


__all__ = [
    "SCENARIO_DIR", "SHOCK_KINDS", "AgentSpec", "CorrelationSpike", "Defences", "KeeperOutage",
    "LpRun", "MarketSpec", "OracleFreeze", "OracleLag", "PriceJump", "Problem", "ReporterCompromise", "Scenario",
    "ScenarioError", "Shock", "dumps_toml", "load_scenario", "parse_defence", "resolve_scenario_path", "shipped_scenarios",
    "validate_scenario",
]
