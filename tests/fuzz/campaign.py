"""A long fuzz campaign over the stateful suite: `python -m tests.fuzz.campaign [--steps N] [--seed S]`.

`make fuzz` runs it with HYPOTHESIS_PROFILE=campaign. It runs the state machines in turn (the
protocol and liquidation ones of tests/fuzz/test_stateful.py, and mallory's attacks of
tests/fuzz/attacker.py) in batches of examples, each batch a hypothesis run with its own
seed (seed, seed + 1, ...), until at least N stateful steps have run, then prints the steps
run, steps per second, the wall time and every failure with hypothesis' shrunk reproduction
(the `state = ProtocolFuzz()` program and the `@reproduce_failure` blob). It exits 1 if any
batch failed.

Each failure it finds should become a named test in tests/fuzz/test_regressions.py.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import traceback
from dataclasses import dataclass, field

from hypothesis import seed as hypothesis_seed
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from tests.fuzz.settings import PROFILE_ENV, fuzz_settings, profile_name
from tests.fuzz.stateful_base import RunStats
from tests.fuzz.attacker import AttackerMachine
from tests.fuzz.test_stateful import LiquidationFuzz, ProtocolFuzz

MACHINES = {"protocol": ProtocolFuzz, "liquidation": LiquidationFuzz, "attacker": AttackerMachine}


@dataclass
class Failure:
    machine: str
    batch: int
    seed: int
    error: str
    reproduction: str


@dataclass
class CampaignResult:
    steps: int = 0
    examples: int = 0
    batches: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def run_campaign(steps: int, seed: int, examples_per_batch: int, step_count: int, max_failures: int,
                 machines: list[str] | None = None, log=print) -> CampaignResult:
    """Run batches until `steps` stateful steps have run (or `max_failures` batches failed),
    taking the machines in turn (by default the whole protocol, the liquidation one, the attacker)."""
    machines = machines or list(MACHINES)
    result = CampaignResult()
    RunStats.reset()
    start = time.perf_counter()
    batch = 0
    while RunStats.steps < steps and len(result.failures) < max_failures:
        batch_seed = seed + batch
        # the steps still to run, in examples of about `step_count` steps
        remaining = steps - RunStats.steps
        examples = max(1, min(examples_per_batch, -(-remaining // step_count)))
        base = MACHINES[machines[batch % len(machines)]]
        machine = hypothesis_seed(batch_seed)(type(f"{base.__name__}_{batch_seed}", (base,), {}))
        settings = fuzz_settings(max_examples=examples, stateful_step_count=step_count, database=None)
        report = io.StringIO()
        try:
            with with_reporter(lambda text: report.write(f"{text}\n")):
                run_state_machine_as_test(machine, settings=settings)
        except Exception as exc:  # a failing batch: hypothesis has shrunk it and printed the program
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            result.failures.append(Failure(base.__name__, batch, batch_seed, error, report.getvalue()))
            log(f"batch {batch} (seed {batch_seed}): FAILED: {error.splitlines()[0]}")
        batch += 1
        elapsed = time.perf_counter() - start
        log(f"batch {batch - 1} ({base.__name__}, seed {batch_seed}): {RunStats.steps} steps, {RunStats.examples} examples, "
            f"{RunStats.steps / elapsed:.0f} steps/s, {elapsed:.0f} s")
    result.seconds = time.perf_counter() - start
    result.steps, result.examples, result.batches = RunStats.steps, RunStats.examples, batch
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.campaign", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="stateful steps to run at least (default 200000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first batch; batch i uses seed + i")
    parser.add_argument("--examples-per-batch", type=int, default=None,
                        help="hypothesis examples per batch (default: the profile's max_examples)")
    parser.add_argument("--step-count", type=int, default=None,
                        help="steps per example (default: the profile's stateful_step_count)")
    parser.add_argument("--max-failures", type=int, default=5, help="stop after this many failing batches")
    parser.add_argument("--machine", choices=[*MACHINES, "all"], default="all",
                        help="which state machine to run (default: all, in turn)")
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps must be positive, got {args.steps}")
    profile = fuzz_settings()
    examples = args.examples_per_batch or profile.max_examples
    step_count = args.step_count or profile.stateful_step_count
    print(f"fuzz campaign: profile {profile_name()} ({PROFILE_ENV}), at least {args.steps} steps, seed {args.seed}, "
          f"{examples} examples x {step_count} steps per batch", flush=True)
    machines = list(MACHINES) if args.machine == "all" else [args.machine]
    result = run_campaign(args.steps, args.seed, examples, step_count, args.max_failures, machines,
                          log=lambda line: print(line, flush=True))
    print()
    print(f"steps run:   {result.steps}")
    print(f"examples:    {result.examples} in {result.batches} batches")
    print(f"wall time:   {result.seconds:.1f} s")
    print(f"steps/s:     {result.steps_per_second:.1f}")
    print(f"failures:    {len(result.failures)}")
    for f in result.failures:
        print()
        print(f"--- failure in batch {f.batch} ({f.machine}, seed {f.seed}): {f.error}")
        print(f.reproduction.rstrip())
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
