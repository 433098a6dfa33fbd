"""What `perpsim attack` writes: attack.json, trials.parquet, replay.toml and attack.html.

- `attack.json`: the best profit, the plan in plain words and as moves, each of its actions
  with its gas, the defences as deployed, and the search's figures;
- `trials.parquet`: one row per trial (search and shrink): where, the plan, the profit;
- `replay.toml`: the scenario with a `scripted_attacker` agent playing the best plan, so
  that `perpsim run replay.toml` makes the same profit to the token unit (its summary's
  `meta.agents` holds it);
- `attack.html`: the profit over trials, the best plan's timeline, and the attacker's
  marked wealth step by step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sim.agents.scripted import Move
from sim.attack.executor import TrialResult, attacker_spec, with_attacker
from sim.attack.search import SearchResult
from sim.attack.space import AttackSpace
from sim.scenario import Defences, Scenario
from sim.sweep.results import write_parquet

ATTACK_FILE = "attack.json"
TRIALS_FILE = "trials.parquet"
REPLAY_FILE = "replay.toml"
HTML_FILE = "attack.html"


def defences_as_deployed(scenario: Scenario) -> dict[str, Any]:
    """Each [defences] flag's value in the deployed config (the first market's, for the
    per-market ones), whether the scenario set it or left the default."""
    config = scenario.protocol_config()
    out: dict[str, Any] = {}
    for name, target in Defences.ORACLE_FIELDS.items():
        out[name] = getattr(config.oracle, target)
    for name in Defences.MARKET_FIELDS:
        out[name] = getattr(config.markets[0], name)
    for name in Defences.PROTOCOL_FIELDS:
        out[name] = getattr(config, name)
    return out


def plan_table(moves: list[Move]) -> list[dict[str, Any]]:
    return [m.relevant() for m in moves]


def replay_scenario(scenario: Scenario, space: AttackSpace, best: TrialResult) -> Scenario:
    """The scenario with the scripted attacker playing `best` from its step."""
    return with_attacker(scenario, attacker_spec(space, best.moves, start_step=best.at_step))


METHODS = {"cem": "cross-entropy", "tpe": "optuna-tpe"}


def attack_record(scenario: Scenario, space: AttackSpace, result: SearchResult, backend: str) -> dict[str, Any]:
    best = result.best
    return {
        "scenario": scenario.name, "scenario_seed": scenario.seed, "backend": backend,
        "search": {"method": METHODS[space.sampler], "seed": space.seed, "trials": space.trials,
                   "trials_run": len(result.trials), "seconds": round(result.seconds, 3),
                   "trials_per_second": round(result.trials_per_second, 2),
                   "trials_to_first_profit": result.first_profit, "interrupted": result.interrupted},
        "space": space.model_dump(mode="json"),
        "defences": defences_as_deployed(scenario),
        "best": {
            "profit_usd": best.profit, "profit_units": best.profit_units, "declared_costs_usd": best.costs,
            "profitable": best.profit > 0, "at_step": best.at_step,
            "plan": [m.words() for m in best.moves], "moves": plan_table(best.moves),
            "unshrunk": {"profit_usd": result.unshrunk.profit, "moves": plan_table(result.unshrunk.moves)},
            "transactions": [{"step": r.step, "block": r.block, "action": r.action, "what": r.words, "ok": r.ok,
                              "reason": r.reason, "gas": r.gas} for r in best.log],
        },
    }


def trial_rows(result: SearchResult) -> list[dict[str, Any]]:
    return [{"trial": t.index, "phase": t.phase, "at_step": t.result.at_step, "profit_usd": t.result.profit,
             "profit_units": t.result.profit_units, "declared_costs_usd": t.result.costs,
             "moves": len(t.result.moves), "kinds": ",".join(m.kind for m in t.result.moves),
             "plan": json.dumps(plan_table(t.result.moves)), "seconds": t.seconds} for t in result.trials]


def write_outputs(out_dir: Path, scenario: Scenario, space: AttackSpace, result: SearchResult, backend: str,
                  traced: TrialResult) -> dict[str, Path]:
    """Write every output into `out_dir`; `traced` is the best plan played again with its
    wealth recorded step by step."""
    from sim.attack.page import write_page

    out_dir.mkdir(parents=True, exist_ok=True)
    record = attack_record(scenario, space, result, backend)
    paths = {"attack": out_dir / ATTACK_FILE, "trials": out_dir / TRIALS_FILE, "replay": out_dir / REPLAY_FILE,
             "html": out_dir / HTML_FILE}
    paths["attack"].write_text(json.dumps(record, indent=2) + "\n")
    write_parquet(paths["trials"], trial_rows(result))
    replay = replay_scenario(scenario, space, result.best)
    header = (f"# perpsim attack's best plan on {scenario.name}: ${result.best.profit:,.2f} after declared costs.\n"
              f"# `perpsim run {paths['replay']}` replays it; its summary.json's meta.agents holds the profit.\n")
    paths["replay"].write_text(header + replay.to_toml())
    write_page(paths["html"], record, result, traced)
    return paths
