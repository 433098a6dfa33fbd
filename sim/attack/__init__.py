"""Attack search: the most an attacker with given capital can take, and how (`perpsim attack`).

Takes a scenario (its defences as given, or changed with `--defence`), the attacker's capital
and horizon, and a trial budget and seed. Gives a directory with `attack.json` (the best
profit and the plan in plain words, each action with its gas, the defences as deployed),
`trials.parquet` (every trial), `replay.toml` (the scenario with a `scripted_attacker` agent
that `perpsim run` replays to the token unit) and `attack.html`.

- `space`: the plan space, typed and validated like scenario fields (`AttackSpace`), and the
  slots a plan is encoded in for the search;
- `executor`: runs the scenario (the attacker idle inside it) to each start step, snapshots,
  and plays one plan from a snapshot while every other agent acts, then reverts;
- `search`: the seeded search (cross-entropy, or Optuna's TPE), the winner's shrinking, the
  progress bar;
- `outputs`, `page`: the files;
- `command`: `run_attack`, what the command line calls.

The plan's moves and the agent that plays them live with the other agents
(`sim/agents/scripted.py`): a replay scenario names it like any agent.
"""

from __future__ import annotations

from sim.attack.command import AttackRun, run_attack
from sim.attack.executor import Executor, TrialResult
from sim.attack.search import Search, SearchResult
from sim.attack.space import AttackInputError, AttackSpace, make_space

__all__ = ["AttackInputError", "AttackRun", "AttackSpace", "Executor", "Search", "SearchResult", "TrialResult",
           "make_space", "run_attack"]
