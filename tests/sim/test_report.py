"""The report (sim/report.py): charts and one self-contained HTML page from a run directory's
tables alone, for complete, partial and killed runs; and `compare_runs`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import pytest

from sim.report import CHARTS, UsdFormatter, compare_runs, load_run, write_report
from tests.sim.scripted_session import STEPS, run_session


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A complete, a crashed (partial) and a killed run, each copied away from its chain so the
    report can only read the tables."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, kwargs in (("complete", {}), ("partial", {"crash_at": 5}), ("killed", {"finish": False})):
        recorded = run_session(root / f"{name}-live", **kwargs).recorder.run_dir
        out[name] = Path(shutil.copytree(recorded, root / name))
    (out["complete"] / "scenario.toml").write_text(
        'name = "scripted-crash"\ndescription = "from the scenario file"\nseed = 7\n')
    return out


@pytest.fixture(scope="module")
def complete_report(runs: dict[str, Path]) -> str:
    return write_report(runs["complete"]).read_text()


def test_report_draws_every_chart_as_a_readable_png(runs: dict[str, Path], complete_report: str) -> None:
    for name in CHARTS:
        png = runs["complete"] / f"{name}.png"
        assert png.exists(), name
        height, width = matplotlib.image.imread(png).shape[:2]
        assert 1000 <= width <= 1300 and 300 <= height <= 1300, (name, width, height)
    assert set(CHARTS) == {"prices", "funding", "open_interest", "solvency", "liquidations"}


def test_report_html_is_self_contained_with_the_summary(runs: dict[str, Path], complete_report: str) -> None:
    html = complete_report
    summary = json.loads((runs["complete"] / "summary.json").read_text())
    assert html.count("src='data:image/png;base64,") == len(CHARTS)
    assert not re.search(r"src=['\"](?!data:)", html)  # nothing fetched from elsewhere
    assert "scripted-crash" in html and "Two leveraged longs" in html  # name and description (meta)
    assert "Run complete" in html and "PARTIAL" not in html
    for key in ("liquidation_count", "total_bad_debt", "insurance_drawdown_pct", "trader_survival_rate",
                "solvency_checks.token_supply_conserved", "liquidation_delay_blocks_median"):
        assert f"<td>{key}</td>" in html, key
    assert f"{summary['total_bad_debt']:,.2f}" in html
    assert "step 3: price_jump" in html  # shocks from the meta
    assert "<h2>Scenario as run</h2>" in html and "from the scenario file" in html


def test_partial_run_is_marked_clearly(runs: dict[str, Path]) -> None:
    html = write_report(runs["partial"]).read_text()
    assert "PARTIAL RUN" in html and "simulated crash at step 5" in html
    assert f"5 of {STEPS} steps recorded" in html
    assert (runs["partial"] / "prices.png").exists()


def test_killed_run_still_gets_a_report(runs: dict[str, Path]) -> None:
    html = write_report(runs["killed"]).read_text()
    assert "INCOMPLETE RUN" in html
    assert "No summary" in html
    assert html.count("data:image/png;base64,") == len(CHARTS)


def test_load_run_reads_only_the_directory(runs: dict[str, Path]) -> None:
    run = load_run(runs["complete"])
    assert run.markets == ["ETH"] and run.steps_recorded == STEPS and run.state == "complete"
    assert run.shocks[0]["step"] == 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(runs["complete"] / "nowhere")


def test_compare_runs_shows_both_values_and_the_difference(runs: dict[str, Path]) -> None:
    table = compare_runs(runs["complete"], runs["partial"])
    lines = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip()}
    assert lines["liquidation_count"][1:] == ["2", "0", "-2"]
    assert lines["steps_recorded"][1:] == ["10", "5", "-5"]
    assert lines["status"][1:] == ["complete", "partial", "differs"]
    assert lines["seed"][1:] == ["7", "7", "0"]
    assert lines["liquidation_delay_blocks_max"][1:] == ["3", "-", "differs"]
    assert "A: complete" in table and "B: partial" in table
    with pytest.raises(FileNotFoundError, match="summary.json"):
        compare_runs(runs["complete"], runs["killed"])


def test_dollar_ticks_are_distinct() -> None:
    formatter = UsdFormatter()
    assert formatter.format_ticks([1_000_000, 1_002_000, 1_004_000]) == ["$1.000M", "$1.002M", "$1.004M"]
    assert formatter.format_ticks([0, 250, 500, 1750]) == ["$0", "$250", "$500", "$1,750"]
    assert formatter.format_ticks([8_400, 9_000, 10_000]) == ["$8.4k", "$9.0k", "$10.0k"]
    assert formatter.format_ticks([-2e9, 0, 2e9]) == ["-$2B", "$0", "$2B"]


def test_shocks_fall_back_to_the_scenario_file(runs: dict[str, Path], tmp_path: Path) -> None:
    """The engine may leave shocks out of the meta: the report reads the scenario's [[shocks]]."""
    run_dir = Path(shutil.copytree(runs["complete"], tmp_path / "no-meta-shocks"))
    for name in ("summary.json", "status.json"):
        data = json.loads((run_dir / name).read_text())
        del data["meta"]["shocks"]
        (run_dir / name).write_text(json.dumps(data))
    (run_dir / "scenario.toml").write_text(
        'name = "scripted-crash"\n\n[[shocks]]\nkind = "oracle_freeze"\nat_step = 3\nduration = 4\n')
    assert load_run(run_dir).shocks == [{"step": 3, "kind": "oracle_freeze", "duration": 4}]
    assert "step 3: oracle_freeze for 4 steps" in write_report(run_dir).read_text()
