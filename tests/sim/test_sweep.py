"""`perpsim sweep`: a sweep's numbers are the numbers of the same runs made one by one, on
local workers (reusing their deployment through snapshot/revert) and on Ray; bad grid keys
and values stop it before any run; a run that raises, or whose worker dies, is recorded and
the sweep goes on; Ctrl-C and a killed sweep leave runs.parquet readable and --resume
repeats no finished run; the risk table is the statistics of the runs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from sim.cli import EXIT_BAD_INPUT, main
from sim.chain import make_chain
from sim.engine import TransactionMeter, run_scenario
from sim.scenario import dumps_toml, load_scenario
from sim.sweep import SweepInputError, SweepInterrupted, make_plan, parse_grid, parse_seeds, run_sweep
from sim.sweep.executors import LocalExecutor
from sim.sweep.plan import set_path
from sim.sweep.results import JOURNAL_FILE, RUNS_FILE, flatten, read_rows
from sim.sweep.risk import RISK_FILE
from sim.sweep.runner import SWEEP_FILE, Observer
from sim.sweep.worker import RunRecord

STEPS = 20
SEEDS = (0, 1, 2, 3)
GRID = ("defences.deviation_guard=0,0.1",)

# A crash at step 8 with a thin insurance fund, so seeds differ in liquidations and bad debt.
SCENARIO: dict[str, Any] = {
    "name": "sweep-test", "seed": 0, "steps": STEPS, "insurance_fund": 500.0, "vault_liquidity": 1_000_000.0,
    "markets": [{"name": "ETH", "skew_scale": 50_000.0, "price": {"kind": "gbm", "mu": 0.0, "sigma": 1.5}}],
    "oracle": {"max_age": 60, "min_reporters": 2},
    "agents": [
        {"kind": "oracle_reporter", "count": 3},
        {"kind": "noise_trader", "count": 4,
         "params": {"trade_probability": 0.6, "long_bias": 0.8, "order_leverage": 3.0, "max_leverage": 8.0}},
        {"kind": "leveraged_whale", "count": 1, "params": {"collateral": 20_000.0, "leverage": 8.0}},
        {"kind": "lp", "count": 1, "params": {"deposit": 50_000.0, "check_every": 5}},
        {"kind": "liquidation_keeper", "count": 1, "params": {"reaction_delay": 2}},
        {"kind": "adl_keeper", "count": 1},
    ],
    "shocks": [{"kind": "price_jump", "at_step": 8, "fraction": -0.25}],
}


def write_scenario(directory: Path, **changes: Any) -> Path:
    data = json.loads(json.dumps(SCENARIO))
    for key, value in changes.items():
        set_path(data, key, value)
    path = directory / "sweep-test.toml"
    path.write_text(dumps_toml(data))
    return path


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("scenario"))


@pytest.fixture(scope="module")
def local_sweep(scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 grid points × 4 seeds on 2 local workers."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    plan = make_plan(str(scenario_file), seeds=SEEDS, axes=parse_grid(GRID))
    run_sweep(plan, out, LocalExecutor(2))
    return out


def summary_columns(summary: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The summary's fields under their runs.parquet names."""
    run_columns = {"run_key", "scenario_hash", "grid_point", "seed", "status", "error", "wall_seconds", "cpu_seconds", "worker",
                   "attempts", "deployment"}
    return {(f"summary.{k}" if k in run_columns else k): v for k, v in flatten(summary).items()}


def same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------------------


def test_local_sweep_matches_runs_made_one_by_one(local_sweep: Path, scenario_file: Path, tmp_path: Path) -> None:
    rows = read_rows(local_sweep / RUNS_FILE)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"complete"}
    # both workers reused their deployment (snapshot/revert) and deployed again for the second point
    assert {r["deployment"] for r in rows} == {"fresh", "reused"}
    assert sum(r["deployment"] == "reused" for r in rows) >= 4
    assert sum(r["liquidation_count"] for r in rows) > 0  # the crash did something: the numbers are not all zero
    for row in rows:
        guard = row["grid.defences.deviation_guard"]
        scenario = load_scenario(scenario_file, defences={"deviation_guard": guard}).with_overrides(seed=row["seed"])
        single = run_scenario(scenario, out_dir=tmp_path / f"{guard}-{row['seed']}", progress=False, report=False)
        expected = summary_columns(single.summary, row)
        assert {k: row.get(k) for k in expected} == expected, f"seed {row['seed']}, deviation_guard {guard}"


def test_the_cli_run_gives_the_sweeps_summary(local_sweep: Path, scenario_file: Path, tmp_path: Path) -> None:
    """`perpsim run` itself, once, for the first row (the others use its engine call)."""
    row = read_rows(local_sweep / RUNS_FILE)[0]
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(scenario_file), "--seed", str(row["seed"]), "--out", str(out),
                                       "--defence", f"deviation_guard={row['grid.defences.deviation_guard']}"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    expected = summary_columns(summary, row)
    assert {k: row.get(k) for k in expected} == expected


def test_risk_table_is_the_statistics_of_the_runs(local_sweep: Path) -> None:
    rows = read_rows(local_sweep / RUNS_FILE)
    risk = read_rows(local_sweep / RISK_FILE)
    assert len(risk) == 2
    for point in risk:
        runs = [r for r in rows if r["grid_point"] == point["grid_point"]]
        bad_debt = np.array([r["total_bad_debt"] for r in runs])
        assert point["complete"] == 4
        assert point["var95_bad_debt"] == pytest.approx(np.percentile(bad_debt, 95))
        assert point["var99_bad_debt"] == pytest.approx(np.percentile(bad_debt, 99))
        assert point["cvar95_bad_debt"] == pytest.approx(bad_debt[bad_debt >= np.percentile(bad_debt, 95)].mean())
        assert point["lar95_liquidations"] == pytest.approx(np.percentile([r["liquidation_notional"] for r in runs], 95))
        assert point["p_deficit"] == pytest.approx(np.mean([r["bad_debt_to_deficit"] > 0 for r in runs]))
        assert point["lp_pnl_mean"] == pytest.approx(np.mean([r["lp_pnl_usd"] for r in runs]))
        assert point["max_leverage"] == pytest.approx(10.0)  # 1 / the default imf
        for name in ("var95_bad_debt", "lp_pnl_mean", "trader_survival"):
            assert point[f"{name}_ci_low"] <= point[name] <= point[f"{name}_ci_high"]
        assert "p_attacker_profit" not in point  # no attacker in this scenario
    html = (local_sweep / "sweep.html").read_text()
    assert "VaR95" in html and html.count("<img") >= 2


def test_a_chain_reused_run_after_run_carries_one_meter() -> None:
    chain = make_chain("revm")
    first = TransactionMeter.install(chain)
    second = TransactionMeter.install(chain)
    chain.deploy_raw(chain.new_account("a"), bytes.fromhex("600a600c600039600a6000f3602a60005260206000f3"))
    assert (first.sent, second.sent) == (0, 1)


# ---------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------


class KillOnce(Observer):
    """Kills the worker a chosen run was given, on its first attempt only."""

    def __init__(self, executor: Any, seed: int) -> None:
        self.executor, self.seed = executor, seed
        self.killed: list[int] = []

    def submitted(self, task: Any, worker: int, attempt: int) -> None:
        if task.key.seed == self.seed and task.point == 1 and attempt == 1:
            self.killed.append(worker)
            self.executor.kill(worker)


def test_ray_sweep_gives_the_same_numbers(local_sweep: Path, scenario_file: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the `cluster` extra (make test installs it)")
    from sim.sweep.ray_executor import RayExecutor, start_local_ray

    start_local_ray(2)
    try:
        executor = RayExecutor(2)
        observer = KillOnce(executor, seed=3)
        plan = make_plan(str(scenario_file), seeds=SEEDS, axes=parse_grid(GRID))
        result = run_sweep(plan, tmp_path / "ray", executor, observer=observer)
    finally:
        ray.shutdown()
    assert observer.killed, "the worker was not killed"
    local = {r["run_key"]: r for r in read_rows(local_sweep / RUNS_FILE)}
    rows = read_rows(tmp_path / "ray" / RUNS_FILE)
    assert result.counts == {"complete": 8}
    assert sorted(local) == sorted(r["run_key"] for r in rows)
    skip = {"wall_seconds", "cpu_seconds", "worker", "attempts", "deployment"}
    for row in rows:
        assert {k: v for k, v in row.items() if k not in skip} == {k: v for k, v in local[row["run_key"]].items()
                                                                  if k not in skip}
    retried = [r for r in rows if r["attempts"] == 2]
    assert [(r["seed"], json.loads(r["grid_point"])) for r in retried] == [(3, {"defences.deviation_guard": 0.1})]


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid, message", [
    ("markets.ETH.imff=0.1", "markets[0].imff = 0.1: expected a known field (did you mean 'imf'?)"),
    ("markets.BTC.imf=0.1", "markets.BTC: no entry named 'BTC'; the scenario has ETH"),
    ("nonsense=1", "nonsense = 1: expected a known field"),
    ("markets.ETH.imf=0.2,5", "with markets.ETH.imf=5: markets[0].imf = 5: expected"),
    ("defences.deviation_guard", "expected KEY=V1,V2,..."),
    ("seed=1,2", "give them with --seeds"),
])
def test_a_bad_grid_is_refused_before_any_run(scenario_file: Path, tmp_path: Path, grid: str, message: str) -> None:
    out = tmp_path / "never"
    result = CliRunner().invoke(main, ["sweep", str(scenario_file), "--seeds", "2", "--grid", grid, "--out", str(out)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert message in result.output
    assert not out.exists()


def test_seeds_and_grid_parsing() -> None:
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("5..7") == (5, 6, 7)
    for bad in ("0", "7..5", "x", "-1..2"):
        with pytest.raises(SweepInputError, match="--seeds"):
            parse_seeds(bad)
    (axis,) = parse_grid(["agents[1].params.long_bias=[0.1, 0.2],0.5, \"x,y\""])
    assert axis.key == "agents.1.params.long_bias" and axis.values == ([0.1, 0.2], 0.5, "x,y")
    with pytest.raises(SweepInputError, match="already a grid key"):
        parse_grid(["steps=1", "steps=2"])


def test_without_ray_the_ray_executor_says_how_to_install_it(scenario_file: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "sim.sweep.ray_executor", raising=False)
    result = CliRunner().invoke(main, ["sweep", str(scenario_file), "--executor", "ray", "--out", str(tmp_path / "x")])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "pip install -e '.[cluster]'" in result.output


# ---------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------


def write_series(path: Path, start: float) -> None:
    rows = [f"{1_700_000_000 + 3600 * i},{start * (1 - 0.01 * i):.2f}" for i in range(10)]
    path.write_text("timestamp,price\n" + "\n".join(rows) + "\n")


class KillWorkers(Observer):
    """Kills the worker of seed `always` on every attempt, and of seed `once` on the first."""

    def __init__(self, executor: LocalExecutor, always: int, once: int) -> None:
        self.executor, self.always, self.once = executor, always, once

    def submitted(self, task: Any, worker: int, attempt: int) -> None:
        if task.point == 0 and (task.key.seed == self.always or (task.key.seed == self.once and attempt == 1)):
            self.executor.kill(worker)


def test_failed_and_lost_runs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """Point b's price series disappears after planning: its runs raise. On point a, one run's
    worker dies twice (recorded lost) and another's once (retried, complete)."""
    scenario = write_scenario(tmp_path, **{"markets.ETH.price": {"kind": "replay", "path": "a.csv", "hold_at_end": True},
                                           "markets.ETH.initial_price": 2000.0})
    write_series(tmp_path / "a.csv", 2000.0)
    write_series(tmp_path / "b.csv", 2000.0)
    plan = make_plan(str(scenario), seeds=(0, 1, 2), axes=parse_grid(["markets.ETH.price.path=a.csv,b.csv"]), steps=10)
    (tmp_path / "b.csv").unlink()
    executor = LocalExecutor(2)
    result = run_sweep(plan, tmp_path / "out", executor, observer=KillWorkers(executor, always=1, once=2))
    rows = {(r["grid.markets.ETH.price.path"], r["seed"]): r for r in read_rows(tmp_path / "out" / RUNS_FILE)}
    assert result.counts == {"complete": 2, "failed": 3, "lost": 1}
    assert [rows["a.csv", s]["status"] for s in (0, 1, 2)] == ["complete", "lost", "complete"]
    assert (rows["a.csv", 1]["attempts"], rows["a.csv", 2]["attempts"]) == (2, 2)
    assert "died" in rows["a.csv", 1]["error"]
    for seed in (0, 1, 2):
        row = rows["b.csv", seed]
        assert row["status"] == "failed" and "b.csv" in row["error"], row["error"]
    assert rows["a.csv", 0]["total_bad_debt"] is not None
    risk = read_rows(tmp_path / "out" / RISK_FILE)
    assert [(r["complete"], r["failed"]) for r in risk] == [(2, 1), (0, 3)]
    assert "var95_bad_debt" in risk[0] and risk[1].get("var95_bad_debt") is None


class InterruptAfter(Observer):
    def __init__(self, records: int) -> None:
        self.left = records

    def finished(self, record: RunRecord) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_runs_parquet_readable_and_resume_finishes(scenario_file: Path, tmp_path: Path) -> None:
    plan = make_plan(str(scenario_file), seeds=(0, 1, 2), steps=10)
    out = tmp_path / "out"
    with pytest.raises(SweepInterrupted):
        run_sweep(plan, out, LocalExecutor(1), observer=InterruptAfter(2))
    first = read_rows(out / RUNS_FILE)
    assert len(first) == 2 and json.loads((out / SWEEP_FILE).read_text())["status"] == "interrupted"
    with pytest.raises(SweepInputError, match="--resume"):
        run_sweep(plan, out, LocalExecutor(1))
    result = run_sweep(plan, out, LocalExecutor(1), resume=True)
    assert (result.skipped, result.ran) == (2, 1)
    rows = read_rows(out / RUNS_FILE)
    assert [r["seed"] for r in rows] == [0, 1, 2]
    assert rows[:2] == first  # untouched, not run again


def test_resume_after_a_killed_sweep_repeats_no_finished_run(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sim.cli", "sweep", str(scenario_file), "--seeds", "5", "--steps", "10",
               "--workers", "1", "--out", str(out), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            journal = out / JOURNAL_FILE
            if journal.exists() and len(journal.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished = {json.loads(line)["run_key"]: json.loads(line) for line in (out / JOURNAL_FILE).read_text().splitlines()}
    assert 2 <= len(finished) < 5
    assert len(read_rows(out / RUNS_FILE)) >= 1  # readable after a kill
    result = CliRunner().invoke(main, ["sweep", str(scenario_file), "--seeds", "5", "--steps", "10", "--workers", "1",
                                       "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert f"{5 - len(finished)} run(s)" in result.output and f"{len(finished)} skipped" in result.output
    rows = read_rows(out / RUNS_FILE)
    assert sorted(r["seed"] for r in rows) == [0, 1, 2, 3, 4]
    for row in rows:
        if row["run_key"] in finished:
            assert row == finished[row["run_key"]]  # the same record: not run again


@pytest.fixture(autouse=True, scope="module")
def _no_stray_ray() -> Iterator[None]:
    yield
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        ray.shutdown()
