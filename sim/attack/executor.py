"""Running one plan from a snapshot of the scenario, and reverting.

`Executor` builds the scenario's simulation with a `scripted_attacker` agent appended (it
holds the capital from before step 0 and does nothing until told), runs it up to each step the
search attacks at, and there takes a snapshot: the chain and the facade's caches
(`Protocol.snapshot`) and the simulation's own Python state (agents, price processes, random
streams, world, bribes). A trial reverts to a snapshot, gives the attacker its plan, runs the
attack's blocks and its unwind with every other agent acting as the scenario says (the
random streams are restored too, so a trial is reproducible), and reads the attacker's
wallet before and after.

Because the attacker is part of the simulation from step 0, exactly as in the replay
scenario (`replay.toml`), a trial and `perpsim run replay.toml` see the same history.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sim.agents.scripted import SUBACCOUNTS, MoveRecord, Move, ScriptedAttacker
from sim.attack.space import AttackSpace
from sim.bounds import MAX_STEPS
from sim.chain import make_chain
from sim.engine import Simulation
from sim.scenario import AgentSpec, Scenario
from sim.units import USDC_UNIT, WAD

ATTACKER_KIND = ScriptedAttacker.kind


def attacker_spec(space: AttackSpace, moves: list[Move] | None = None, start_step: int = MAX_STEPS) -> AgentSpec:
    """The scripted attacker's `[[agents]]` table: its capital, horizon, declared costs and
    plan; `start_step` MAX_STEPS keeps it idle (the search's prefix)."""
    params: dict[str, Any] = {"capital": float(space.capital), "horizon": space.horizon,
                              "bribe_cost": float(space.bribe_cost), "capital_cost": float(space.capital_cost),
                              "start_step": start_step}
    if moves:
        params["moves"] = [m.relevant() for m in moves]
    return AgentSpec(kind=ATTACKER_KIND, params=params)


def with_attacker(scenario: Scenario, spec: AgentSpec) -> Scenario:
    """The scenario with the attacker as its last agent (the others keep their indices and
    random streams)."""
    copied = scenario.model_copy(update={"agents": [*scenario.agents, spec]})
    copied._source = scenario.source
    return copied


@dataclass
class TrialResult:
    """One plan, played from one snapshot."""

    at_step: int
    moves: list[Move]
    profit_units: int  # wallet after the unwind minus before the first move
    costs: float  # USD the plan declares (bribes, capital)
    log: list[MoveRecord] = field(default_factory=list)
    wealth: list[tuple[int, float]] = field(default_factory=list)  # (step, USD), when traced

    @property
    def profit(self) -> float:
        """USD: the wallet's gain less the declared costs."""
        return self.profit_units / USDC_UNIT - self.costs


@dataclass
class _Snapshot:
    chain: Any
    state: dict[str, Any]


class Executor:
    """The scenario on one chain, with snapshots at the steps the search attacks at."""

    def __init__(self, scenario: Scenario, space: AttackSpace, backend: str = "revm") -> None:
        self.scenario = scenario
        self.space = space
        self.chain = make_chain(backend)
        self.sim = Simulation(with_attacker(scenario, attacker_spec(space)), self.chain)
        self.sim.setup()
        self.attacker_index = len(self.sim.agents) - 1
        self.snapshots: dict[int, _Snapshot] = {}
        self._run_to(0, max(space.at_steps))

    def _run_to(self, start: int, at_step: int) -> None:
        """Step the simulation from `start` (its state now) to just before `at_step`, taking a
        snapshot at each attack step on the way (and at `at_step` itself)."""
        for step in range(start, at_step + 1):
            if step in self.space.at_steps:
                self.snapshots[step] = _Snapshot(self.sim.protocol.snapshot(), self._capture())
            if step < at_step:
                self.sim.step(step)

    def _go_to(self, at_step: int) -> None:
        """Return to the state just before `at_step`. Reverting to a snapshot invalidates the
        later ones (sim/chain/base.py), so a later one is rebuilt from the nearest earlier one
        by stepping forward: the same steps, so the same state."""
        snapshot = self.snapshots.get(at_step)
        if snapshot is None:
            start = max(step for step in self.snapshots if step < at_step)
            self._go_to(start)
            self._run_to(start, at_step)
            snapshot = self.snapshots[at_step]
        self.sim.protocol.revert(snapshot.chain)
        self._restore(snapshot.state)
        for step in [s for s in self.snapshots if s > at_step]:
            del self.snapshots[step]  # the chain has forgotten them

    def close(self) -> None:
        self.chain.close()

    @property
    def markets(self) -> tuple[str, ...]:
        return self.sim.ctx.markets

    @property
    def attacker(self) -> ScriptedAttacker:
        agent = self.sim.agents[self.attacker_index]
        assert isinstance(agent, ScriptedAttacker)
        return agent

    # -- the simulation's Python state ------------------------------------------------------
    def _capture(self) -> dict[str, Any]:
        sim, ctx = self.sim, self.sim.ctx
        return copy.deepcopy({
            "agents": sim.agents, "processes": sim.processes, "prices": sim.prices, "price_rng": sim.price_rng,
            "order_rng": sim.order_rng, "world": sim.world, "bribes": sim.bribes, "event_cursor": sim._event_cursor,
            "step_index": sim.step_index, "ctx": (ctx.step, ctx.true_prices, ctx.history, ctx.events),
        })

    def _restore(self, saved: dict[str, Any]) -> None:
        state = copy.deepcopy(saved)
        sim, ctx = self.sim, self.sim.ctx
        sim.agents, sim.processes, sim.prices = state["agents"], state["processes"], state["prices"]
        sim.price_rng, sim.order_rng, sim.world, sim.bribes = (state["price_rng"], state["order_rng"], state["world"],
                                                               state["bribes"])
        sim._event_cursor, sim.step_index = state["event_cursor"], state["step_index"]
        sim.reporters = [a for a in sim.agents if a.phase == "reporter"]
        sim.traders = [a for a in sim.agents if a.phase == "trader"]
        sim.keepers = [a for a in sim.agents if a.phase == "keeper"]
        ctx.world = sim.world
        ctx.step, ctx.true_prices, ctx.history, ctx.events = state["ctx"]
        ctx.refresh()

    # -- a trial ----------------------------------------------------------------------------
    def run(self, at_step: int, moves: list[Move], trace: bool = False) -> TrialResult:
        """Play `moves` from the snapshot at `at_step` (one of the space's `at_steps`): the attack's blocks and its unwind,
        every other agent acting; then read the profit. `trace` records the attacker's
        marked wealth after every step (for the report)."""
        self._go_to(at_step)
        attacker = self.attacker
        space = self.space
        attacker.config = ScriptedAttacker.Config(capital=float(space.capital), horizon=space.horizon, moves=moves,
                                                  bribe_cost=float(space.bribe_cost),
                                                  capital_cost=float(space.capital_cost), start_step=at_step)
        wealth = [(at_step - 1, self.wealth())] if trace else []
        for step in range(at_step, at_step + space.horizon + 1):
            self.sim.step(step)
            if trace:
                wealth.append((step, self.wealth()))
        units = attacker.profit_units()
        assert units is not None, "the attacker did not unwind"  # it always reads its wallet at both ends
        return TrialResult(at_step, list(moves), units, attacker.costs(), list(attacker.log), wealth)

    def wealth(self) -> float:
        """The attacker's wealth marked now, USD: wallet, subaccount equity, Vault shares at
        the share price, base tokens at the SpotPool's price."""
        protocol, account = self.sim.protocol, self.attacker.account
        total = protocol.token_balance(account)
        total += sum(max(protocol.equity(account, sub), 0.0) for sub in range(SUBACCOUNTS))
        total += protocol.vault.call("shares", account) * protocol.vault.call("share_price") / WAD / WAD
        for market in protocol.pools:
            total += protocol.base_balance(account, market) * protocol.spot_price(market)
        return total
