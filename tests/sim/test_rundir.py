"""The run directory's life (issue 14, items 2 and 4): a finished run is never overwritten
without --force, status.json is there from the first moment and says what is missing when a
run stops early, and `perpsim report` draws the report of any run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import sim.report
from sim.cli import main
from sim.engine import Simulation, run_scenario
from sim.protocol import Protocol
from sim.rundir import RunDirectoryError, chart_files
from sim.scenario import validate_scenario

TINY: dict[str, Any] = {
    "name": "tiny", "seed": 1, "steps": 8, "vault_liquidity": 1_000_000.0,
    "markets": [{"name": "ETH", "price": {"kind": "gbm", "mu": 0.0, "sigma": 0.5}}],
    "agents": [{"kind": "oracle_reporter", "count": 2},
               {"kind": "noise_trader", "count": 3, "params": {"trade_probability": 0.5}}],
}


def tiny_file(tmp_path: Path) -> Path:
    from sim.scenario import dumps_toml

    path = tmp_path / "tiny.toml"
    path.write_text(dumps_toml(TINY))
    return path


def perpsim(*args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(main, [*args], catch_exceptions=False)


def status_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "status.json").read_text())


def test_out_refuses_a_finished_run_unless_forced(tmp_path: Path) -> None:
    scenario, out = tiny_file(tmp_path), tmp_path / "run"
    first = perpsim("run", str(scenario), "--out", str(out), "--no-progress")
    assert first.exit_code == 0, first.output + first.stderr
    summary = (out / "summary.json").read_text()
    again = perpsim("run", str(scenario), "--out", str(out), "--seed", "2", "--no-progress")
    assert again.exit_code == 2
    assert f"--out {out} is not empty (it holds a complete run of tiny, 8 steps recorded)" in again.stderr
    assert "--force" in again.stderr
    assert (out / "summary.json").read_text() == summary  # nothing was touched
    (out / "stale.png").write_bytes(b"old chart")
    (out / "notes.txt").write_text("mine")
    forced = perpsim("run", str(scenario), "--out", str(out), "--seed", "2", "--force", "--no-progress")
    assert forced.exit_code == 0, forced.output + forced.stderr
    assert json.loads((out / "summary.json").read_text())["seed"] == 2
    assert not (out / "stale.png").exists()  # the old run's files went
    assert (out / "notes.txt").read_text() == "mine"  # anything else stays


def test_force_replaces_only_a_run(tmp_path: Path) -> None:
    out = tmp_path / "somewhere"
    out.mkdir()
    (out / "thesis.tex").write_text("")
    result = perpsim("run", str(tiny_file(tmp_path)), "--out", str(out), "--force", "--no-progress")
    assert result.exit_code == 2
    assert "holds no perpsim run; --force replaces only a run directory's files" in result.stderr
    with pytest.raises(RunDirectoryError, match="is not empty"):
        run_scenario(validate_scenario(TINY), out_dir=out, report=False, progress=False)


def test_status_is_written_before_anything_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_deploy(*args: Any, **kwargs: Any) -> Protocol:
        raise OverflowError("int too big to convert")

    monkeypatch.setattr(Protocol, "deploy", broken_deploy)
    with pytest.raises(OverflowError):
        run_scenario(validate_scenario(TINY), out_dir=tmp_path / "run", report=False, progress=False)
    status = status_of(tmp_path / "run")
    assert status["status"] == "partial" and status["stage"] == "setup"
    assert status["error"] == "OverflowError: int too big to convert"
    assert status["missing"] == ["steps.csv", "events.csv", "summary.json", "transactions.json",
                                 "steps 0 to 7 (not run)", "report.html"]


def test_ctrl_c_while_the_report_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run itself finished; the report did not: the status says partial, and exactly which
    parts of the report are missing. `perpsim report` then completes it."""
    real = sim.report.write_report
    first_chart = chart_files()[0]

    def interrupted(run_dir: Path) -> Path:
        (Path(run_dir) / first_chart).write_bytes(b"drawn before the Ctrl-C")
        raise KeyboardInterrupt

    monkeypatch.setattr(sim.report, "write_report", interrupted)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_scenario(validate_scenario(TINY), out_dir=out, progress=False)
    status = status_of(out)
    assert status["status"] == "partial" and status["stage"] == "report"
    assert status["error"] == "interrupted while drawing the report"
    assert status["missing"] == ["report.html", *chart_files()[1:]]
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"

    monkeypatch.setattr(sim.report, "write_report", real)
    drawn = perpsim("report", str(out))
    assert drawn.exit_code == 0, drawn.output + drawn.stderr
    assert drawn.output == f"report: {out / 'report.html'}\nstatus: complete\n"
    status = status_of(out)
    assert status["status"] == "complete" and status["stage"] == "done" and status["error"] is None
    assert status["missing"] == [] and all((out / name).is_file() for name in chart_files())


def test_an_interrupted_run_says_what_is_missing_and_gets_a_report(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    original = Simulation.step

    def step(self: Simulation, s: int) -> dict[str, float]:
        if s == 5:
            raise KeyboardInterrupt
        return original(self, s)

    monkeypatch.setattr(Simulation, "step", step)
    out = tmp_path / "run"
    result = perpsim("run", str(tiny_file(tmp_path)), "--out", str(out), "--no-progress")
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C) during step 5" in result.stderr
    assert "steps 0 to 4 were recorded" in result.stderr
    assert f"draw its report with: perpsim report {out}" in result.stderr
    status = status_of(out)
    assert status["status"] == "partial" and status["stage"] == "steps"
    assert status["missing"] == ["steps 5 to 7 (not run)", "report.html", *chart_files()]
    assert not (out / "report.html").exists()

    drawn = perpsim("report", str(out))
    assert drawn.exit_code == 0, drawn.output + drawn.stderr
    assert (out / "report.html").is_file()
    assert drawn.output.endswith("status: partial; missing: steps 5 to 7 (not run)\n")
    assert "PARTIAL RUN" in (out / "report.html").read_text()


def test_report_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    result = perpsim("report", str(tmp_path))
    assert result.exit_code == 2 and "is not a run directory" in result.stderr
