"""Simulator throughput: wall time, agent transactions per second, and where the time goes.

Runs a shipped scenario (calm by default) with its agent crowd scaled to `--agents` (the
reporters, keepers and LPs stay as the scenario has them; the trader groups grow in
proportion) for `--steps` steps, on each backend asked for, and prints:

- wall time of the step loop (deployment and agent funding excluded, the recorder
  included), and of the whole run;
- agent transactions per second: transactions the agents sent (reverted ones included)
  divided by the loop's wall time;
- the share of the loop's wall time spent inside the backend's raw `transact_raw`,
  `call_raw` and `deploy_raw` (the EVM and the backend's own state bookkeeping), against
  Python overhead (agents, engine, facade, recorder).

Not a test. `python -m benchmarks.throughput` runs calm at 100 agents x 1,000 steps on
revm and pyevm (pyevm takes several minutes); `--steps 200 --agents 50 --backend revm`
runs a smaller one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sim.engine import run_scenario
from sim.scenario import AgentSpec, Scenario, load_scenario

TARGETS = {"revm": "agent tx/s >= 1,000", "pyevm": "EVM share >= 75%"}


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


def measure(scenario: Scenario, backend: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="perpsim-bench-") as tmp:
        result = run_scenario(scenario, backend=backend, out_dir=Path(tmp) / "run", report=False, progress=False)
    s = result.stats
    return {
        "loop_seconds": s.loop_seconds, "wall_seconds": s.wall_seconds, "transactions": s.agent_transactions,
        "reverts": s.agent_reverts, "tx_per_second": s.transactions_per_second, "evm_share": s.evm_share,
        "calls": s.loop_calls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="calm")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--backend", action="append", choices=("revm", "pyevm"),
                        help="repeat for several; default: revm and pyevm")
    args = parser.parse_args(argv)
    scenario = scale_agents(load_scenario(args.scenario).with_overrides(steps=args.steps), args.agents)
    print(f"throughput: {scenario.name}, {sum(a.count for a in scenario.agents)} agents x {scenario.steps} steps")
    print(f"{'backend':<8} {'loop s':>9} {'run s':>9} {'agent tx':>9} {'reverts':>8} {'tx/s':>8} "
          f"{'views':>8} {'in EVM':>7} {'Python':>7}  target")
    for backend in args.backend or ["revm", "pyevm"]:
        m = measure(scenario, backend)
        print(f"{backend:<8} {m['loop_seconds']:>9.1f} {m['wall_seconds']:>9.1f} {m['transactions']:>9,} "
              f"{m['reverts']:>8,} {m['tx_per_second']:>8,.0f} {m['calls']:>8,} {m['evm_share']:>7.1%} "
              f"{1 - m['evm_share']:>7.1%}  {TARGETS[backend]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
