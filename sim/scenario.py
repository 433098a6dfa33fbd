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

import dataclasses
import difflib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, field_validator, model_validator

from sim.agents.zoo import KEEPER_KINDS, ZOO
from sim.bounds import (
    MAX_AGENTS,
    MAX_BASE_UNITS,
    MAX_DRIFT,
    MAX_LOG_JUMP,
    MAX_LOG_MOVE_PER_STEP,
    MAX_DURATION,
    MAX_FACTOR,
    MAX_MARKETS,
    MAX_PARAM,
    MAX_PRICE_USD,
    MAX_RATIO,
    MAX_REPORTERS,
    MAX_STEP_SECONDS,
    MAX_STEPS,
    MAX_USD,
    MAX_VOLATILITY,
    MIN_FIXED_POINT,
    Flag,
    Integer,
    Number,
)
from sim.prices import SECONDS_PER_YEAR, PriceProcess, PriceProcessError, Replay, ReplayDataError, make_process
from sim.protocol import MarketConfig, OracleConfig, ProtocolConfig

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Where shipped scenarios live: `load_scenario("calm")` reads `sim/scenarios/calm.toml`."""

_STRICT = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario: where (a field path), the value, what was expected.

    `flag` names the command-line option that set the value (`--defence`), when one did: the
    line then names the option, not the file."""

    path: str
    value: Any
    expected: str
    flag: str | None = None

    def line(self, source: str) -> str:
        if self.flag is not None:
            name = self.path.rsplit(".", 1)[-1]
            shown = "" if self.value is _MISSING else f"={_show(self.value)}"
            return f"{self.flag} {name}{shown}: expected {self.expected}"
        if self.path == "(file)":
            return f"{source}: expected {self.expected}"
        if self.value is _SYNTAX:
            return f"{source}: {self.path}: {self.expected}"
        if self.value is _MISSING:
            return f"{source}: {self.path}: missing; expected {self.expected}"
        if isinstance(self.value, (dict, list)) and len(repr(self.value)) > 60:
            return f"{source}: {self.path}: expected {self.expected}"
        return f"{source}: {self.path} = {_show(self.value)}: expected {self.expected}"


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_MISSING = _Marker("missing")
_SYNTAX = _Marker("syntax")  # the file is not TOML: `path` is its line and column, `expected` says what


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
# The schema. Every number is bounded where it is declared (sim/bounds.py says how).
# ---------------------------------------------------------------------------------------


class _Table(BaseModel):
    model_config = _STRICT


class AssetParams(_Table):
    """One asset of a `correlated` price process: also written `[s0, mu, sigma]`."""

    s0: Number = Field(ge=MIN_FIXED_POINT, le=MAX_PRICE_USD,
                       description="first price, USD; must equal the market's initial_price if that is given")
    mu: Number = Field(ge=-MAX_DRIFT, le=MAX_DRIFT, description="expected return per year (0.1: +10%)")
    sigma: Number = Field(ge=0, le=MAX_VOLATILITY, description="volatility of log returns per year (0.6: 60%)")


class GbmPrice(_Table):
    """Geometric Brownian motion: log-normal prices, the textbook liquid asset."""

    kind: Literal["gbm"]
    s0: Number | None = Field(None, ge=MIN_FIXED_POINT, le=MAX_PRICE_USD,
                              description="first price, USD; default: the market's initial_price")
    mu: Number = Field(ge=-MAX_DRIFT, le=MAX_DRIFT, description="expected return per year (0.1: +10%)")
    sigma: Number = Field(ge=0, le=MAX_VOLATILITY, description="volatility of log returns per year (0.6: 60%)")


class JumpPrice(GbmPrice):
    """Merton jump diffusion: GBM plus sudden log-normal jumps (crashes, squeezes); `mu`
    stays the expected return, jumps included."""

    kind: Literal["jump"]  # type: ignore[assignment]
    jump_intensity: Number = Field(ge=0, le=MAX_RATIO, description="jumps per year, on average")
    jump_mean: Number = Field(ge=-MAX_LOG_JUMP, le=MAX_LOG_JUMP,
                              description="mean log jump (-0.2: a typical drop of about 18%)")
    jump_std: Number = Field(ge=0, le=MAX_LOG_JUMP, description="standard deviation of the log jump")


Correlation = Annotated[Number, Field(ge=-1, le=1)]


class CorrelatedPrice(_Table):
    """Several GBM assets with correlated moves, and a stress regime (a `correlation_spike`
    shock) whose correlations are nearer 1. Put it on one market; it prices every market it
    names in `assets`, and those markets have no `price` of their own."""

    kind: Literal["correlated"]
    assets: dict[str, AssetParams] = Field(min_length=1, max_length=MAX_MARKETS,
                                           description="market name -> {s0, mu, sigma} (or [s0, mu, sigma]); "
                                           "its order is the matrices' order")
    correlation: list[list[Correlation]] = Field(
        description="correlation of log returns, one row and column per asset in `assets` order: each from -1 to 1, "
        "symmetric, 1 on the diagonal, positive semi-definite")
    stress_correlation: list[list[Correlation]] = Field(
        description="the same, while a correlation_spike shock is in force (closer to 1: diversification fails)")

    @field_validator("assets", mode="before")
    @classmethod
    def _triples(cls, assets: Any) -> Any:
        """`[s0, mu, sigma]` is short for `{ s0 = ..., mu = ..., sigma = ... }`."""
        if not isinstance(assets, Mapping):
            return assets
        return {name: dict(zip(("s0", "mu", "sigma"), spec)) if isinstance(spec, (list, tuple)) and len(spec) == 3
                else spec for name, spec in assets.items()}


class ReplayPrice(_Table):
    """A real price series from a CSV (a time column and a price column, oldest first),
    replayed on the step grid. Shipped series: `sim/data/` (provenance in SOURCES.md)."""

    kind: Literal["replay"]
    path: str = Field(min_length=1, description="a file in sim/data/, or a path relative to the scenario file")
    column: str = Field("price", min_length=1, description="the price column")
    time_column: str = Field("timestamp", min_length=1,
                             description="the time column: Unix seconds or ISO 8601 (UTC if no zone)")
    interpolate: Flag = Field(False, description="straight line between rows (false: hold each row's price)")
    hold_at_end: Flag = Field(False, description="hold the last price past the series' end (false: the series must "
                              "cover the run)")


PriceSpec = Annotated[Union[GbmPrice, JumpPrice, CorrelatedPrice, ReplayPrice], Field(discriminator="kind")]
PRICE_KINDS: dict[str, type[BaseModel]] = {"gbm": GbmPrice, "jump": JumpPrice, "correlated": CorrelatedPrice,
                                           "replay": ReplayPrice}


class MarketSpec(MarketConfig):
    """A `[[markets]]` table: the protocol's MarketConfig, plus the price process that drives
    its true price. `price` may be left out only for a market that a `correlated` process
    on another market names in its `assets`."""

    price: PriceSpec | None = Field(None, description="the process that drives the true price: "
                                    "{ kind = \"gbm\" | \"jump\" | \"correlated\" | \"replay\", ... }")

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

    kind: str = Field(description="an agent kind from the zoo (perpsim list --agents)")
    count: Integer = Field(1, ge=1, le=MAX_AGENTS, description="how many agents of this kind")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="fields of the kind's Config (perpsim list --agents)")
    defences: Literal["off", "on"] | None = Field(
        None, description="the side of a scenario with a [defended] table these agents run on (`perpsim run "
        "--defences off|on`; a plain load is the off side), when a defence is an agent (more keepers, an "
        "arbitrageur); empty: both sides")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in ZOO:
            hint = _suggest(kind, list(ZOO))
            raise ValueError(f"one of the zoo's kinds{hint}: {', '.join(ZOO)}")
        return kind


class _Shock(BaseModel):
    model_config = _STRICT

    at_step: Integer = Field(ge=0, le=MAX_STEPS, description="step the shock starts in (0 is the first)")

    def active(self, step: int) -> bool:
        """Whether the shock is in force in `step` (a shock without a duration lasts one step)."""
        return self.at_step <= step < self.at_step + getattr(self, "duration", 1)


Steps = Annotated[Integer, Field(ge=1, le=MAX_STEPS)]


class PriceJump(_Shock):
    """The true price gaps by `fraction` (-0.3: a 30% fall) in one step."""

    kind: Literal["price_jump"]
    fraction: Number = Field(gt=-1, le=MAX_RATIO, description="price multiplied by 1 + fraction")
    market: str = Field("", description="market whose price jumps; empty: every market")


class OracleFreeze(_Shock):
    """No report lands for `duration` steps: the feed goes stale after max_age."""

    kind: Literal["oracle_freeze"]
    duration: Steps = Field(description="steps")
    market: str = Field("", description="market frozen; empty: every market")


class OracleLag(_Shock):
    """Every reporter reports the price of `lag_blocks` ago for `duration` steps."""

    kind: Literal["oracle_lag"]
    duration: Steps = Field(description="steps")
    lag_blocks: Steps = Field(description="blocks behind")


class ReporterCompromise(_Shock):
    """The first `reporters` reporters report the true price times `factor`."""

    kind: Literal["reporter_compromise"]
    duration: Steps = Field(description="steps")
    reporters: Integer = Field(ge=1, le=MAX_REPORTERS, description="how many reporters are compromised")
    factor: Number = Field(gt=0, le=MAX_RATIO, description="what they multiply the true price by")


class KeeperOutage(_Shock):
    """Keepers of `kinds` (all keepers by default) do not act for `duration` steps. With
    `unless_reward`, liquidation keepers still take the liquidations that pay them at least
    that much: gas so dear that only a big reward covers it (Black Thursday, 2020)."""

    kind: Literal["keeper_outage"]
    duration: Steps = Field(description="steps")
    kinds: list[str] = Field(default_factory=list, description=f"keeper kinds out; empty: all of {', '.join(KEEPER_KINDS)}")
    unless_reward: Number = Field(
        0.0, ge=0, le=MAX_USD, description="USD; liquidation keepers still act on a liquidation whose keeper fee "
        "(liquidation_fee x keeper_fee_share x the position's notional, at least min_keeper_fee) reaches it; "
        "0: out for every liquidation")

    @field_validator("kinds")
    @classmethod
    def _keeper_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in KEEPER_KINDS]
        if unknown:
            raise ValueError(f"keeper kinds among {', '.join(KEEPER_KINDS)} (not {', '.join(unknown)})")
        return kinds

    @model_validator(mode="after")
    def _reward_for_liquidators(self) -> KeeperOutage:
        if self.unless_reward > 0 and self.kinds and "liquidation_keeper" not in self.kinds:
            raise ValueError("unless_reward applies to liquidation keepers: add liquidation_keeper to kinds "
                             "(or leave kinds empty), or set unless_reward = 0")
        return self


class LpRun(_Shock):
    """Every LP agent tries to withdraw `fraction` of its shares, for up to `duration` steps."""

    kind: Literal["lp_run"]
    duration: Steps = Field(1, description="steps the LPs keep trying")
    fraction: Number = Field(gt=0, le=1, description="share of its Vault shares each LP withdraws")


class CorrelationSpike(_Shock):
    """Correlated assets switch to their stress correlation for `duration` steps."""

    kind: Literal["correlation_spike"]
    duration: Steps = Field(description="steps")


Shock = Annotated[
    Union[PriceJump, OracleFreeze, OracleLag, ReporterCompromise, KeeperOutage, LpRun, CorrelationSpike],
    Field(discriminator="kind"),
]
SHOCK_MODELS: dict[str, type[_Shock]] = {
    "price_jump": PriceJump, "oracle_freeze": OracleFreeze, "oracle_lag": OracleLag,
    "reporter_compromise": ReporterCompromise, "keeper_outage": KeeperOutage, "lp_run": LpRun,
    "correlation_spike": CorrelationSpike,
}
SHOCK_KINDS = tuple(SHOCK_MODELS)


class Defences(BaseModel):
    """Protocol defences on or off, each mapped onto market or oracle parameters. A defence
    left out changes nothing; one given overrides every market (or the oracle), and a market
    that sets the same parameter to something else is an error."""

    model_config = _STRICT

    deviation_guard: Number | None = Field(
        None, ge=0, lt=1, description="oracle.max_deviation: reject a move beyond this fraction of the last price; 0: off")
    breach_timeout: Integer | None = Field(
        None, ge=0, le=MAX_DURATION,
        description="oracle.breach_timeout: seconds a breach persists before it is accepted; 0: never")
    min_reporters: Integer | None = Field(None, ge=1, le=MAX_REPORTERS, description="oracle.min_reporters")
    liquidate_when_invalid: Flag | None = Field(None, description="every market's liquidate_when_invalid")
    allow_unrealized_withdrawal: Flag | None = Field(None, description="every market's allow_unrealized_withdrawal")
    mark_mode: Literal["oracle", "premium", "median"] | None = Field(None, description="every market's mark_mode")
    liquidation_limit_scalar: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's liquidation_limit_scalar (Synthetix's per-window "
        "liquidation limit, against sandwiched liquidations); 0: off")
    liquidation_window: Integer | None = Field(
        None, ge=0, le=MAX_DURATION, description="every market's liquidation_window: seconds of the liquidation "
        "limit's trailing window (Synthetix); 0: the current block")
    adl_pnl_factor: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's adl_pnl_factor: ADL by PnL starts when the traders' "
        "net PnL exceeds this fraction of the Vault's value before it (GMX v2); 0: off")
    adl_pnl_factor_after: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's adl_pnl_factor_after: ADL by PnL runs until the "
        "factor is down to this")
    min_price_fraction: Number | None = Field(
        None, ge=0, le=1, description="every market's min_price_fraction: the oracle feed's floor as a fraction of "
        "its initial price; a median below it makes the feed invalid, never clamped; 0: off")
    min_keeper_fee: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's min_keeper_fee: USD the fund tops a keeper's fee up to")
    max_funding_rate: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's max_funding_rate: the velocity model's funding cap, "
        "per day (0.01: 1% a day)")
    worse_price_when_invalid: Flag | None = Field(
        None, description="oracle.worse_price_when_invalid: value leaves at the worse end of a disputed price; "
        "false: at the last accepted price (the free option)")
    nav_at_close_price: Flag | None = Field(
        None, description="the Vault values the book at its closing fill (price impact out of NAV); "
        "false: at the index (an LP can take the impact back)")
    oi_imf_lower: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's oi_imf_lower: USD open interest above which the "
        "initial margin fraction rises (dYdX v4)")
    oi_imf_upper: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's oi_imf_upper: USD open interest at which the initial "
        "margin fraction reaches 100% (dYdX v4); 0: off")
    max_oi_usd: Number | None = Field(
        None, ge=0, le=MAX_PARAM, description="every market's max_oi_usd: USD cap on a side's open interest "
        "(GMX v2 maxOpenInterest); 0: off")
    max_oi_vault_factor: Number | None = Field(
        None, ge=0, le=MAX_FACTOR, description="every market's max_oi_vault_factor: a side's open interest at most "
        "this x the Vault's token balance; 0: off")
    max_leverage: Number | None = Field(
        None, ge=0, le=MAX_FACTOR, description="every market's max_leverage: initial margin at least notional / "
        "this (Hyperliquid); 0: off, else at least 1")
    delist_move: Number | None = Field(
        None, ge=0, le=MAX_RATIO, description="every market's delist_move: the `delister` agent delists a market "
        "whose index moved more than this fraction, at the earlier price; 0: off")

    pool_window: Integer | None = Field(
        None, ge=0, le=MAX_DURATION, description="every market's pool_window: a feed that reads its SpotPool reads the "
        "TWAP over this many seconds (a pump must be held that long); 0: the pool's spot price")
    max_oi: Number | None = Field(
        None, ge=0, le=MAX_BASE_UNITS, description="every market's max_oi: open-interest cap per side, base units "
        "(what wash trading or a pumped position can build)")

    ORACLE_FIELDS: ClassVar[dict[str, str]] = {"deviation_guard": "max_deviation", "breach_timeout": "breach_timeout",
                                              "min_reporters": "min_reporters",
                                              "worse_price_when_invalid": "worse_price_when_invalid"}
    MARKET_FIELDS: ClassVar[tuple[str, ...]] = ("liquidate_when_invalid", "allow_unrealized_withdrawal", "mark_mode",
                                                "liquidation_limit_scalar", "min_keeper_fee", "pool_window", "max_oi",
                                                "max_funding_rate", "oi_imf_lower", "oi_imf_upper", "max_oi_usd",
                                                "max_oi_vault_factor", "max_leverage", "delist_move", "liquidation_window",
                                                "adl_pnl_factor", "adl_pnl_factor_after", "min_price_fraction")
    PROTOCOL_FIELDS: ClassVar[tuple[str, ...]] = ("nav_at_close_price",)

    @model_validator(mode="after")
    def _adl_factors_ordered(self) -> Defences:
        if None not in (self.adl_pnl_factor, self.adl_pnl_factor_after) \
                and self.adl_pnl_factor_after > self.adl_pnl_factor:  # type: ignore[operator]
            raise ValueError(f"adl_pnl_factor_after ({self.adl_pnl_factor_after}) must be at most adl_pnl_factor "
                             f"({self.adl_pnl_factor})")
        return self

    def oracle_changes(self) -> dict[str, Any]:
        return {target: getattr(self, name) for name, target in self.ORACLE_FIELDS.items()
                if getattr(self, name) is not None}

    def market_changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.MARKET_FIELDS if getattr(self, name) is not None}

    def protocol_changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PROTOCOL_FIELDS if getattr(self, name) is not None}


_PROTOCOL = ProtocolConfig.model_fields


class Scenario(BaseModel):
    """A whole scenario, validated. Build the protocol's config with `protocol_config()` and
    the price processes with `price_processes()`."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="short name; used in run directory names")
    description: str = Field("", description="what the scenario shows")
    seed: Integer = Field(0, ge=0, le=2**63 - 1, description="seeds every RNG of the run")
    steps: Steps = Field(description="steps (blocks) to simulate")
    step_seconds: Integer = Field(12, ge=1, le=MAX_STEP_SECONDS, description="seconds between blocks")
    reserve_factor: Number = _PROTOCOL["reserve_factor"]
    insurance_fund: Number = _PROTOCOL["insurance_fund"]
    vault_liquidity: Number = _PROTOCOL["vault_liquidity"]
    reporters: Integer | None = Field(None, ge=1, le=MAX_REPORTERS,
                                      description="whitelisted reporters; default: the oracle_reporter agents")
    markets: list[MarketSpec] = Field(min_length=1, max_length=MAX_MARKETS, description="[[markets]] tables")
    oracle: OracleConfig = Field(OracleConfig(), description="the [oracle] table")
    agents: list[AgentSpec] = Field(default_factory=list, description="[[agents]] tables")
    shocks: list[Shock] = Field(default_factory=list, description="[[shocks]] tables")
    defences: Defences = Field(Defences(), description="the [defences] table")
    defended: Defences | None = Field(
        None, description="the [defended] table: the defences of the scenario's defended side, which "
        "`perpsim run --defences on` sets over [defences]; `--defences off` runs [defences] as written")

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
            vault_liquidity=self.vault_liquidity, **self.defences.protocol_changes(),
        )

    def with_overrides(self, *, seed: int | None = None, steps: int | None = None) -> Scenario:
        """The same scenario with another seed or length (the command line's `--seed` and
        `--steps`), validated again as a whole: a run cut shorter than a shock is refused, as
        the same file would be. Raises ScenarioError naming the flags."""
        update = {name: value for name, value in (("seed", seed), ("steps", steps)) if value is not None}
        if not update:
            return self
        data = self.model_dump(exclude_unset=True)
        data.update(update)
        flags = " ".join(f"--{name} {value}" for name, value in update.items())
        source = f"{self._source if self._source is not None else self.name} with {flags}"
        base_dir = self._source.parent if self._source is not None else None
        return validate_scenario(data, source=source, base_dir=base_dir, path=self._source)

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
    if candidate.is_dir():
        expected = "a scenario file (TOML), not a directory"
    else:
        hint = _suggest(Path(name).stem if name.endswith(".toml") else name, list(shipped))
        expected = f"an existing scenario file, or a shipped scenario{hint}: {', '.join(shipped)}"
    raise ScenarioError(name, [Problem("(file)", name, expected)])


_TOML_POSITION = re.compile(r"^(?P<message>.*?) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _toml_problem(exc: tomllib.TOMLDecodeError) -> Problem:
    """A TOML syntax error, at its line and column."""
    text = str(exc)
    match = _TOML_POSITION.match(text)
    if match is None:
        return Problem("(file)", _SYNTAX, f"not valid TOML: {text}")
    where = f"line {match['line']}, column {match['column']}"
    return Problem(where, _SYNTAX, f"not valid TOML: {match['message']}")


DEFENCE_SIDES = ("off", "on")
"""`perpsim run --defences off|on`: the scenario's [defences] as written, or with [defended] over them."""


def load_scenario(path_or_name: str | Path, *, defences: Mapping[str, Any] | None = None,
                  seed: int | None = None, steps: int | None = None, side: str | None = None) -> Scenario:
    """Read and validate a scenario file (or a shipped one by name, e.g. "calm").

    `defences` replaces fields of the file's `[defences]` table, and `seed` and `steps` the
    file's own, before validation (the command line's `--defence NAME=VALUE`, `--seed`,
    `--steps`): one validation of the whole, so an override that breaks the scenario (a run
    that ends before a shock) is refused like a file that says so. `side` ("off" or "on",
    `--defences`) picks one side of a scenario that declares a `[defended]` table: "on" sets
    its flags over `[defences]` (and `defences` over both). Raises ScenarioError listing every
    problem, each naming the file (or the flag) and the field."""
    path = resolve_scenario_path(path_or_name)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [_toml_problem(exc)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(source, [Problem("(file)", _MISSING, f"a readable UTF-8 file: {exc}")]) from None
    flags: dict[str, str] = {}
    if side is not None:
        defended = data.get("defended")
        if side not in DEFENCE_SIDES or not isinstance(defended, Mapping):
            expected = (f"one of {', '.join(DEFENCE_SIDES)}" if side not in DEFENCE_SIDES else
                        "a scenario with a [defended] table (the defences its defended side sets)")
            raise ScenarioError(source, [Problem("--defences", side, expected)])
        if side == "on":
            table = data.get("defences", {})
            data["defences"] = {**table, **defended} if isinstance(table, Mapping) else table
            flags.update({f"defences.{name}": "--defences on ([defended])" for name in defended})
    if isinstance(data.get("defended"), Mapping):
        data["agents"] = _agents_on_side(data.get("agents"), side or "off")
    if defences:
        table = data.get("defences", {})
        data["defences"] = {**table, **defences} if isinstance(table, Mapping) else table
        flags.update({f"defences.{name}": "--defence" for name in defences})
    overrides = {name: value for name, value in (("seed", seed), ("steps", steps)) if value is not None}
    if overrides:
        data.update(overrides)
        source += " with " + " ".join(f"--{name} {value}" for name, value in overrides.items())
    try:
        return validate_scenario(data, source=source, base_dir=path.parent, path=path.resolve())
    except ScenarioError as exc:
        if not flags:
            raise
        raise ScenarioError(source, [_flagged(p, flags) for p in exc.problems]) from None


def _agents_on_side(agents: Any, side: str) -> Any:
    """The `[[agents]]` tables that run on `side` of a scenario with a [defended] table: those
    without `defences`, and those whose `defences` names this side. (Anything malformed is
    kept, for validation to report.)"""
    if not isinstance(agents, list):
        return agents
    return [a for a in agents
            if not (isinstance(a, Mapping) and a.get("defences") in DEFENCE_SIDES and a.get("defences") != side)]


def _flagged(problem: Problem, flags: Mapping[str, str]) -> Problem:
    """The problem named after the command-line flag that set its value, if one did."""
    flag = flags.get(problem.path)
    return problem if flag is None else dataclasses.replace(problem, flag=flag)


def parse_defence(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` from the command line: VALUE read as a TOML value (`true`, `0.1`,
    `"median"`), or as a bare string when it is not one (`median`)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        expected = f"NAME=VALUE, NAME one of {', '.join(Defences.model_fields)}"
        raise ScenarioError("--defence", [Problem("defences", text, expected, flag="--defence")])
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return name, value


# -- one validation pass ------------------------------------------------------------------


@dataclass
class _Checked:
    """What the cross-checks may rely on: a Scenario built from the parts that validated,
    where each market, agent and shock came from in the file, and whether any was left out."""

    scenario: Scenario
    origin: dict[str, list[int]]  # "markets" | "agents" | "shocks" -> index in the file of each kept entry
    dropped: set[str]  # top-level fields (and lists) that lost something to an error

    def each(self, key: str) -> Iterable[tuple[int, Any]]:
        """(index in the file, entry) of each kept entry of list `key`."""
        return zip(self.origin[key], getattr(self.scenario, key))

    def whole(self, *keys: str) -> bool:
        """Whether all of `keys` validated in full (checks that count or name need them all)."""
        return not self.dropped.intersection(keys)


_LISTS = ("markets", "agents", "shocks")
# Placeholders for required fields that did not validate, so that the rest can still be checked.
_PLACEHOLDERS = {"name": "scenario", "steps": MAX_STEPS}


def validate_scenario(data: Mapping[str, Any], *, source: str = "<scenario>", base_dir: Path | None = None,
                      path: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict (parsed TOML): structure and bounds, agent params,
    then the cross-checks (markets named, reporters, shocks, prices, defences). One pass: every
    problem at once, the cross-checks run on every part that validated."""
    problems: list[Problem] = []
    try:
        scenario = Scenario.model_validate(data)
        checked: _Checked | None = _Checked(scenario, {k: list(range(len(getattr(scenario, k)))) for k in _LISTS}, set())
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
        checked = _valid_parts(data, exc)
    param_problems, bad_agents = _agent_param_problems(data)
    problems += param_problems
    if checked is not None and bad_agents:
        checked = _without_agents(checked, bad_agents)
    if checked is not None:
        checked.scenario._source = path
        problems += _cross_check(checked, base_dir, deployable=not problems)
    if problems:
        raise ScenarioError(source, problems)
    assert checked is not None
    return checked.scenario


def _valid_parts(data: Mapping[str, Any], exc: ValidationError) -> _Checked | None:
    """A Scenario of what validated, so the cross-checks can still run on it; None when too
    little did (not a table, or no market at all)."""
    if not isinstance(data, Mapping):
        return None
    bad_entries: dict[str, set[int]] = {k: set() for k in _LISTS}
    bad_fields: set[str] = set()
    for err in exc.errors():
        loc = err["loc"]
        if not loc:
            return None
        key = str(loc[0])
        if key in _LISTS and len(loc) > 1 and isinstance(loc[1], int):
            bad_entries[key].add(loc[1])
        else:
            bad_fields.add(key)
    clean: dict[str, Any] = {k: v for k, v in data.items() if k not in bad_fields and k in Scenario.model_fields}
    origin: dict[str, list[int]] = {}
    for key in _LISTS:
        entries = clean.get(key)
        if isinstance(entries, list):
            origin[key] = [i for i in range(len(entries)) if i not in bad_entries[key]]
            clean[key] = [entries[i] for i in origin[key]]
        else:
            origin[key] = []
    for key, placeholder in _PLACEHOLDERS.items():
        clean.setdefault(key, placeholder)
    if not clean.get("markets"):
        return None
    try:
        scenario = Scenario.model_validate(clean)
    except ValidationError:
        return None
    dropped = bad_fields | {k for k in _LISTS if bad_entries[k]} | (set(_PLACEHOLDERS) - set(data))
    return _Checked(scenario, origin, dropped)


def _without_agents(checked: _Checked, bad: set[int]) -> _Checked:
    """`checked` without the agent tables (file indices `bad`) whose params did not validate."""
    keep = [(i, spec) for i, spec in checked.each("agents") if i not in bad]
    scenario = checked.scenario.model_copy(update={"agents": [spec for _, spec in keep]})
    origin = {**checked.origin, "agents": [i for i, _ in keep]}
    return _Checked(scenario, origin, checked.dropped | {"agents"})


def _agent_param_problems(data: Mapping[str, Any]) -> tuple[list[Problem], set[int]]:
    """Each agent table's params checked against its kind's Config (the kind itself is
    checked by the schema); and the indices of the tables whose params failed."""
    problems: list[Problem] = []
    bad: set[int] = set()
    agents = data.get("agents") if isinstance(data, Mapping) else None
    if not isinstance(agents, list):
        return problems, bad
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
            bad.add(i)
            for err in exc.errors():
                problems.append(_problem(("agents", i, "params", *err["loc"]), err, config_cls))
    return problems, bad


def _cross_check(c: _Checked, base_dir: Path | None, deployable: bool) -> list[Problem]:
    """What the schema alone cannot see: names that must exist, counts that must agree."""
    s = c.scenario
    problems: list[Problem] = []
    markets = s.market_names
    if len(set(markets)) != len(markets):
        problems.append(Problem("markets", list(markets), "unique market names"))
    reporter_agents = sum(a.count for a in s.agents if a.kind == "oracle_reporter")
    if c.whole("agents", "reporters"):
        if reporter_agents == 0:
            problems.append(Problem("agents", [a.kind for a in s.agents],
                                    "at least one oracle_reporter agent (prices reach the chain only through reporters)"))
        elif s.reporters is not None and s.reporters != reporter_agents:
            problems.append(Problem("reporters", s.reporters, f"{reporter_agents}, the number of oracle_reporter "
                                    "agents (each whitelisted reporter is one agent)"))
    if reporter_agents > MAX_REPORTERS:
        problems.append(Problem("agents", reporter_agents,
                                f"at most {MAX_REPORTERS} oracle_reporter agents (the Oracle's whitelist)"))
    for i, spec in c.each("agents"):
        if spec.defences is not None and s.defended is None and c.whole("defended"):
            problems.append(Problem(f"agents[{i}].defences", spec.defences,
                                    "a scenario with a [defended] table (the side these agents run on), or no defences"))
        cls = ZOO[spec.kind]
        config = cls.Config(**spec.params)
        check = getattr(cls, "check_config", None)
        if check is not None and c.whole("markets"):
            for field, value, expected in check(config, markets):
                problems.append(Problem(f"agents[{i}].params.{field}", value, expected))
        if getattr(cls, "pump_budget_field", None) and c.whole("markets"):  # it buys a SpotPool
            target = getattr(config, "market", "") or markets[0]
            if target not in {m.name for _, m in c.each("markets") if m.spot_pool_liquidity > 0}:
                problems.append(Problem(f"agents[{i}].params.market", target,
                                        "a market with a SpotPool to pump (spot_pool_liquidity above 0)"))
        bribed = getattr(config, "reporters_bribed", 0)
        if spec.kind == "manipulator" and c.whole("agents", "reporters") and bribed > s.reporter_count:
            problems.append(Problem(f"agents[{i}].params.reporters_bribed", bribed,
                                    f"at most the {s.reporter_count} reporters there are"))
    if c.whole("markets", "agents") and not any(a.kind == "feed_keeper" for a in s.agents):
        for i, market in c.each("markets"):
            if market.uses_pool:
                field = "price_source" if market.price_source == "pool" else "pool_fallback"
                problems.append(Problem(f"markets[{i}].{field}", getattr(market, field),
                                        "a feed_keeper agent too: a feed that reads a SpotPool goes stale "
                                        "unless someone refreshes it"))
    problems += _shock_problems(c)
    problems += _price_problems(c, base_dir)
    problems += _defence_problems(c, deployable=deployable and not problems)
    return problems


def _shock_problems(c: _Checked) -> list[Problem]:
    s = c.scenario
    problems: list[Problem] = []
    has_correlated = any(m.price is not None and m.price.kind == "correlated" for m in s.markets)
    for i, shock in c.each("shocks"):
        where = f"shocks[{i}]"
        if c.whole("steps") and shock.at_step >= s.steps:
            problems.append(Problem(f"{where}.at_step", shock.at_step,
                                    f"a step before the end (steps = {s.steps}, the last is {s.steps - 1}): "
                                    f"this {shock.kind} would never happen"))
        market = getattr(shock, "market", "")
        if market and c.whole("markets") and market not in s.market_names:
            problems.append(Problem(f"{where}.market", market, f"one of the markets {list(s.market_names)} (or empty: all)"))
        if isinstance(shock, ReporterCompromise) and c.whole("agents", "reporters") and shock.reporters > s.reporter_count:
            problems.append(Problem(f"{where}.reporters", shock.reporters,
                                    f"at most the {s.reporter_count} reporters there are"))
        if isinstance(shock, CorrelationSpike) and c.whole("markets") and not has_correlated:
            problems.append(Problem(f"{where}.kind", shock.kind, "a scenario with a correlated price process"))
    return problems


def _price_problems(c: _Checked, base_dir: Path | None) -> list[Problem]:
    """Every market gets its price from exactly one process; every process builds, starts at
    its markets' initial prices (where given) and within the prices the Oracle accepts."""
    s = c.scenario
    problems: list[Problem] = []
    covered: dict[str, str] = {}
    starts: dict[str, tuple[float, str]] = {}  # market -> (first price, where its process is)
    for i, market in c.each("markets"):
        where = f"markets[{i}].price"
        if market.price is None:
            continue
        if isinstance(market.price, CorrelatedPrice):
            names = list(market.price.assets)
            if market.name not in names:
                problems.append(Problem(f"{where}.assets", names, f"a table that includes this market, {market.name!r}"))
            for name in names:
                if name not in s.market_names:
                    if c.whole("markets"):
                        problems.append(Problem(f"{where}.assets.{name}", name, f"market names ({list(s.market_names)})"))
                elif name in covered:
                    problems.append(Problem(f"{where}.assets.{name}", name,
                                            f"a market not already priced by {covered[name]}"))
                else:
                    covered[name] = where
        else:
            covered.setdefault(market.name, where)
        if c.whole("step_seconds"):
            problems += _step_move_problems(market.price, where, s.step_seconds)
        try:
            process = _make_process(market, i, base_dir)
        except (PriceProcessError, ReplayDataError) as exc:
            problems.append(_price_error(exc, where))
            continue
        if isinstance(process, Replay) and not process.hold_at_end and c.whole("steps", "step_seconds"):
            needed = s.steps * s.step_seconds
            if needed > process.duration_seconds:
                problems.append(Problem(f"{where}.path", market.price.path,  # type: ignore[union-attr]
                                        f"a series covering {s.steps} steps of {s.step_seconds} s ({needed:g} s; it covers "
                                        f"{process.duration_seconds:g} s), or hold_at_end = true"))
        for asset, price in process.prices.items():
            starts.setdefault(asset, (price, where))
    for i, market in c.each("markets"):
        if market.name not in covered:
            if c.whole("markets"):
                problems.append(Problem(f"markets[{i}].price", _MISSING,
                                        "a price table (or this market among a correlated process's assets)"))
            continue
        if market.name not in starts:
            continue
        start, where = starts[market.name]
        if not MIN_FIXED_POINT <= start <= MAX_PRICE_USD:
            problems.append(Problem(where, start, f"a process whose first price for {market.name} is from "
                                    f"{MIN_FIXED_POINT:g} to {MAX_PRICE_USD:g} USD (the Oracle's bounds)"))
        elif "initial_price" in market.model_fields_set and not math.isclose(start, market.initial_price, rel_tol=1e-9):
            problems.append(Problem(f"markets[{i}].initial_price", market.initial_price,
                                    f"the first price of its process ({where}), {start:g}, or no initial_price: "
                                    f"otherwise the price gaps {100 * (start / market.initial_price - 1):+.1f}% at step 0"))
    return problems


def _step_move_problems(price: BaseModel, where: str, step_seconds: int) -> list[Problem]:
    """A random process whose one step could move the price beyond a float's range: the
    drift, eight standard deviations and, for jumps, a generous count of eight-sigma jumps,
    over one step of `step_seconds`."""
    years = step_seconds / SECONDS_PER_YEAR
    params: list[tuple[str, float, float]] = []  # (where, mu, sigma)
    if isinstance(price, (GbmPrice, JumpPrice)):
        params.append((where, price.mu, price.sigma))
    elif isinstance(price, CorrelatedPrice):
        params += [(f"{where}.assets.{name}", a.mu, a.sigma) for name, a in price.assets.items()]
    problems = []
    for field, mu, sigma in params:
        move = abs(mu) * years + 8 * sigma * math.sqrt(years)
        if isinstance(price, JumpPrice):
            jumps = price.jump_intensity * years
            move += (jumps + 8 * math.sqrt(jumps) + 1) * (abs(price.jump_mean) + 8 * price.jump_std)
        if move > MAX_LOG_MOVE_PER_STEP:
            problems.append(Problem(field, _MISSING, f"a process that cannot move the price by more than "
                                    f"e^{MAX_LOG_MOVE_PER_STEP:g} in one step of {step_seconds} s (it could move it by "
                                    f"e^{move:.3g}: a float overflow): lower mu, sigma or the jumps, or step_seconds"))
    return problems


def _price_error(exc: Exception, where: str) -> Problem:
    if isinstance(exc, PriceProcessError):
        field = exc.field if exc.field.startswith(where) else f"{where}.{exc.field}"
        return Problem(field, exc.value if exc.value is not None else _MISSING, exc.expected)
    return Problem(where, _MISSING, f"a usable replay series: {exc}")


def _make_process(market: MarketSpec, index: int, base_dir: Path | None) -> PriceProcess:
    config = market.price.model_dump(exclude_none=True) if market.price is not None else {}
    if config.get("kind") in ("gbm", "jump") and "s0" not in config:
        config["s0"] = market.initial_price
    return make_process(config, where=f"markets[{index}].price", asset=market.name, base_dir=base_dir)


def _defence_problems(c: _Checked, deployable: bool) -> list[Problem]:
    s = c.scenario
    problems: list[Problem] = []
    for field, value in s.defences.market_changes().items():
        for i, market in c.each("markets"):
            if field in market.model_fields_set and getattr(market, field) != value:
                problems.append(Problem(f"markets[{i}].{field}", getattr(market, field),
                                        f"{_show(value)} as [defences] sets it, or leave it to [defences]"))
    for field, target in Defences.ORACLE_FIELDS.items():
        value = getattr(s.defences, field)
        if value is not None and target in s.oracle.model_fields_set and getattr(s.oracle, target) != value:
            problems.append(Problem(f"oracle.{target}", getattr(s.oracle, target),
                                    f"{_show(value)} as [defences].{field} sets it, or leave it to [defences]"))
    if deployable and not problems and not c.dropped:
        try:
            s.protocol_config()
        except (ValidationError, ValueError) as exc:
            problems.append(Problem("markets", _MISSING, f"a deployable protocol config: {exc}"))
    return problems


# -- turning pydantic's errors into problems ------------------------------------------------

_MODEL_AT: dict[str, type[BaseModel]] = {"markets": MarketSpec, "agents": AgentSpec, "oracle": OracleConfig,
                                         "defences": Defences}


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc, owner = _owner_and_path(tuple(err["loc"]))
        problems.append(_problem(loc, err, owner))
    return problems


def _owner_and_path(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type | None]:
    """The error's location without the union tags pydantic adds (`shocks.0.price_jump.x`
    -> `shocks[0].x`), and the model whose field it names (for "did you mean")."""
    owner: type | None = Scenario
    if len(loc) >= 2 and loc[0] in _MODEL_AT:
        owner = _MODEL_AT[str(loc[0])]
    if len(loc) >= 3 and loc[0] == "shocks" and loc[2] in SHOCK_MODELS:
        owner = SHOCK_MODELS[str(loc[2])]
        loc = loc[:2] + loc[3:]
    if len(loc) >= 4 and loc[0] == "markets" and loc[2] == "price" and loc[3] in PRICE_KINDS:
        owner = PRICE_KINDS[str(loc[3])]
        loc = loc[:3] + loc[4:]
        if len(loc) >= 6 and loc[3] == "assets":
            owner = AssetParams
    return loc, owner


def _problem(loc: tuple[Any, ...], err: Mapping[str, Any], owner: type | None) -> Problem:
    path = _path(loc)
    kind = err["type"]
    if kind == "missing":
        return Problem(path, _MISSING, "a value (it is required)")
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = _field_names(owner)
        field = str(loc[-1])
        listing = f": {', '.join(allowed)}" if allowed else ""
        elsewhere = _kinds_with_field(owner, field)
        if elsewhere:
            return Problem(path, err.get("input"), f"a field of this kind{listing} ({field} is a field of "
                           f"{', '.join(elsewhere)} only)")
        return Problem(path, err.get("input"), f"a known field{_suggest(field, allowed)}, not this unknown one{listing}")
    if kind in _BOUND_WORDS and isinstance(err.get("ctx"), Mapping):
        (bound,) = err["ctx"].values()
        return Problem(path, err.get("input", _MISSING), f"{_BOUND_WORDS[kind]} {_number(bound)}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(PRICE_KINDS if loc[-1] == "price" else SHOCK_KINDS)
        given = err.get("input", {}).get("kind", _MISSING) if isinstance(err.get("input"), Mapping) else _MISSING
        what = "a price kind" if loc[-1] == "price" else "a shock kind"
        return Problem(path + ".kind", given, f"{what}: {tags}")
    return Problem(path, err.get("input", _MISSING), _expected(err["msg"]))


_BOUND_WORDS = {"greater_than": "greater than", "greater_than_equal": "greater than or equal to",
                "less_than": "less than", "less_than_equal": "less than or equal to"}


def _number(value: Any) -> str:
    """A bound as people write it: 1e+24 rather than 1000000000000000000000000."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0 and not 1e-4 <= abs(value) < 1e7:
        return f"{value:g}"
    return repr(value)


def _kinds_with_field(owner: type | None, field: str) -> list[str]:
    """The other shock or price kinds that have `field`, when `owner` is one of them."""
    for models in (SHOCK_MODELS, PRICE_KINDS):
        if owner in models.values():
            return [kind for kind, model in models.items() if model is not owner and field in model.model_fields]
    return []


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
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.7)
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
