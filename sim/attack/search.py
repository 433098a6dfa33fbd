"""The search: a seeded cross-entropy method over plans, then shrinking the winner.

Optuna is not among perpsim's dependencies, so the search is the cross-entropy method
(Rubinstein), which needs nothing but NumPy: each generation draws `population` plans from a
distribution over slots (a categorical for each discrete choice, a clipped normal for each
continuous one), plays them all, and moves the distribution towards the best fifth (with
smoothing, so no choice's probability reaches zero and the search keeps exploring). The
attack's start steps are searched one after another, latest first (reverting to an earlier
snapshot invalidates the later ones, which the executor then rebuilds), the trials split
evenly between them.

The best plan is then shrunk: each move dropped, then each number rounded, for as long as the
profit holds (at least 99% of it), so that the plan in `attack.json` is the simplest that
still makes the money.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from sim.agents.scripted import Move
from sim.attack.executor import Executor, TrialResult
from sim.attack.space import AttackSpace, Slot, bribe_range, decode, usable_kinds
from sim.bounds import MAX_REPORTERS

POPULATION = 20
ELITE = 0.2
SMOOTHING = 0.5  # weight of the new estimate in each update
FLOOR = 0.05  # least probability a categorical choice keeps (mixed in uniformly)
PATIENCE = 3  # generations without a better plan before the distribution starts again
HOLDS = 0.99  # a shrink step keeps the profit if it keeps this share of it
MIN_STD = 0.05


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
    first_profit: int | None  # trials until the first plan with profit above min_profit (1-based), if any
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
        first = next((t.index + 1 for t in self.trials
                      if t.phase == "search" and t.result.profit > self.space.min_profit), None)
        return SearchResult(self.trials, best, unshrunk, time.perf_counter() - started, first, interrupted)

    def _search_at(self, at_step: int, budget: int) -> None:
        slots = first_distribution(self.space, len(self.kinds), len(self.markets), self.reporters)
        done, stale, best = 0, 0, float("-inf")
        while done < budget:
            if stale >= PATIENCE:  # stuck on a local best: explore afresh (the best plan is kept)
                slots = first_distribution(self.space, len(self.kinds), len(self.markets), self.reporters)
                stale = 0
            size = min(POPULATION, budget - done)
            drawn = [in_order([d.sample(self.rng) for d in slots]) for _ in range(size)]
            scored = []
            for plan in drawn:
                result = self.play(at_step, decode(plan, self.kinds, self.markets, self.space, self.bribe_max),
                                   "search")
                scored.append((result.profit, plan))
            done += size
            scored.sort(key=lambda pair: -pair[0])
            stale = 0 if scored[0][0] > best + abs(best) * 0.01 else stale + 1
            best = max(best, scored[0][0])
            elites = [plan for _, plan in scored[: max(2, math.ceil(ELITE * len(scored)))]]
            for i, dist in enumerate(slots):
                dist.update([plan[i] for plan in elites])

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
    leverage to whole then half numbers, factors to 0.05 then 0.01."""
    return [replace(move, amount=round(move.amount * steps) / steps, leverage=round(move.leverage * lev) / lev,
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
