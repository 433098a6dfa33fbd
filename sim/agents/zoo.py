"""The agent zoo: every agent kind a scenario may name, and `describe()` to list them.

A scenario's `[[agents]]` table names a kind from `ZOO` and gives `params` for its
`Config`; `sim/scenario.py` checks both before anything runs.
"""

from __future__ import annotations

from sim.agents.base import Agent, config_fields
from sim.agents.behavioural import HerdFollower, LossChaser, OverconfidentTrader, PanicSeller
from sim.agents.delister import Delister
from sim.agents.keepers import AdlKeeper, LiquidationKeeper, TriggerOrderKeeper
from sim.agents.lp import LiquidityProvider
from sim.agents.manipulator import Manipulator
from sim.agents.manipulators import SelfLiquidatingShort, SpotPump, WashTrader, WithdrawToLiquidate
from sim.agents.portfolio import PortfolioTrader
from sim.agents.reporters import FeedKeeper, OracleReporter
from sim.agents.scripted import ScriptedAttacker
from sim.agents.spot import PoolArbitrageur
from sim.agents.traders import Arbitrageur, BasisTrader, LeveragedWhale, MomentumTrader, NoiseTrader

ZOO: dict[str, type[Agent]] = {
    cls.kind: cls
    for cls in (
        NoiseTrader, MomentumTrader, LeveragedWhale, BasisTrader, Arbitrageur, PoolArbitrageur,
        PortfolioTrader, HerdFollower, LossChaser, OverconfidentTrader, PanicSeller, LiquidityProvider,
        LiquidationKeeper, TriggerOrderKeeper, AdlKeeper, Delister, OracleReporter, FeedKeeper, Manipulator,
        SpotPump, WashTrader, WithdrawToLiquidate, SelfLiquidatingShort, ScriptedAttacker,
    )
}
"""Agent kind -> class, in the order `describe()` lists them."""

KEEPER_KINDS = tuple(kind for kind, cls in ZOO.items() if cls.phase == "keeper")


def agent_class(kind: str) -> type[Agent]:
    """The class of agent `kind`, or a KeyError that lists the kinds there are."""
    try:
        return ZOO[kind]
    except KeyError:
        raise KeyError(f"unknown agent kind {kind!r}; the zoo has: {', '.join(ZOO)}") from None


def _summary(cls: type[Agent]) -> str:
    return " ".join((cls.__doc__ or "").split())


def describe(kind: str | None = None, *, fields: bool = True) -> str:
    """What each agent kind does and its Config fields (default, description), as text."""
    kinds = [kind] if kind is not None else list(ZOO)
    blocks = []
    for name in kinds:
        cls = agent_class(name)
        lines = [f"{name}  ({cls.role}, acts in the {cls.phase} phase)", f"  {_summary(cls)}"]
        if fields:
            for f in config_fields(cls.Config):
                lines.append(f"    {f.name} = {f.default!r}  ({f.type}) {f.description}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
