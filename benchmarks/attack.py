"""Attack search: trials per second, and trials to the first profitable plan, with each
defence switched off in turn.

On tests/sim/data/attack-small.toml (every defence on), from step 10, $1M of capital, three
blocks: one search of `--trials` trials per row, the same seed each time. "first profit" is
the first trial whose profit after declared costs is above $1,000 ("-": none in the budget);
"best" the shrunk winner's profit. The move set leaves out bribery (a majority of bribed
reporters moves the price within the guard by design, see the README's security model),
except in the last row, which prices that residual at the default $10,000 per reporter per
block. Trials per second count the search's trials (each a revert, the attack's blocks with
every agent acting, and the unwind). Not a test. `make bench-attack`, or
`python -m benchmarks.attack [--trials N] [--seed S]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from sim.attack import run_attack
from sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "tests" / "sim" / "data" / "attack-small.toml"
NO_BRIBES = ("deposit", "withdraw", "open", "close", "lp_deposit", "lp_redeem", "wash", "self_liquidate", "adl",
             "trigger")
ROWS: tuple[tuple[str, dict[str, object], tuple[str, ...]], ...] = (
    ("none (every defence on)", {}, NO_BRIBES),
    ("nav_at_close_price=false", {"nav_at_close_price": False}, NO_BRIBES),
    ("allow_unrealized_withdrawal=true", {"allow_unrealized_withdrawal": True}, NO_BRIBES),
    ("mark_mode=premium", {"mark_mode": "premium"}, NO_BRIBES),
    ("worse_price_when_invalid=false", {"worse_price_when_invalid": False}, NO_BRIBES),
    ("liquidation_limit_scalar=0", {"liquidation_limit_scalar": 0.0}, NO_BRIBES),
    ("deviation_guard=0", {"deviation_guard": 0.0}, NO_BRIBES),
    ("none, bribes allowed", {}, NO_BRIBES + ("bribe",)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"attack search on {SCENARIO.name}: {args.trials} trials a row, seed {args.seed}, load {load:.1f}")
    print(f"{'defence off':<34} {'trials/s':>9} {'first profit':>13} {'best profit':>14}  best plan")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, defences, kinds) in enumerate(ROWS):
            scenario = load_scenario(SCENARIO, defences=defences)
            run = run_attack(scenario, out_dir=Path(tmp) / str(i), progress=False, capital=1_000_000.0, horizon=3,
                             at_steps=(10,), trials=args.trials, seed=args.seed, kinds=kinds)
            best = run.result.best
            first = run.result.first_profit or "-"
            plan = "; ".join(m.words() for m in best.moves) if best.profit > 1_000 else ""
            print(f"{label:<34} {run.result.trials_per_second:>9.1f} {first!s:>13} {best.profit:>14,.0f}  {plan}")


if __name__ == "__main__":
    main()
