"""The plan space: what `perpsim attack` may try, validated like a scenario's fields.

`AttackSpace` holds the command line's choices (capital, horizon, trials, seed, the steps to
attack at, the moves allowed, the declared costs), each typed and bounded; `check_space`
checks them against the scenario (an at-step within the run, a market with a SpotPool for
the spot moves, reporters to bribe). A bad value is an `AttackInputError` naming the flag, the
value and what was expected, before any transaction is sent (`perpsim attack` exits 2).

A plan is encoded for the search as `max_moves` slots; each slot draws a kind (or none), a
block, a subaccount, a market, a side and the continuous parameters (`Slot`). `decode` turns
a slot list into the `Move`s the scripted attacker plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.agents.scripted import MOVE_KINDS, SUBACCOUNTS, Move
from sim.bounds import MAX_LEVERAGE, MAX_RATIO, MAX_USD, Integer, Number
from sim.scenario import Problem, Scenario, _problem  # the scenario's own wording of a bad value

MAX_HORIZON = 50
"""Blocks an attack may last: a plan is a short sequence, the search replays it thousands of times."""
MAX_MOVES = 12
MAX_TRIALS = 1_000_000
SPOT_KINDS = ("spot_buy", "spot_sell")
MAX_BRIBE_FACTOR = 3.0  # the search's range for a bribe's factor without a deviation guard: [1 / 3, 3]


class AttackInputError(ValueError):
    """A plan space that cannot be searched: one line per problem, each naming the flag."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(_line(p) for p in problems))


def _line(problem: Problem) -> str:
    value = problem.value
    shown = "" if value is None else f" {value!r}" if isinstance(value, str) else f" {value}"
    return f"{problem.flag or problem.path}{shown}: expected {problem.expected}"


class AttackSpace(BaseModel):
    """The search's plan space and budget (`perpsim attack`'s options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capital: Number = Field(gt=0, le=MAX_USD, description="USD the attacker starts with")
    horizon: Integer = Field(ge=1, le=MAX_HORIZON, description="blocks of moves before the unwind")
    trials: Integer = Field(200, ge=1, le=MAX_TRIALS, description="plans tried")
    seed: Integer = Field(0, ge=0, le=2**63 - 1, description="seeds the search")
    sampler: Literal["cem", "tpe"] = Field("cem", description="the search: cross-entropy (cem), or Optuna's TPE")
    at_steps: tuple[Integer, ...] = Field((), description="steps the attack starts at; default: a third of the run")
    max_moves: Integer = Field(4, ge=1, le=MAX_MOVES, description="moves in a plan, at most")
    kinds: tuple[str, ...] = Field(MOVE_KINDS, description="the moves the search may use")
    subaccounts: Integer = Field(SUBACCOUNTS, ge=1, le=SUBACCOUNTS, description="the attacker's subaccounts the "
                                 "moves may use (1: one account, no wash trades)")
    min_profit: Number = Field(1_000.0, ge=0, le=MAX_USD, description="USD above which a plan counts as profitable")
    max_leverage: Number = Field(10.0, gt=0, le=MAX_LEVERAGE, description="the highest leverage an open tries")
    bribe_cost: Number = Field(10_000.0, ge=0, le=MAX_USD, description="USD per reporter per block a bribe costs")
    capital_cost: Number = Field(0.05, ge=0, le=MAX_RATIO, description="yearly rate the capital costs")

    @model_validator(mode="after")
    def _kinds_known(self) -> AttackSpace:
        unknown = [k for k in self.kinds if k not in MOVE_KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds: moves among {', '.join(MOVE_KINDS)} (not {', '.join(unknown) or 'none'})")
        return self


FLAGS = {"capital": "--capital", "horizon": "--horizon", "trials": "--trials", "seed": "--seed", "sampler": "--sampler",
         "at_steps": "--at-step", "max_moves": "--max-moves", "subaccounts": "--subaccounts",
         "min_profit": "--min-profit", "kinds": "--moves", "max_leverage": "--max-leverage",
         "bribe_cost": "--bribe-cost", "capital_cost": "--capital-cost"}


def make_space(scenario: Scenario, **options: Any) -> AttackSpace:
    """The plan space from the command line's options, checked on its own and against the
    scenario; raises AttackInputError listing every problem."""
    options = {k: v for k, v in options.items() if v is not None}
    try:
        space = AttackSpace(**options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "kinds"
            problem = _problem(tuple(err["loc"]) or ("kinds",), err, AttackSpace)
            expected = problem.expected.removeprefix("value error, ").removeprefix(f"{field}: ")
            problems.append(Problem(field, options.get(field), expected, flag=FLAGS.get(field, field)))
        raise AttackInputError(problems) from None
    if not space.at_steps:
        space = space.model_copy(update={"at_steps": (scenario.steps // 3,)})
    problems = check_space(space, scenario)
    if problems:
        raise AttackInputError(problems)
    return space


def check_space(space: AttackSpace, scenario: Scenario) -> list[Problem]:
    """What the space must agree with in the scenario."""
    problems = []
    last = scenario.steps - space.horizon - 1
    if last < 0:
        problems.append(Problem("horizon", space.horizon, f"at most {scenario.steps - 1} blocks: the attack and its "
                                f"unwind must fit in the run's {scenario.steps} steps", flag="--horizon"))
        return problems
    for step in space.at_steps:
        if not 0 <= step <= last:
            problems.append(Problem("at_steps", step, f"a step from 0 to {last}: the attack's {space.horizon} blocks "
                                    f"and its unwind must fit in the run's {scenario.steps} steps", flag="--at-step"))
    if any(k in SPOT_KINDS for k in space.kinds) and not pool_markets(scenario) and set(space.kinds) <= set(SPOT_KINDS):
        problems.append(Problem("kinds", ",".join(space.kinds), "a scenario with a SpotPool (a market with "
                                "spot_pool_liquidity > 0) for spot moves", flag="--moves"))
    return problems


def pool_markets(scenario: Scenario) -> tuple[str, ...]:
    return tuple(m.name for m in scenario.markets if m.spot_pool_liquidity > 0)


def usable_kinds(space: AttackSpace, scenario: Scenario) -> tuple[str, ...]:
    """The kinds the search draws: the space's, without spot moves when no market has a pool
    and without wash trades on one subaccount."""
    return tuple(k for k in space.kinds if (k not in SPOT_KINDS or pool_markets(scenario))
                 and (k != "wash" or space.subaccounts > 1))


# ---------------------------------------------------------------------------------------
# Slots: a plan as the search sees it
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One slot of a plan vector: a kind index (-1: no move) and its parameters, each
    continuous one in [0, 1] before `decode` scales it."""

    kind: int
    block: int
    sub: int
    market: int
    side: int  # 0 long, 1 short
    amount: float
    leverage: float  # of max_leverage
    factor: float  # 0.5 = no change; see decode
    count: int  # reporters, from 1
    blocks: int  # from 1


def bribe_range(scenario: Scenario) -> float:
    """The largest factor the search bribes reporters to report (and its inverse the
    smallest): twice the oracle's deviation guard beyond 1 when it has one, as an attacker who
    reads the protocol's parameters would try (half within the guard, half a breach), else 3."""
    guard = scenario.protocol_config().oracle.max_deviation
    return 1 + 2 * guard if guard > 0 else MAX_BRIBE_FACTOR


def decode(slots: list[Slot], kinds: tuple[str, ...], markets: tuple[str, ...], space: AttackSpace,
           bribe_max: float = MAX_BRIBE_FACTOR) -> list[Move]:
    """The moves of a plan, by block then slot; empty slots dropped. Numbers are rounded to
    readable precision (the replay's TOML holds them as written)."""
    moves = []
    for slot in slots:
        if slot.kind < 0:
            continue
        kind = kinds[slot.kind]
        # a factor from 1 / bribe_max to bribe_max, even in log: 0.5 is no change
        factor = bribe_max ** (2 * slot.factor - 1)
        if kind == "trigger":
            factor = 1 + (slot.factor - 0.5) * 0.4  # a trigger within 20% of the index
        moves.append(Move(kind=kind, block=slot.block, sub=slot.sub, market=markets[slot.market],
                          amount=round(slot.amount, 4), leverage=round(slot.leverage * space.max_leverage, 3),
                          side="long" if slot.side == 0 else "short", factor=round(factor, 4), count=slot.count,
                          blocks=slot.blocks))
    return sorted(moves, key=lambda m: m.block)


__all__ = ["AttackInputError", "AttackSpace", "MAX_HORIZON", "Slot", "SUBACCOUNTS", "bribe_range", "check_space",
           "decode", "make_space", "pool_markets", "usable_kinds"]
