"""Attack search: trials per second, and trials to the first profitable plan, with each
defence switched off in turn.

On tests/sim/data/attack-small.toml (every defence on), from step 10, $1M of capital, three
blocks: one search of `--trials` trials per row, the same seed each time. The "spot:" rows run
on tests/sim/data/attack-spot.toml instead (a thin market whose feed reads a SpotPool), with
the SpotPool moves allowed. "first profit" is
the first trial whose profit after declared costs is above $1,000 ("-": none in the budget);
"best" the shrunk winner's profit. The move set leaves out bribery (a majority of bribed
reporters moves the price within the guard by design, see the README's security model),
except in the last row, which prices that residual at the default $10,000 per reporter per
block. Trials per second count the search's trials (each a revert, the attack's blocks with
every agent acting, and the unwind).

Each row runs with each sampler (the cross-entropy method, `cem`, and Optuna's TPE, `tpe`)
and `--seeds` seeds (seed, seed + 1, ...): "first profit" is then the median over seeds (a seed
that found none counts as beyond the budget, shown ">N"), "found" how many seeds found a
profit, "best" the mean of the seeds' best. Not a test. `make bench-attack`, or
`python -m benchmarks.attack [--trials N] [--seed S] [--seeds K] [--sampler cem,tpe]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from sim.attack import run_attack
from sim.scenario import load_scenario

DATA = Path(__file__).resolve().parent.parent / "tests" / "sim" / "data"
SCENARIO = DATA / "attack-small.toml"
SPOT = DATA / "attack-spot.toml"
NO_BRIBES = ("deposit", "withdraw", "open", "close", "lp_deposit", "lp_redeem", "wash", "self_liquidate", "adl",
             "trigger")
SPOT_MOVES = NO_BRIBES + ("spot_buy", "spot_sell")
ROWS: tuple[tuple[str, Path, dict[str, object], tuple[str, ...]], ...] = (
    ("none (every defence on)", SCENARIO, {}, NO_BRIBES),
    ("nav_at_close_price=false", SCENARIO, {"nav_at_close_price": False}, NO_BRIBES),
    ("allow_unrealized_withdrawal=true", SCENARIO, {"allow_unrealized_withdrawal": True}, NO_BRIBES),
    ("mark_mode=premium", SCENARIO, {"mark_mode": "premium"}, NO_BRIBES),
    ("worse_price_when_invalid=false", SCENARIO, {"worse_price_when_invalid": False}, NO_BRIBES),
    ("liquidation_limit_scalar=0", SCENARIO, {"liquidation_limit_scalar": 0.0}, NO_BRIBES),
    ("deviation_guard=0", SCENARIO, {"deviation_guard": 0.0}, NO_BRIBES),
    ("none, bribes allowed", SCENARIO, {}, NO_BRIBES + ("bribe",)),
    ("spot: none (every defence on)", SPOT, {}, SPOT_MOVES),
    ("spot: max_oi_usd=0", SPOT, {"max_oi_usd": 0.0}, SPOT_MOVES),
    ("spot: max_oi_usd=0, pool_window=0", SPOT, {"max_oi_usd": 0.0, "pool_window": 0}, SPOT_MOVES),
    ("spot: max_oi_usd=0, pool_window=0, deviation_guard=0", SPOT,
     {"max_oi_usd": 0.0, "pool_window": 0, "deviation_guard": 0.0}, SPOT_MOVES),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per row and sampler")
    parser.add_argument("--sampler", default="cem,tpe", help="samplers to compare, comma-separated")
    parser.add_argument("--rows", default=None,
                        help="only the rows whose label contains one of these (comma-separated)")
    args = parser.parse_args()
    samplers = [s.strip() for s in args.sampler.split(",") if s.strip()]
    rows = [r for r in ROWS if args.rows is None or any(k in r[0] for k in args.rows.split(","))]
    seeds = range(args.seed, args.seed + args.seeds)
    print(f"attack search on {SCENARIO.name} ({SPOT.name} for spot:): {args.trials} trials a run, "
          f"seeds {list(seeds)}, load {os.getloadavg()[0]:.1f}")
    print(f"{'defence off':<52} {'sampler':<7} {'trials/s':>9} {'first profit':>13} {'found':>6} {'best profit':>14}"
          "  best plan")
    totals: dict[str, list[float]] = {s: [0.0, 0.0] for s in samplers}  # profitable seeds, summed best
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, path, defences, kinds) in enumerate(rows):
            scenario = load_scenario(path, defences=defences)
            for sampler in samplers:
                runs = [run_attack(scenario, out_dir=Path(tmp) / f"{i}-{sampler}-{seed}", progress=False,
                                   capital=1_000_000.0, horizon=3, at_steps=(10,), trials=args.trials, seed=seed,
                                   kinds=kinds, sampler=sampler) for seed in seeds]
                firsts = sorted(r.result.first_profit or args.trials + 1 for r in runs)
                median = firsts[len(firsts) // 2]
                found = sum(r.result.first_profit is not None for r in runs)
                best = max(runs, key=lambda r: r.result.best.profit).result.best
                mean = sum(r.result.best.profit for r in runs) / len(runs)
                rate = sum(r.result.trials_per_second for r in runs) / len(runs)
                totals[sampler][0] += found
                totals[sampler][1] += mean
                plan = "; ".join(m.words() for m in best.moves) if best.profit > 1_000 else ""
                first = median if median <= args.trials else f">{args.trials}"
                print(f"{label:<52} {sampler:<7} {rate:>9.1f} {first!s:>13} {found:>4}/{len(runs)} {mean:>14,.0f}"
                      f"  {plan}", flush=True)
    for sampler, (found, mean) in totals.items():
        print(f"{sampler}: profitable in {found:.0f} of {len(rows) * len(seeds)} searches, "
              f"best profits summed ${mean:,.0f}")


if __name__ == "__main__":
    main()
