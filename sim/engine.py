"""The step loop (DESIGN §6): prices, oracle reporters, agents, keepers, recorder.

The engine owns time, order and randomness (Mesa's model); agents decide (sim/agents);
the recorder owns the tables (sim/metrics.py). One step is one block:

1. the chain mines a block `step_seconds` after the last (time moves on the chain itself);
2. shocks in force are applied to the `World`, and the price processes move (a price jump
   gaps the price after the step's move);
3. oracle reporters report, in a seeded shuffle;
4. traders, LPs and manipulators act in a seeded shuffle, each deciding from the chain as
   the previous one left it, its transactions sent at once;
5. keepers all decide from the same state, then their transactions run in a seeded order:
   competing keepers race, the first wins and the others revert;
6. the recorder reads the step's views and events.

Randomness comes from one `numpy.random.SeedSequence(seed)`: prices, order and each agent
(by its index) get their own streams, so the same scenario and seed give the same history,
on every backend. A revert never stops a run: it is counted by agent kind and reason
(`transactions.json`). Ctrl-C or a crash leaves the run directory readable and marked
partial.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from sim.agents import ZOO, Action, Agent, AgentIdentity, Outcome, StepContext, World
from sim.agents.base import BribeReporters
from sim.chain import CHAIN_ID, Chain, ChainError, Reverted, make_chain
from sim.prices import CorrelatedAssets, PriceProcess, Replay
from sim.protocol import Protocol, ProtocolConfig
from sim.rundir import SCENARIO_FILE, TRANSACTIONS_FILE, RunStatus, prepare
from sim.scenario import (
    CorrelationSpike,
    KeeperOutage,
    LpRun,
    OracleFreeze,
    OracleLag,
    PriceJump,
    ReporterCompromise,
    Scenario,
)

# Spawn keys of the run's random streams, under SeedSequence(seed).
PRICE_STREAM = 0
ORDER_STREAM = 1
AGENT_STREAM = 2


ProtocolFactory = Callable[[Chain, ProtocolConfig], Protocol]
"""Builds the protocol on a chain: `Protocol.deploy` by default; an attached deployment
(`perpsim run --attach FILE`) passes its own."""


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of one stream of a run: SeedSequence(seed) spawned at `key`."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


# ---------------------------------------------------------------------------------------
# Counting and timing what reaches the chain
# ---------------------------------------------------------------------------------------


_UNMETERED = "_unmetered_raw_methods"  # the chain's own raw methods, kept on it by the first meter


@dataclass
class TransactionMeter:
    """Counts transactions and times the backend's raw methods (the EVM plus the backend's
    own bookkeeping), by wrapping them on the chain instance."""

    sent: int = 0
    reverted: int = 0
    gas: int = 0
    calls: int = 0
    evm_seconds: float = 0.0  # inside transact_raw, call_raw and deploy_raw

    @classmethod
    def install(cls, chain: Chain) -> TransactionMeter:
        """A new meter on `chain`. It replaces the one a previous run installed, rather than
        wrapping it, so a chain reused run after run (a sweep's worker) costs the same each time."""
        meter = cls()
        raw = chain.__dict__.setdefault(_UNMETERED, (chain.transact_raw, chain.call_raw, chain.deploy_raw))
        transact, call, deploy = raw
        clock = time.perf_counter

        def transact_raw(sender: str, to: str, data: bytes, value: int = 0) -> Any:
            meter.sent += 1
            start = clock()
            try:
                receipt = transact(sender, to, data, value)
            except Reverted as exc:
                meter.reverted += 1
                meter.gas += exc.gas_used
                raise
            finally:
                meter.evm_seconds += clock() - start
            meter.gas += receipt.gas_used
            return receipt

        def call_raw(to: str, data: bytes, sender: str | None = None) -> bytes:
            meter.calls += 1
            start = clock()
            try:
                return call(to, data, sender)
            finally:
                meter.evm_seconds += clock() - start

        def deploy_raw(sender: str, initcode: bytes, abi: Any = None) -> tuple[str, int]:
            meter.sent += 1
            start = clock()
            try:
                return deploy(sender, initcode, abi)
            finally:
                meter.evm_seconds += clock() - start

        chain.transact_raw = transact_raw  # type: ignore[method-assign]
        chain.call_raw = call_raw  # type: ignore[method-assign]
        chain.deploy_raw = deploy_raw  # type: ignore[method-assign]
        return meter


@dataclass
class RunStats:
    """What the agents sent: transactions and reverts by agent kind and reason, and timing."""

    setup_transactions: int = 0
    agent_transactions: int = 0
    agent_reverts: int = 0
    sent_by_kind: Counter[str] = field(default_factory=Counter)
    reverts_by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    actions_by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    steps_run: int = 0
    wall_seconds: float = 0.0
    loop_seconds: float = 0.0  # the step loop alone (no deployment, setup or report)
    loop_cpu_seconds: float = 0.0  # the process's CPU time in it: what other processes on the machine leave alone
    evm_seconds: float = 0.0  # of the loop, inside the backend's raw methods
    loop_calls: int = 0

    def count(self, agent: Agent, action: Action, sent: int, reason: str | None) -> None:
        self.agent_transactions += sent
        self.sent_by_kind[agent.kind] += sent
        self.actions_by_kind.setdefault(agent.kind, Counter())[action.name] += 1
        if reason is not None:
            self.agent_reverts += 1
            self.reverts_by_kind.setdefault(agent.kind, Counter())[f"{action.name}: {reason}"] += 1

    @property
    def transactions_per_second(self) -> float:
        return self.agent_transactions / self.loop_seconds if self.loop_seconds else 0.0

    @property
    def evm_share(self) -> float:
        return self.evm_seconds / self.loop_seconds if self.loop_seconds else 0.0

    def table(self) -> dict[str, Any]:
        """The deterministic part (no times), for transactions.json."""
        return {
            "setup_transactions": self.setup_transactions,
            "agent_transactions": self.agent_transactions,
            "agent_reverts": self.agent_reverts,
            "steps_run": self.steps_run,
            "sent_by_kind": dict(sorted(self.sent_by_kind.items())),
            "actions_by_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.actions_by_kind.items())},
            "reverts_by_kind": {k: dict(sorted(v.items())) for k, v in sorted(self.reverts_by_kind.items())},
        }


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bribe:
    """Reporters bought by a manipulator: steps [start, end) they report price x factor."""

    start: int
    end: int
    count: int
    factor: float


class Simulation:
    """A scenario on one chain: the protocol, the agents, the prices and the world.

    `setup()` funds the agents; `step(s)` runs step `s`. The recorder is the caller's (see
    `run_scenario`), so a simulation can also be stepped bare, in tests."""

    def __init__(self, scenario: Scenario, chain: Chain, protocol_factory: ProtocolFactory | None = None) -> None:
        self.scenario = scenario
        self.chain = chain
        self.meter = TransactionMeter.install(chain)
        self.stats = RunStats()
        self.price_rng = stream(scenario.seed, PRICE_STREAM)
        self.order_rng = stream(scenario.seed, ORDER_STREAM)
        self.protocol = (protocol_factory or Protocol.deploy)(chain, scenario.protocol_config())
        self.processes: list[PriceProcess] = scenario.price_processes()
        self.prices: dict[str, float] = {}
        for process in self.processes:
            self.prices.update(process.prices)
        self.world = World()
        self.bribes: list[Bribe] = []
        self.ctx = StepContext(self.protocol, self.world, scenario.step_seconds)
        self.agents = self._build_agents()
        self.reporters = [a for a in self.agents if a.phase == "reporter"]
        self.traders = [a for a in self.agents if a.phase == "trader"]
        self.keepers = [a for a in self.agents if a.phase == "keeper"]
        self._event_cursor = 0
        self.step_index = -1

    def _build_agents(self) -> list[Agent]:
        wanted = sum(spec.count for spec in self.scenario.agents if spec.kind == "oracle_reporter")
        if wanted > len(self.protocol.reporters):
            raise ValueError(f"the scenario has {wanted} oracle_reporter agents but the protocol whitelists "
                             f"{len(self.protocol.reporters)} reporters; each reporter agent needs its own")
        agents: list[Agent] = []
        per_kind: Counter[str] = Counter()
        reporters = iter(enumerate(self.protocol.reporters))
        for group, spec in enumerate(self.scenario.agents):
            cls = ZOO[spec.kind]
            config = cls.Config(**spec.params)
            for _ in range(spec.count):
                index = len(agents)
                extra: dict[str, Any] = {}
                if spec.kind == "oracle_reporter":
                    reporter_index, account = next(reporters)
                    label = f"reporter-{reporter_index}"
                    extra["reporter_index"] = reporter_index
                else:
                    label = f"{spec.kind}-{per_kind[spec.kind]}"
                    account = self.chain.new_account(label)
                per_kind[spec.kind] += 1
                identity = AgentIdentity(index=index, group=group, label=label, account=account)
                agents.append(cls(config, stream(self.scenario.seed, AGENT_STREAM, index), identity, **extra))
        return agents

    # -- running ------------------------------------------------------------------------
    def setup(self) -> None:
        """Every agent's setup actions (funding, deposits), in agent order, before step 0."""
        sent = self.meter.sent
        for agent in self.agents:
            for action in agent.setup(self.ctx):
                outcome = self._execute(agent, action, count=False)
                agent.on_result(action, outcome)
                if not outcome.ok:
                    raise RuntimeError(f"{agent.identity.label}: setup action {action} reverted: {outcome.reason}")
        self.stats.setup_transactions = self.meter.sent - sent

    def step(self, step: int) -> dict[str, float]:
        """Run step `step`; returns its true prices."""
        self.step_index = step
        self.chain.mine(self.scenario.step_seconds)
        self._apply_shocks(step)
        self._move_prices(step)
        ctx = self.ctx
        ctx.begin_step(step, self.prices)
        for agent in self._shuffled(self.reporters):
            self._act(agent, agent.decide(ctx))
        ctx.refresh()
        for agent in self._shuffled(self.traders):
            self._act(agent, agent.decide(ctx))
        ctx.refresh()
        events, self._event_cursor = self.chain.events_since(self._event_cursor)
        ctx.set_events(events)
        self._keepers_race(ctx)
        self.stats.steps_run = step + 1
        return dict(self.prices)

    def _shuffled(self, agents: list[Agent]) -> list[Agent]:
        return [agents[int(i)] for i in self.order_rng.permutation(len(agents))]

    def _keepers_race(self, ctx: StepContext) -> None:
        """All keepers decide from the same state; their transactions then run round-robin
        in a seeded order, so the first to reach a target wins and the rest revert."""
        awake = [k for k in self.keepers if k.kind not in self.world.keepers_out]
        queues = [(k, k.decide(ctx)) for k in self._shuffled(awake)]
        depth = max((len(actions) for _, actions in queues), default=0)
        for i in range(depth):
            for keeper, actions in queues:
                if i < len(actions):
                    keeper.on_result(actions[i], self._execute(keeper, actions[i]))

    def _act(self, agent: Agent, actions: list[Action]) -> None:
        for action in actions:
            agent.on_result(action, self._execute(agent, action))

    def _execute(self, agent: Agent, action: Action, count: bool = True) -> Outcome:
        """Run one action through the facade (or on the world, if off-chain); a revert is
        an outcome, counted by agent kind and reason, never an error."""
        if action.offchain:
            self._apply_offchain(action)
            if count:
                self.stats.count(agent, action, 0, None)
            return Outcome(True)
        sent, gas = self.meter.sent, self.meter.gas
        try:
            value = action.execute(self.protocol, agent.account)
            outcome = Outcome(True, value=value, gas_used=self.meter.gas - gas)
        except Reverted as exc:
            reason = exc.reason or exc.detail or "reverted without reason"
            outcome = Outcome(False, reason=reason, gas_used=self.meter.gas - gas)
        if count:
            self.stats.count(agent, action, self.meter.sent - sent, outcome.reason)
        return outcome

    def _apply_offchain(self, action: Action) -> None:
        if isinstance(action, BribeReporters):
            count = min(action.count, len(self.protocol.reporters))
            start = self.step_index + 1  # the reporters have already reported this step
            self.bribes.append(Bribe(start, start + action.blocks, count, action.factor))
        else:
            raise TypeError(f"no off-chain handler for {action!r}")

    # -- shocks and prices ----------------------------------------------------------------
    def _apply_shocks(self, step: int) -> None:
        """Set the world for this step from the shocks (and bribes) in force."""
        world = self.world
        world.clear()
        markets = self.ctx.markets
        for shock in self.scenario.shocks:
            if not shock.active(step):
                continue
            if isinstance(shock, OracleFreeze):
                world.frozen_markets.update([shock.market] if shock.market else markets)
            elif isinstance(shock, OracleLag):
                world.oracle_lag = max(world.oracle_lag, shock.lag_blocks)
            elif isinstance(shock, ReporterCompromise):
                world.compromise(range(shock.reporters), shock.factor)
            elif isinstance(shock, KeeperOutage):
                out = set(shock.kinds or [k.kind for k in self.keepers])
                if shock.unless_reward > 0 and "liquidation_keeper" in out:
                    out.discard("liquidation_keeper")  # they stay, for the liquidations that pay enough
                    world.keeper_min_reward = max(world.keeper_min_reward, shock.unless_reward)
                world.keepers_out.update(out)
            elif isinstance(shock, LpRun):
                world.lp_run = max(world.lp_run, shock.fraction)
            elif isinstance(shock, CorrelationSpike):
                world.stressed = True
        for bribe in self.bribes:
            if bribe.start <= step < bribe.end:
                world.compromise(range(bribe.count), bribe.factor)

    def _move_prices(self, step: int) -> None:
        dt = self.scenario.step_seconds
        for process in self.processes:
            if isinstance(process, CorrelatedAssets):
                process.set_stress(self.world.stressed)
            process.step(self.price_rng, dt)
            for shock in self.scenario.shocks:
                if isinstance(shock, PriceJump) and shock.at_step == step:
                    for asset in process.assets:
                        if not shock.market or shock.market == asset:
                            process.jump(asset, shock.fraction)
            self.prices.update(process.prices)

    def release_events(self, cursor: int) -> None:
        """The recorder has streamed the events before `cursor` to the run directory: let the
        chain forget those that the engine and the facade's index have read too, so that
        memory stays flat however long the run."""
        self.chain.forget_events(min(cursor, self._event_cursor, self.protocol.index.cursor))

    # -- for the recorder -------------------------------------------------------------------
    def calendar_start(self) -> float | None:
        """For a replay, the series' time (Unix seconds) before step 0, so the report can date
        steps: step s is `calendar_start + (s + 1) * step_seconds`. None for simulated prices."""
        starts = [p.current_time for p in self.processes if isinstance(p, Replay)]
        return min(starts) if starts else None

    def offchain_record(self) -> dict[str, Any]:
        """What happened off-chain, for the run's meta: the bribes paid (no event records them)."""
        record: dict[str, Any] = {"bribes": [{"step": b.start, "end": b.end, "reporters": b.count, "factor": b.factor}
                                             for b in self.bribes]}
        results = {a.identity.label: a.record() for a in self.agents if callable(getattr(a, "record", None))}
        if results:
            record["agents"] = results  # what an agent with a result of its own made (the scripted attacker's profit)
        return record

    def participants(self) -> list[Any]:
        from sim.metrics import Participant

        return [Participant(a.account, sub, a.kind, a.role) for a in self.agents for sub in a.subaccounts]


# ---------------------------------------------------------------------------------------
# A whole run, with its directory
# ---------------------------------------------------------------------------------------


def node_meta(chain: Chain) -> dict[str, Any]:
    """For a run on a node: its URL, chain id, client and the first block the run mines."""
    from sim.deployment import describe_node

    node = describe_node(chain)
    if node is None:
        return {}
    return {"rpc_url": node["url"], "chain_id": node["chain_id"], "node_client": node["client"],
            "node_first_block": node["block"] + 1, "node_last_block": None}


def end_node_range(meta: dict[str, Any], chain: Chain) -> None:
    """Record the node's last block in `meta`; None if the node no longer answers."""
    from sim.deployment import describe_node

    if "node_first_block" not in meta:
        return
    try:
        meta["node_last_block"] = describe_node(chain)["block"]  # type: ignore[index]
    except ChainError:
        meta["node_last_block"] = None


@dataclass
class RunResult:
    """Where a run wrote its outputs, how it ended, and what it cost."""

    run_dir: Path
    status: str  # "complete" or "partial"
    summary: dict[str, Any]
    stats: RunStats
    report: Path | None = None


def default_run_dir(scenario: Scenario, root: Path = Path("runs"), tag: str = "") -> Path:
    """`runs/<scenario>-<seed>[-<tag>]-<timestamp>` (a suffix if that exists already)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / "-".join(str(part) for part in (scenario.name, scenario.seed, tag, stamp) if part != "")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@contextmanager
def _progress(total: int, label: str, enabled: bool | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal (stderr), nothing otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda step: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda step: bar.update(task, completed=step + 1)


def run_scenario(
    scenario: Scenario,
    *,
    backend: str = "revm",
    rpc_url: str | None = None,
    out_dir: Path | None = None,
    progress: bool | None = None,
    report: bool = True,
    chain: Chain | None = None,
    protocol_factory: ProtocolFactory | None = None,
    force: bool = False,
    pace: float = 0.0,
) -> RunResult:
    """Run `scenario` start to finish and write its run directory: `scenario.toml` (as run,
    seed included), the recorder's tables and summary, the traders' tables (sim/traders.py),
    `transactions.json`, and the report.

    The directory must be new or empty (`force`: replace the run in it; sim/rundir.py). Its
    `status.json` exists from the first moment and says at every point how far the run got;
    a run stopped early (Ctrl-C, a crash, a node gone) is marked partial with its error and
    what is missing, and keeps what it recorded.

    `chain` and `protocol_factory` are the extension point for running against an existing
    deployment (`--attach`): pass the chain to use and how to get the protocol on it.

    `pace` (seconds) makes each step last at least that long in wall time, so a watcher on
    the dashboard can follow a run the in-process EVM would finish in seconds. It changes
    nothing on chain; the waits are left out of the run's timings."""
    from sim.metrics import Recorder, write_json
    from sim.traders import TraderBook, followed_accounts

    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(scenario)
    prepare(run_dir, force=force)
    status = RunStatus(run_dir, scenario.steps)
    status.begin()
    started = time.perf_counter()
    own_chain = chain is None
    node: dict[str, Any] = {}
    recorder = None
    sim: Simulation | None = None
    paused = 0.0  # seconds spent waiting for `pace`
    try:
        (run_dir / SCENARIO_FILE).write_text(scenario.to_toml())
        chain = chain if chain is not None else make_chain(backend, rpc_url=rpc_url)
        node = node_meta(chain)  # which node an rpc run is on, and its first block; {} in process
        sim = Simulation(scenario, chain, protocol_factory)
        sim.setup()
        meta = {"scenario": scenario.name, "seed": scenario.seed, "backend": chain.name, "steps": scenario.steps,
                "step_seconds": scenario.step_seconds, "chain_id": CHAIN_ID, "agents": len(sim.agents)}
        if rpc_url:
            meta["rpc_url"] = rpc_url
        if sim.calendar_start() is not None:
            meta["calendar_start"] = sim.calendar_start()
        meta.update(node)
        book = TraderBook(sim.protocol, run_dir, followed_accounts(sim.agents))
        recorder = Recorder(run_dir, sim.protocol, sim.participants(), meta, observers=[book])
        status.enter("steps")
        loop_start, evm_start, calls_start = time.perf_counter(), sim.meter.evm_seconds, sim.meter.calls
        cpu_start = time.process_time()
        try:
            with _progress(scenario.steps, scenario.name, progress) as advance:
                for step in range(scenario.steps):
                    step_start = time.perf_counter()
                    prices = sim.step(step)
                    recorder.record_step(step, prices)
                    sim.release_events(recorder.event_cursor)
                    advance(step)
                    if (wait := pace - (time.perf_counter() - step_start)) > 0:
                        time.sleep(wait)
                        paused += wait
        finally:
            sim.stats.loop_seconds = time.perf_counter() - loop_start - paused
            sim.stats.loop_cpu_seconds = time.process_time() - cpu_start
            sim.stats.evm_seconds = sim.meter.evm_seconds - evm_start
            sim.stats.loop_calls = sim.meter.calls - calls_start
        end_node_range(recorder.meta, chain)
        recorder.meta.update(sim.offchain_record())
        summary = recorder.finish("complete")
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, KeyboardInterrupt):
            error = f"interrupted (Ctrl-C) during {_stage_name(recorder)}"
        elif isinstance(exc, ChainError) and node:
            error = f"the node at {node['rpc_url']} stopped answering during {_stage_name(recorder)}: {exc}"
        try:
            if recorder is not None and not recorder.finished:
                end_node_range(recorder.meta, chain)  # type: ignore[arg-type]
                recorder.meta.update(sim.offchain_record())  # type: ignore[union-attr]  # sim built the recorder
                recorder.finish("partial", error=error)
            if sim is not None:
                write_json(run_dir / TRANSACTIONS_FILE, sim.stats.table())
        finally:
            status.stopped(error)
        raise
    finally:
        if own_chain and chain is not None:
            chain.close()
    sim.stats.wall_seconds = time.perf_counter() - started - paused
    write_json(run_dir / TRANSACTIONS_FILE, sim.stats.table())
    report_path = None
    if report:
        from sim.report import write_report

        with status.drawing_report():
            report_path = write_report(run_dir)
    status.done(report=report)
    return RunResult(run_dir, "complete", summary, sim.stats, report_path)


def _stage_name(recorder: Any) -> str:
    """Where a run was when it stopped, for its error message: the step after the last one
    recorded, once recording has begun."""
    if recorder is None:
        return "deployment and setup"
    return f"step {0 if recorder.last_step is None else recorder.last_step + 1}"
