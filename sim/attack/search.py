"""The search: a seeded sampler of plans, then shrinking the winner.

Two samplers ask for plans and are told what each made (`Proposer`):

- `cem` (the default): the cross-entropy method (Rubinstein), which needs nothing but NumPy.
  Each generation draws POPULATION plans from a distribution over slots (a categorical for
  each discrete choice, a clipped normal for each continuous one), plays them all, and moves
  the distribution towards the best fifth (with smoothing, so no choice's probability reaches
  zero and the search keeps exploring); after PATIENCE generations without a better plan it
  starts afresh.
- `tpe`: Optuna's Tree-structured Parzen Estimator (the `search` extra), multivariate and
  grouped, a slot's parameters asked only when the slot holds a move (each kind of plan its
  own subspace); the first TPE_STARTUP trials are random.

`make bench-attack` compares them on the same rows and seeds. Over five seeds the
cross-entropy method found a profitable plan in more searches (13 of 60 against 10),
including the premium-mark finding (README's security model) that TPE never found; TPE
found one row the other did not (a spot-priced pool under the guard), made more where both
found one, and was quicker on the F1 row. It finds more, so it is the default.

The attack's start steps are searched one after another, latest first (reverting to an
earlier snapshot invalidates the later ones, which the executor then rebuilds), the trials
split evenly between them, each step with a fresh sampler.

The best plan is then shrunk: each move dropped, then each number rounded, for as long as the
profit holds (at least 99% of it), so that the plan in `attack.json` is the simplest that
still makes the money.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from sim.agents.scripted import Move
from sim.attack.executor import Executor, TrialResult
from sim.attack.space import AttackInputError, AttackSpace, Slot, bribe_range, decode, usable_kinds
from sim.bounds import MAX_REPORTERS
from sim.scenario import Problem

POPULATION = 20
ELITE = 0.2
SMOOTHING = 0.5  # weight of the new estimate in each update
FLOOR = 0.05  # least probability a categorical choice keeps (mixed in uniformly)
PATIENCE = 3  # generations without a better plan before the distribution starts again
HOLDS = 0.99  # a shrink step keeps the profit if it keeps this share of it
MIN_STD = 0.05
TPE_STARTUP = 20  # TPE's random trials before it models (one CEM generation)


@dataclass
class Trial:
    """One trial's row: which, where, the plan, its result."""

    index: int
    phase: str  # "search" or "shrink"
    result: TrialResult
    seconds: float


@dataclass
class SearchResult:
    """Every trial, the best plan (shrunk), and how the search went."""

    trials: list[Trial]
    best: TrialResult
    unshrunk: TrialResult
    seconds: float
    first_profit: int | None  # trials run until the first plan above min_profit (1-based; shrinking's too)
    interrupted: bool = False  # Ctrl-C stopped it: the trials so far, the best unshrunk

    @property
    def trials_per_second(self) -> float:
        searched = [t for t in self.trials if t.phase == "search"]
        spent = sum(t.seconds for t in searched)
        return len(searched) / spent if spent else 0.0


class Categorical:
    """A distribution over n choices, smoothed towards the elites."""

    def __init__(self, n: int, first: np.ndarray | None = None) -> None:
        self.p = np.full(n, 1.0 / n) if first is None else first / first.sum()

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self.p), p=self.p))

    def update(self, chosen: list[int]) -> None:
        counts = np.bincount(chosen, minlength=len(self.p)) / max(len(chosen), 1)
        p = (1 - SMOOTHING) * self.p + SMOOTHING * counts
        self.p = (1 - FLOOR) * p / p.sum() + FLOOR / len(p)


class Clipped:
    """A normal clipped to [0, 1], moved towards the elites."""

    def __init__(self, mean: float = 0.5, std: float = 0.35) -> None:
        self.mean, self.std = mean, std

    def sample(self, rng: np.random.Generator) -> float:
        return float(np.clip(rng.normal(self.mean, self.std), 0.0, 1.0))

    def update(self, values: list[float]) -> None:
        if not values:
            return
        self.mean = (1 - SMOOTHING) * self.mean + SMOOTHING * float(np.mean(values))
        self.std = max((1 - SMOOTHING) * self.std + SMOOTHING * float(np.std(values)), MIN_STD)


@dataclass
class SlotDistribution:
    """The search's distribution over one slot of a plan."""

    kind: Categorical
    block: Categorical
    sub: Categorical
    market: Categorical
    side: Categorical
    count: Categorical
    blocks: Categorical
    amount: Clipped = field(default_factory=lambda: Clipped(0.8))  # attacks mostly go all in
    leverage: Clipped = field(default_factory=Clipped)
    factor: Clipped = field(default_factory=Clipped)

    DISCRETE = ("kind", "block", "sub", "market", "side", "count", "blocks")
    CONTINUOUS = ("amount", "leverage", "factor")

    def sample(self, rng: np.random.Generator) -> Slot:
        values = {name: getattr(self, name).sample(rng) for name in (*self.DISCRETE, *self.CONTINUOUS)}
        values["kind"] -= 1  # choice 0 is "no move"
        values["count"] += 1
        values["blocks"] += 1
        return Slot(**values)

    def update(self, slots: list[Slot]) -> None:
        for name in self.DISCRETE:
            offset = {"kind": 1, "count": -1, "blocks": -1}.get(name, 0)
            getattr(self, name).update([getattr(s, name) + offset for s in slots])
        for name in self.CONTINUOUS:
            getattr(self, name).update([getattr(s, name) for s in slots])


def first_distribution(space: AttackSpace, kinds: int, markets: int, reporters: int) -> list[SlotDistribution]:
    """Uniform over every choice but two: a slot is empty one time in five, and most moves
    use the first subaccount (an attack's moves mostly act on one account)."""
    kind_p = np.full(kinds + 1, 0.8 / kinds)
    kind_p[0] = 0.2
    subs = space.subaccounts
    sub_p = np.full(subs, 0.2 / (subs - 1)) if subs > 1 else np.ones(1)
    sub_p[0] = 0.8 if subs > 1 else 1.0
    return [SlotDistribution(kind=Categorical(kinds + 1, kind_p), block=Categorical(space.horizon),
                             sub=Categorical(subs, sub_p), market=Categorical(markets), side=Categorical(2),
                             count=Categorical(min(reporters, MAX_REPORTERS)), blocks=Categorical(space.horizon))
            for _ in range(space.max_moves)]


def in_order(plan: list[Slot]) -> list[Slot]:
    """The slots' blocks sorted, so that slot i is the plan's i-th move: each slot's
    distribution then learns one step of the attack (open first, withdraw later)."""
    blocks = sorted(slot.block for slot in plan)
    return [replace(slot, block=block) for slot, block in zip(plan, blocks)]


class Proposer(Protocol):
    """A search strategy: `ask` for the next plan, `tell` what it made."""

    def ask(self) -> list[Slot]: ...

    def tell(self, plan: list[Slot], profit: float) -> None: ...


class CrossEntropyProposer:
    """The cross-entropy method: generations of POPULATION plans drawn from the slot
    distributions, which then move towards the generation's best fifth; after PATIENCE
    generations without a better plan the distributions start again (the best plan is kept)."""

    def __init__(self, space: AttackSpace, kinds: int, markets: int, reporters: int, rng: np.random.Generator):
        self.fresh = lambda: first_distribution(space, kinds, markets, reporters)
        self.slots = self.fresh()
        self.rng = rng
        self.scored: list[tuple[float, list[Slot]]] = []
        self.stale, self.best = 0, float("-inf")

    def ask(self) -> list[Slot]:
        return in_order([d.sample(self.rng) for d in self.slots])

    def tell(self, plan: list[Slot], profit: float) -> None:
        self.scored.append((profit, plan))
        if len(self.scored) < POPULATION:
            return
        scored = sorted(self.scored, key=lambda pair: -pair[0])
        self.scored = []
        self.stale = 0 if scored[0][0] > self.best + abs(self.best) * 0.01 else self.stale + 1
        self.best = max(self.best, scored[0][0])
        elites = [plan for _, plan in scored[: max(2, math.ceil(ELITE * len(scored)))]]
        for i, dist in enumerate(self.slots):
            dist.update([plan[i] for plan in elites])
        if self.stale >= PATIENCE:  # stuck on a local best: explore afresh
            self.slots = self.fresh()
            self.stale = 0


class TPEProposer:
    """Optuna's Tree-structured Parzen Estimator (multivariate, grouped: a slot's parameters
    are asked only when the slot holds a move, so each kind of plan is its own subspace),
    seeded; the first TPE_STARTUP trials are random."""

    def __init__(self, space: AttackSpace, kinds: int, markets: int, reporters: int, seed: int):
        try:  # imported here: it takes a second, and only this sampler needs it
            import optuna
        except ImportError as exc:  # an extra, like Ray for sweeps
            raise AttackInputError([Problem("sampler", "tpe", "cem, or Optuna installed for tpe: pip install "
                                            "'perpsim[search]'", flag="--sampler")]) from exc

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():  # multivariate and group are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                 n_startup_trials=TPE_STARTUP)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.space, self.kinds, self.markets = space, kinds, markets
        self.reporters = min(reporters, MAX_REPORTERS)
        self.pending: Any = None  # the trial asked and not yet told (ask and tell alternate)

    def ask(self) -> list[Slot]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's experimental-feature notices, once per trial
            self.pending = self.study.ask()
            return [self._slot(self.pending, i) for i in range(self.space.max_moves)]

    def _slot(self, trial: Any, i: int) -> Slot:
        """Choices (kind, subaccount, market, side) are categorical, counts ordinal; a slot's
        parameters are asked only when it holds a move."""
        kind = trial.suggest_categorical(f"{i}.kind", list(range(-1, self.kinds)))
        if kind < 0:
            return Slot(kind=-1, block=0, sub=0, market=0, side=0, amount=0.0, leverage=0.0, factor=0.5, count=1,
                        blocks=1)
        choices = {"sub": self.space.subaccounts, "market": self.markets, "side": 2}
        horizon = self.space.horizon
        ordinal = {"block": (0, horizon - 1), "count": (1, self.reporters), "blocks": (1, horizon)}
        values: dict[str, Any] = {name: trial.suggest_categorical(f"{i}.{name}", list(range(n)))
                                  for name, n in choices.items()}
        values.update({name: trial.suggest_int(f"{i}.{name}", lo, hi) for name, (lo, hi) in ordinal.items()})
        values.update({name: trial.suggest_float(f"{i}.{name}", 0.0, 1.0) for name in ("amount", "leverage", "factor")})
        return Slot(kind=kind, **values)

    def tell(self, plan: list[Slot], profit: float) -> None:
        self.study.tell(self.pending, profit)
        self.pending = None


class Search:
    """The seeded search over one executor's snapshots."""

    def __init__(self, executor: Executor, space: AttackSpace, progress: Callable[[int, float], None] | None = None):
        self.executor = executor
        self.space = space
        self.kinds = usable_kinds(space, executor.scenario)
        self.markets = executor.markets
        self.reporters = len(executor.sim.protocol.reporters)
        self.bribe_max = bribe_range(executor.scenario)
        self.rng = np.random.default_rng(space.seed)
        self.trials: list[Trial] = []
        self.progress = progress or (lambda done, best: None)
        self.best: TrialResult | None = None

    def play(self, at_step: int, moves: list[Move], phase: str) -> TrialResult:
        start = time.perf_counter()
        result = self.executor.run(at_step, moves)
        self.trials.append(Trial(len(self.trials), phase, result, time.perf_counter() - start))
        if self.best is None or result.profit > self.best.profit:
            self.best = result
        self.progress(len(self.trials), self.best.profit)
        return result

    def run(self) -> SearchResult:
        started = time.perf_counter()
        steps = sorted(self.space.at_steps, reverse=True)
        budgets = [self.space.trials // len(steps) + (1 if i < self.space.trials % len(steps) else 0)
                   for i in range(len(steps))]
        interrupted = False
        try:
            for at_step, budget in zip(steps, budgets):
                self._search_at(at_step, budget)
        except KeyboardInterrupt:  # keep what was tried: the caller writes it
            interrupted = True
            if self.best is None:
                raise
        assert self.best is not None
        unshrunk = self.best
        best = unshrunk if interrupted else self.shrink(unshrunk)
        # trials run until the first plan above min_profit, shrinking's included (dropping a
        # move can turn a plan that made nothing into the best one)
        first = next((t.index + 1 for t in self.trials if t.result.profit > self.space.min_profit), None)
        return SearchResult(self.trials, best, unshrunk, time.perf_counter() - started, first, interrupted)

    def _search_at(self, at_step: int, budget: int) -> None:
        proposer = self._proposer(at_step)
        for _ in range(budget):
            plan = proposer.ask()
            result = self.play(at_step, decode(plan, self.kinds, self.markets, self.space, self.bribe_max), "search")
            proposer.tell(plan, result.profit)

    def _proposer(self, at_step: int) -> Proposer:
        dims = (len(self.kinds), len(self.markets), self.reporters)
        if self.space.sampler == "tpe":
            # each start step its own study, seeded from the search's seed and the step
            return TPEProposer(self.space, *dims, seed=(self.space.seed * 1_000_003 + at_step) % 2**32)
        return CrossEntropyProposer(self.space, *dims, self.rng)

    # -- shrinking -------------------------------------------------------------------------
    def shrink(self, best: TrialResult) -> TrialResult:
        """Drop moves, then round numbers, while the profit holds."""
        if best.profit <= 0:
            return best
        current = best
        i = 0
        while i < len(current.moves) and len(current.moves) > 1:
            trial = self.play(current.at_step, current.moves[:i] + current.moves[i + 1:], "shrink")
            if trial.profit >= HOLDS * current.profit:
                current = trial
            else:
                i += 1
        for i in range(len(current.moves)):
            for rounded in _roundings(current.moves[i]):
                if rounded == current.moves[i]:
                    continue
                moves = current.moves[:i] + [rounded] + current.moves[i + 1:]
                trial = self.play(current.at_step, moves, "shrink")
                if trial.profit >= HOLDS * current.profit:
                    current = trial
                    break
        return current


def _roundings(move: Move) -> list[Move]:
    """Coarser versions of a move, coarsest first: amounts to tenths then twentieths,
    leverage to whole then half numbers, factors to 0.05 then 0.01 (a leverage or a factor
    never rounded to 0: "a 0x long" would be a deposit that says it opens)."""
    return [replace(move, amount=round(move.amount * steps) / steps,
                    leverage=max(round(move.leverage * lev) / lev, 1 / lev) if move.leverage > 0 else 0.0,
                    factor=max(round(move.factor * fac) / fac, 1 / fac))
            for steps, lev, fac in ((10, 1, 20), (20, 2, 100))]


@contextmanager
def progress_bar(total: int, label: str, enabled: bool | None) -> Iterator[Callable[[int, float], None]]:
    """A rich progress bar of the trials and the best profit so far, on a terminal (stderr)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda done, best: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("trials"),
               TextColumn("best {task.fields[best]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total, best="-")
        yield lambda done, best: bar.update(task, completed=min(done, total), best=f"${best:,.0f}")
