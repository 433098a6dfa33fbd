"""The scenario schema's bounds: every number bounded, strict and finite, and each bound the
contracts' own (sim/bounds.py).

Three checks keep them honest as fields are added: a walk over the whole schema fails on any
numeric field without both bounds; the Python mirrors of the contracts' limits are read from
the Vyper sources; and a protocol with every parameter at its schema bound deploys, while one
just beyond a bound the contracts check is refused by the contracts too.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import AllowInfNan, BaseModel, Strict
from pydantic.fields import FieldInfo

from sim import bounds
from sim.agents import ZOO
from sim.chain import Reverted, make_chain
from sim.protocol import MarketConfig, OracleConfig, Protocol, ProtocolConfig
from sim.scenario import PRICE_KINDS, SHOCK_MODELS, AgentSpec, AssetParams, Defences, MarketSpec, Scenario

REPO = Path(__file__).resolve().parents[2]

# Every model a scenario file reaches, and each agent kind's Config.
SCHEMA: list[type] = [Scenario, MarketSpec, OracleConfig, ProtocolConfig, AgentSpec, Defences, AssetParams,
                      *PRICE_KINDS.values(), *SHOCK_MODELS.values(), *(cls.Config for cls in ZOO.values())]


def fields_of(model: type) -> dict[str, FieldInfo]:
    return dict(getattr(model, "model_fields", None) or model.__pydantic_fields__)


def scalar_types(annotation: Any) -> Iterator[tuple[type, list[Any]]]:
    """(type, Annotated metadata) of each alternative of a field's annotation."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        for inner, inner_meta in scalar_types(base):
            yield inner, [*inner_meta, *meta]
    elif typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(annotation):
            yield from scalar_types(arg)
    elif isinstance(annotation, type):
        yield annotation, []


def numeric_field_problems(model: type) -> list[str]:
    problems = []
    for name, info in fields_of(model).items():
        for kind, meta in scalar_types(info.annotation):
            if kind not in (int, float, bool):
                continue
            where = f"{model.__qualname__}.{name}"
            constraints = [*meta, *info.metadata]
            if not any(isinstance(m, Strict) and m.strict for m in constraints):
                problems.append(f"{where}: not strict (declare it as sim.bounds.Number, Integer or Flag)")
            if kind is bool:
                continue
            if kind is float and not any(isinstance(m, AllowInfNan) and not m.allow_inf_nan for m in constraints):
                problems.append(f"{where}: accepts inf and nan (declare it as sim.bounds.Number)")
            if not any(isinstance(m, (annotated_types.Ge, annotated_types.Gt)) for m in constraints):
                problems.append(f"{where}: no lower bound")
            if not any(isinstance(m, (annotated_types.Le, annotated_types.Lt)) for m in constraints):
                problems.append(f"{where}: no upper bound")
    return problems


def test_every_number_in_the_schema_is_strict_finite_and_bounded() -> None:
    problems = [p for model in SCHEMA for p in numeric_field_problems(model)]
    assert not problems, "\n".join(problems)


def test_the_walk_finds_an_unbounded_field() -> None:
    """The check above can fail: a model with a plain float is caught."""

    class Loose(BaseModel):
        x: float = 1.0
        y: bounds.Number = 1.0

    assert numeric_field_problems(Loose) == [
        "test_the_walk_finds_an_unbounded_field.<locals>.Loose.x: not strict (declare it as sim.bounds.Number, Integer or Flag)",
        "test_the_walk_finds_an_unbounded_field.<locals>.Loose.x: accepts inf and nan (declare it as sim.bounds.Number)",
        "test_the_walk_finds_an_unbounded_field.<locals>.Loose.x: no lower bound",
        "test_the_walk_finds_an_unbounded_field.<locals>.Loose.x: no upper bound",
        "test_the_walk_finds_an_unbounded_field.<locals>.Loose.y: no lower bound",
        "test_the_walk_finds_an_unbounded_field.<locals>.Loose.y: no upper bound",
    ]


def vyper_constant(path: str, name: str) -> int:
    text = (REPO / "contracts" / path).read_text()
    match = re.search(rf"^{name}: constant\(\w+\) = ([0-9_* ]+?)(?:\s*#.*)?$", text, re.M)
    assert match, f"{name} not found in contracts/{path}"
    return int(eval(match.group(1).replace("WAD", str(10**18))))  # noqa: S307 - digits, * and ** only


@pytest.mark.parametrize(("mirror", "path", "name"), [
    ("MAX_AMOUNT_TOKENS", "modules/bounds.vy", "MAX_AMOUNT"),
    ("MAX_SIZE_WAD", "modules/bounds.vy", "MAX_SIZE"),
    ("MAX_PARAM_WAD", "Exchange.vy", "MAX_PARAM"),
    ("MAX_MARKETS", "modules/constants.vy", "MAX_MARKETS"),
    ("MAX_PRICE_WAD", "Oracle.vy", "MAX_PRICE"),
    ("MAX_DURATION", "Oracle.vy", "MAX_DURATION"),
    ("MAX_REPORTERS", "Oracle.vy", "MAX_REPORTERS"),
])
def test_mirrors_equal_the_contracts_constants(mirror: str, path: str, name: str) -> None:
    assert getattr(bounds, mirror) == vyper_constant(path, name)


def test_reserve_factor_mirror() -> None:
    text = (REPO / "contracts" / "Vault.vy").read_text()
    assert re.search(r"^MAX_RESERVE_FACTOR: constant\(uint256\) = 100 \* c\.WAD", text, re.M)
    assert vyper_constant("modules/constants.vy", "WAD") == 10**18
    assert bounds.MAX_RESERVE_FACTOR_WAD == 100 * 10**18


# -- the bounds against the contracts ---------------------------------------------------------

AT_THE_BOUNDS = MarketConfig(
    name="MAX", initial_price=bounds.MAX_PRICE_USD, imf=1.0, mmf=0.999999, taker_fee=0.999999,
    insurance_fee_share=1.0, skew_scale=bounds.MAX_PARAM, max_oi=bounds.MAX_BASE_UNITS, max_funding_rate=bounds.MAX_PARAM,
    max_funding_velocity=bounds.MAX_PARAM, premium_half_life=2**63 - 1, twap_window=bounds.MAX_DURATION,
    liquidation_fee=0.999999, keeper_fee_share=1.0, min_position_notional=bounds.MAX_USD,
    min_keeper_fee=bounds.MAX_PARAM, liquidation_limit_scalar=bounds.MAX_PARAM, liquidation_window=bounds.MAX_DURATION,
    adl_pnl_factor=bounds.MAX_PARAM, adl_pnl_factor_after=bounds.MAX_PARAM,
)
AT_THE_LOWER_BOUNDS = MarketConfig(
    name="MIN", initial_price=bounds.MIN_FIXED_POINT, imf=2 * bounds.MIN_FIXED_POINT, mmf=bounds.MIN_FIXED_POINT,
    taker_fee=0.0, insurance_fee_share=0.0, skew_scale=bounds.MIN_FIXED_POINT, max_oi=0.0, max_funding_rate=0.0,
    max_funding_velocity=0.0, premium_half_life=0, twap_window=0, liquidation_fee=0.0, keeper_fee_share=0.0,
    min_position_notional=0.0, min_price_fraction=1.0,  # the largest floor: the first price itself
)
ORACLE_AT_THE_BOUNDS = OracleConfig(max_age=bounds.MAX_DURATION, min_reporters=bounds.MAX_REPORTERS,
                                    max_deviation=bounds.MAX_PARAM, breach_timeout=bounds.MAX_DURATION,
                                    observation_spacing=bounds.MAX_DURATION)


def test_a_protocol_with_every_parameter_at_its_bound_deploys() -> None:
    chain = make_chain("revm")
    config = ProtocolConfig(markets=(AT_THE_BOUNDS, AT_THE_LOWER_BOUNDS), oracle=ORACLE_AT_THE_BOUNDS,
                            reporters=bounds.MAX_REPORTERS, reserve_factor=bounds.MAX_RESERVE_FACTOR,
                            insurance_fund=bounds.MAX_USD, vault_liquidity=bounds.MAX_USD)
    protocol = Protocol.deploy(chain, config)
    assert protocol.index_price("MAX")[0] == bounds.MAX_PRICE_USD
    assert protocol.vault_nav() == bounds.MAX_USD


def beyond(config: BaseModel, **changes: Any) -> Any:
    """`config` with `changes` applied unvalidated: a value the schema refuses."""
    return config.model_copy(update=changes)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("imf", 1.000001, "exchange: bad margin fractions"),
    ("taker_fee", 1.0, "exchange: fee too high"),
    ("insurance_fee_share", 1.000001, "exchange: share above 100%"),
    ("skew_scale", bounds.MAX_PARAM * 1.000001, "exchange: parameter too large"),
    ("max_oi", bounds.MAX_BASE_UNITS * 1.000001, "exchange: parameter too large"),
    ("min_keeper_fee", bounds.MAX_PARAM * 1.000001, "liquidator: parameter too large"),
    ("liquidation_limit_scalar", bounds.MAX_PARAM * 1.000001, "liquidator: parameter too large"),
    ("max_funding_rate", bounds.MAX_PARAM * 1.000001, "exchange: parameter too large"),
    ("max_funding_velocity", bounds.MAX_PARAM * 1.000001, "exchange: parameter too large"),
    ("premium_half_life", bounds.MAX_PARAM_WAD + 1, "exchange: parameter too large"),
    ("liquidation_window", bounds.MAX_DURATION + 1, "liquidator: window too long"),
    ("adl_pnl_factor", bounds.MAX_PARAM * 1.000001, "liquidator: parameter too large"),
    ("adl_pnl_factor_after", bounds.MAX_PARAM * 1.000001, "liquidator: adl after-factor above factor"),
    ("liquidation_fee", 1.0, "liquidator: fee too high"),
    ("keeper_fee_share", 1.000001, "liquidator: share above 100%"),
    ("initial_price", bounds.MAX_PRICE_USD * 1.000001, "oracle: price too large"),
    ("min_price_fraction", 1.000001, "oracle: min price too large"),
])
def test_just_beyond_a_market_bound_the_contracts_refuse_too(field: str, value: float, reason: str) -> None:
    with pytest.raises(ValueError):
        MarketConfig(**{**AT_THE_BOUNDS.model_dump(), field: value})
    config = ProtocolConfig.model_construct(markets=(beyond(AT_THE_BOUNDS, **{field: value}),), oracle=OracleConfig(),
                                            reporters=1, reserve_factor=0.2, insurance_fund=0.0, vault_liquidity=0.0)
    with pytest.raises(Reverted, match=re.escape(reason)):
        Protocol.deploy(make_chain("revm"), config)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"oracle": beyond(OracleConfig(), max_age=bounds.MAX_DURATION + 1)}, "oracle: duration too long"),
    ({"oracle": beyond(OracleConfig(), breach_timeout=bounds.MAX_DURATION + 1)}, "oracle: duration too long"),
    ({"oracle": beyond(OracleConfig(), observation_spacing=bounds.MAX_DURATION + 1)}, "oracle: duration too long"),
    ({"oracle": beyond(OracleConfig(), min_reporters=bounds.MAX_REPORTERS + 1)}, "oracle: bad min_reporters"),
    ({"reserve_factor": bounds.MAX_RESERVE_FACTOR * 1.000001}, "vault: reserve factor too high"),
    ({"vault_liquidity": bounds.MAX_USD * 1.000001}, "vault: amount too large"),
])
def test_just_beyond_a_protocol_bound_the_contracts_refuse_too(changes: dict[str, Any], reason: str) -> None:
    fields = {"markets": (MarketConfig(),), "oracle": OracleConfig(), "reporters": 1, "reserve_factor": 0.2,
              "insurance_fund": 0.0, "vault_liquidity": 0.0, **changes}
    with pytest.raises(ValueError):
        ProtocolConfig(**{k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in fields.items()})
    with pytest.raises(Reverted, match=re.escape(reason)):
        Protocol.deploy(make_chain("revm"), ProtocolConfig.model_construct(**fields))
