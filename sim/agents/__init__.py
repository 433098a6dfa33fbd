"""The agents that drive a simulation (DESIGN §6): base class, actions, and the zoo."""

from __future__ import annotations

from sim.agents.base import Action, Agent, AgentConfig, AgentIdentity, Outcome, StepContext
from sim.agents.world import World
from sim.agents.zoo import KEEPER_KINDS, ZOO, agent_class, describe

__all__ = [
    "KEEPER_KINDS", "ZOO", "Action", "Agent", "AgentConfig", "AgentIdentity", "Outcome", "StepContext", "World",
    "agent_class", "describe",
]
