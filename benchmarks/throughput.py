"""Simulator throughput: how close the step loop gets to the EVM's own speed, whether a step
costs the same with many idle accounts, and whether memory stays flat over a long run.

Every figure is a ratio of two things measured in the same run, and every time in a ratio is
the process's CPU time (`time.process_time`), not the wall clock, so the ratios hold on a
machine shared with other work: a process waiting for a core spends wall time, not CPU time
(on an idle machine the two agree, the loop being single-threaded and CPU-bound):

- `floor_ratio`: the raw EVM time of the run's agent transactions, replayed through pyrevm
  (the time inside pyrevm's `message_call` only, each transaction from the state it had in
  the run, cold), divided by the step loop's wall time. 1.0 would mean the loop does nothing
  but execute the agents' transactions; what is left is views, the backend's bookkeeping,
  agents, engine and recorder.
- `overhead_per_tx`: in that replay, the revm backend's `transact_raw` time over the raw EVM
  time of the same transactions: what finalising a transaction (its state into pyrevm's
  database, its logs decoded) adds to executing it. Both are timed in the replay, so they
  run under the same conditions (in the loop, the agents' Python between transactions
  slows the EVM's caches too).
- `idle_ratio`: ms per step with 1,000 idle accounts holding positions over ms per step with
  none (calm as shipped): whether a step's cost grows with accounts that do nothing.
- agent tx/s: transactions the agents sent (reverted ones included) over the loop's time, by
  the wall clock (what a user waits) and by CPU time (what it would be on an idle machine).
- peak RSS of a whole run of calm as shipped at 2,000 and at 20,000 steps (each in its own
  process) and their ratio: whether memory grows with the length of a run. Beside it, the
  step loop's own peak (as the loop ends: the run's end then imports the report package,
  pandas and matplotlib, about 110 MB whatever the length, to list the charts a report would
  draw) and the trigger orders placed: pyrevm's database keeps every storage slot a run ever
  touched, and each order is nine slots at an id never used again, so that is what grows.

Not a test. `python -m benchmarks.throughput` (what `make bench` runs) measures calm at 100
agents x 1,000 steps on revm and pyevm, the idle ratio at 300 steps and the two RSS runs;
the pyevm run alone takes about half an hour. While iterating: `--pyevm-steps 50` shortens
the pyevm run, `--skip idle rss` leaves parts out, `--backend revm` runs only revm.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.chain import Chain, Reverted, make_chain
from sim.chain.revm import RevmChain
from sim.engine import run_scenario
from sim.protocol import Protocol, ProtocolConfig
from sim.scenario import AgentSpec, Scenario, load_scenario

TARGETS = {
    "floor_ratio": ">= 0.35",
    "overhead_per_tx": "<= 1.5",
    "idle_ratio": "<= 1.25",
    "rss_ratio": "<= 1.2",
}
IDLE_ACCOUNTS = 1_000
IDLE_STEPS = 300
RSS_STEPS = (2_000, 20_000)


def scale_agents(scenario: Scenario, total: int) -> Scenario:
    """The scenario with its trader groups scaled so that it has `total` agents in all."""
    from sim.agents import ZOO

    fixed = sum(a.count for a in scenario.agents if ZOO[a.kind].role != "trader")
    traders = [a for a in scenario.agents if ZOO[a.kind].role == "trader"]
    room = total - fixed
    if room < len(traders):
        raise SystemExit(f"--agents {total}: the scenario's {fixed} non-trader agents and one per trader group "
                         f"need at least {fixed + len(traders)}")
    weight = sum(a.count for a in traders)
    counts = [max(1, round(a.count * room / weight)) for a in traders]
    counts[counts.index(max(counts))] += room - sum(counts)  # the largest group absorbs rounding
    scaled = iter(counts)
    agents = [a if ZOO[a.kind].role != "trader" else AgentSpec(kind=a.kind, count=next(scaled), params=a.params)
              for a in scenario.agents]
    return scenario.model_copy(update={"agents": agents})


# ---------------------------------------------------------------------------------------
# Recording what reaches the chain, and replaying it
# ---------------------------------------------------------------------------------------


@dataclass
class ChainTape:
    """Every state-changing operation a run sent to its chain, in order, so that it can be
    replayed on a fresh chain."""

    ops: list[tuple[Any, ...]] = field(default_factory=list)
    loop_started: bool = False

    def install(self, chain: Chain) -> None:
        """Wrap the chain's state-changing methods (before the engine wraps them in turn)."""
        new_account, deploy, transact = chain.new_account, chain.deploy_raw, chain.transact_raw
        mine, set_timestamp, revert = chain.mine, chain.set_timestamp, chain.revert

        def new_account_(label: str, eth: int = 10**21) -> str:
            self.ops.append(("account", label, eth))
            return new_account(label, eth)

        def deploy_(sender: str, initcode: bytes, abi: Any = None) -> tuple[str, int]:
            self.ops.append(("deploy", sender, initcode, abi))
            return deploy(sender, initcode, abi)

        def transact_(sender: str, to: str, data: bytes, value: int = 0) -> Any:
            ok = True
            try:
                return transact(sender, to, data, value)
            except Reverted:
                ok = False
                raise
            finally:
                self.ops.append(("tx", sender, to, data, value, ok, self.loop_started))

        def mine_(seconds: int = 0) -> None:
            self.loop_started = True  # the engine's first step mines first; setup never mines
            self.ops.append(("mine", seconds))
            mine(seconds)

        def set_timestamp_(timestamp: int) -> None:
            self.ops.append(("set_timestamp", timestamp))
            set_timestamp(timestamp)

        def revert_(snapshot: Any) -> None:
            raise RuntimeError("the throughput benchmark cannot replay a run that reverts to a snapshot")

        chain.new_account, chain.deploy_raw, chain.transact_raw = new_account_, deploy_, transact_  # type: ignore[method-assign]
        chain.mine, chain.set_timestamp, chain.revert = mine_, set_timestamp_, revert_  # type: ignore[method-assign]


class _TimedRevmChain(RevmChain):
    """The revm backend, timing (CPU time) while `timing` is set the EVM's execution of each
    transaction (pyrevm's `message_call`) and the whole of `transact_raw` around it."""

    timing = False
    evm_seconds = 0.0
    transact_seconds = 0.0

    def _timed(self, total: str, call: Callable[[], Any]) -> Any:
        """`call()`, its time added to the attribute `total` while `timing` is set."""
        if not self.timing:
            return call()
        start = time.process_time()
        try:
            return call()
        finally:
            setattr(self, total, getattr(self, total) + time.process_time() - start)

    def _execute(self, sender: str, to: str, data: bytes, value: int) -> Any:
        return self._timed("evm_seconds", lambda: super(_TimedRevmChain, self)._execute(sender, to, data, value))

    def transact_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> Any:
        return self._timed("transact_seconds",
                           lambda: super(_TimedRevmChain, self).transact_raw(sender, to, data, value))


@dataclass(frozen=True)
class Replay:
    raw_seconds: float  # inside pyrevm's message_call, the step loop's transactions only
    transact_seconds: float  # inside transact_raw (the EVM and the backend's bookkeeping), the same transactions
    transactions: int
    mismatches: int  # transactions whose success differs from the run's (should be 0)


def replay(tape: ChainTape) -> Replay:
    """Run the tape on a fresh revm chain, timing the loop's transactions: pyrevm's execution
    of each, and `transact_raw` whole. Each one starts from the state it had in the run (same
    deployments, transactions, blocks and timestamps before it), cold, as on a real chain."""
    chain = _TimedRevmChain()
    transactions = mismatches = 0
    for op in tape.ops:
        kind = op[0]
        if kind == "account":
            chain.new_account(op[1], op[2])
        elif kind == "deploy":
            chain.deploy_raw(op[1], op[2], op[3])
        elif kind == "mine":
            chain.mine(op[1])
        elif kind == "set_timestamp":
            chain.set_timestamp(op[1])
        else:
            _, sender, to, data, value, ok, in_loop = op
            chain.timing = in_loop
            try:
                chain.transact_raw(sender, to, data, value)
                replayed_ok = True
            except Reverted:
                replayed_ok = False
            chain.timing = False
            transactions += in_loop
            mismatches += replayed_ok != ok
    return Replay(chain.evm_seconds, chain.transact_seconds, transactions, mismatches)


# ---------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------


def run_loop(scenario: Scenario, backend: str, protocol_factory: Any = None, tape: ChainTape | None = None) -> Any:
    """Run `scenario` without a report into a temporary directory; its RunStats."""
    chain = make_chain(backend)
    if tape is not None:
        tape.install(chain)
    with tempfile.TemporaryDirectory(prefix="perpsim-bench-") as tmp:
        result = run_scenario(scenario, out_dir=Path(tmp) / "run", report=False, progress=False, chain=chain,
                              protocol_factory=protocol_factory)
    return result.stats


def measure_revm(scenario: Scenario) -> dict[str, float]:
    """The loop on revm, then its transactions replayed: agent tx/s, floor_ratio, overhead_per_tx."""
    tape = ChainTape()
    stats = run_loop(scenario, "revm", tape=tape)
    raw = replay(tape)
    return {
        "loop_seconds": stats.loop_seconds, "transactions": stats.agent_transactions, "reverts": stats.agent_reverts,
        "tx_per_second": stats.transactions_per_second, "views": stats.loop_calls,
        "tx_per_cpu_second": stats.agent_transactions / stats.loop_cpu_seconds, "cpu_seconds": stats.loop_cpu_seconds,
        "ms_per_step": 1000 * stats.loop_seconds / scenario.steps,
        "raw_seconds": raw.raw_seconds, "replayed": raw.transactions, "mismatches": raw.mismatches,
        "floor_ratio": raw.raw_seconds / stats.loop_cpu_seconds,
        "overhead_per_tx": raw.transact_seconds / raw.raw_seconds,
    }


def measure_pyevm(scenario: Scenario) -> dict[str, float]:
    stats = run_loop(scenario, "pyevm")
    return {"loop_seconds": stats.loop_seconds, "transactions": stats.agent_transactions,
            "reverts": stats.agent_reverts, "tx_per_second": stats.transactions_per_second,
            "views": stats.loop_calls, "ms_per_step": 1000 * stats.loop_seconds / scenario.steps,
            "evm_share": stats.evm_share}


def with_idle_accounts(count: int) -> Any:
    """A protocol factory: deploy, then `count` accounts each open a small position (long and
    short in turn, 2x leverage, so the market's skew stays put) and never act again."""

    def factory(chain: Chain, config: ProtocolConfig) -> Protocol:
        protocol = Protocol.deploy(chain, config)
        market = config.markets[0]
        size = 1_000.0 / market.initial_price  # $1,000 of notional on $500 of collateral
        for i in range(count):
            account = chain.new_account(f"idle-{i}")
            protocol.mint(account, 500.0)
            protocol.deposit(account, 500.0)
            protocol.trade(account, market.name, size if i % 2 == 0 else -size)
        return protocol

    return factory


def measure_idle(steps: int) -> dict[str, float]:
    """ms/step of calm as shipped, without and with IDLE_ACCOUNTS idle position holders."""
    scenario = load_scenario("calm").with_overrides(steps=steps)
    bare = run_loop(scenario, "revm")
    idle = run_loop(scenario, "revm", protocol_factory=with_idle_accounts(IDLE_ACCOUNTS))
    bare_ms, idle_ms = 1000 * bare.loop_cpu_seconds / steps, 1000 * idle.loop_cpu_seconds / steps
    return {"bare_ms": bare_ms, "idle_ms": idle_ms, "idle_ratio": idle_ms / bare_ms}


@dataclass(frozen=True)
class MemoryRun:
    peak_rss_mb: float  # the whole run's
    loop_peak_rss_mb: float  # up to the end of the step loop (setup and loop)
    trigger_orders: int  # placed by the agents (not reverted)


def memory_run(steps: int) -> MemoryRun:
    """Peak resident memory of a whole run of calm as shipped, in its own process."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--rss-child", str(steps)],
                         check=True, capture_output=True, text=True)
    return MemoryRun(**json.loads(out.stdout.strip().splitlines()[-1]))


def rss_child(steps: int) -> None:
    """The child of `memory_run`: the run, then its figures as one JSON line."""
    from sim.metrics import Recorder

    loop_peak: list[float] = []
    finish = Recorder.finish

    def finish_(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        loop_peak.append(_peak_rss_kb() / 1024)  # the loop is over, the run's end not begun
        return finish(self, *args, **kwargs)

    Recorder.finish = finish_  # type: ignore[method-assign]  # this process runs nothing else
    stats = run_loop(load_scenario("calm").with_overrides(steps=steps), "revm")
    placed = sum(actions.get("place_trigger", 0) for actions in stats.actions_by_kind.values())
    reverted = sum(n for reasons in stats.reverts_by_kind.values() for reason, n in reasons.items()
                   if reason.startswith("place_trigger:"))
    print(json.dumps({"peak_rss_mb": _peak_rss_kb() / 1024, "loop_peak_rss_mb": loop_peak[0],
                      "trigger_orders": placed - reverted}))


def _peak_rss_kb() -> float:
    """This process's peak resident memory (KB): VmHWM, which starts afresh at exec; getrusage's
    ru_maxrss does not, and would report the parent's size at the fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # not Linux: the best there is


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def _verdict(name: str, value: float) -> str:
    target = TARGETS[name]
    bound = float(target.split()[1])
    met = value >= bound if target.startswith(">=") else value <= bound
    return f"target {target}: {'met' if met else 'NOT met'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="calm")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--backend", action="append", choices=("revm", "pyevm"),
                        help="repeat for several; default: revm and pyevm")
    parser.add_argument("--pyevm-steps", type=int, default=None,
                        help="steps of the pyevm run (default: --steps; it takes ~1.5 s a step)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("idle", "rss"), help="parts to leave out")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return 0

    scenario = scale_agents(load_scenario(args.scenario).with_overrides(steps=args.steps), args.agents)
    agents = sum(a.count for a in scenario.agents)
    for backend in args.backend or ["revm", "pyevm"]:
        if backend == "revm":
            m = measure_revm(scenario)
            print(f"revm: {scenario.name}, {agents} agents x {scenario.steps} steps", flush=True)
            print(f"  loop {m['loop_seconds']:.1f} s ({m['cpu_seconds']:.1f} s CPU), {m['ms_per_step']:.1f} ms/step, "
                  f"{m['transactions']:,} agent tx ({m['reverts']:,} reverted), {m['views']:,} views")
            print(f"  agent tx/s        {m['tx_per_second']:>8,.0f}   ({m['tx_per_cpu_second']:,.0f} per CPU second)")
            print(f"  floor_ratio       {m['floor_ratio']:>8.3f}   raw EVM {m['raw_seconds']:.1f} s CPU for "
                  f"{m['replayed']:,} replayed tx ({m['mismatches']} mismatched); {_verdict('floor_ratio', m['floor_ratio'])}")
            print(f"  overhead_per_tx   {m['overhead_per_tx']:>8.2f}   {_verdict('overhead_per_tx', m['overhead_per_tx'])}",
                  flush=True)
        else:
            steps = args.pyevm_steps or args.steps
            m = measure_pyevm(scenario.with_overrides(steps=steps))
            print(f"pyevm: {scenario.name}, {agents} agents x {steps} steps", flush=True)
            print(f"  loop {m['loop_seconds']:.1f} s, {m['ms_per_step']:.1f} ms/step, {m['transactions']:,} agent tx "
                  f"({m['reverts']:,} reverted), {m['views']:,} views, {m['evm_share']:.0%} inside the backend")
            print(f"  agent tx/s        {m['tx_per_second']:>8,.1f}", flush=True)
    if "idle" not in args.skip:
        m = measure_idle(IDLE_STEPS)
        print(f"idle: calm as shipped x {IDLE_STEPS} steps, revm")
        print(f"  idle_ratio        {m['idle_ratio']:>8.2f}   {m['bare_ms']:.1f} CPU ms/step bare, {m['idle_ms']:.1f} "
              f"with {IDLE_ACCOUNTS:,} idle position holders; {_verdict('idle_ratio', m['idle_ratio'])}", flush=True)
    if "rss" not in args.skip:
        short, long = (memory_run(steps) for steps in RSS_STEPS)
        small, large = short.peak_rss_mb, long.peak_rss_mb
        print(f"memory: calm as shipped, revm, each run in its own process")
        per_1000 = (large - small) / (RSS_STEPS[1] - RSS_STEPS[0]) * 1000
        print(f"  peak RSS          {small:,.0f} MB at {RSS_STEPS[0]:,} steps, {large:,.0f} MB at {RSS_STEPS[1]:,} steps "
              f"({per_1000:+.1f} MB per 1,000 steps)")
        print(f"  step loop alone   {short.loop_peak_rss_mb:,.0f} MB and {long.loop_peak_rss_mb:,.0f} MB (ratio "
              f"{long.loop_peak_rss_mb / short.loop_peak_rss_mb:.2f}); the run's end adds the report package's imports")
        print(f"  trigger orders    {short.trigger_orders:,} and {long.trigger_orders:,} placed, nine storage slots each, "
              "all kept by pyrevm's database to the end")
        print(f"  rss_ratio         {large / small:>8.2f}   {_verdict('rss_ratio', large / small)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
