"""The report (sim/report/): a page drawn from a run directory's tables alone, for complete,
partial and killed runs. The timeline and the loss waterfall are checked against
`summary.json`, which the recorder computes independently, from its own tally and the
chain's views; `compare_runs` puts two summaries side by side."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from sim.engine import run_scenario
from sim.report import CHARTS, UsdFormatter, build_timeline, compare_runs, load_run, loss_waterfall, write_report
from sim.report.charts import _line, mark_shocks, zoom_windows
from sim.report.headline import HEADLINE, headline_rows, verdict
from sim.report.run import Shock
from sim.scenario import load_scenario
from tests.sim.scripted_session import CRASH_STEP, KEEPER_STEP, STEPS, run_session

CRASH_STEPS = 200  # flash-crash gaps at step 150; liquidations (a block's limit at a time), bankruptcies and ADL (capped by its targets' margin) clear the deficit by step 195


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A complete, a crashed (partial) and a killed scripted run, each copied away from its chain
    so the report can only read the tables."""
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


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flash-crash cut short after its cascade: liquidations, bankruptcies, insurance payouts, ADL."""
    scenario = load_scenario("flash-crash").with_overrides(steps=CRASH_STEPS)
    result = run_scenario(scenario, out_dir=tmp_path_factory.mktemp("flash") / "run", progress=False)
    assert result.summary["adl_count"] > 0 and result.summary["bankruptcy_count"] > 0  # the cascade is in
    drawn_by_the_run = (result.run_dir / "report.html").read_text()  # drawn while status.json said "report"
    assert "Run complete" in drawn_by_the_run and "INCOMPLETE" not in drawn_by_the_run
    return result.run_dir


@pytest.fixture(scope="module")
def crash_summary(crash: Path) -> dict:
    return json.loads((crash / "summary.json").read_text())


# -- the timeline and the waterfall against summary.json ----------------------------------


def test_timeline_entries_add_up_to_the_summary(crash: Path, crash_summary: dict) -> None:
    entries = build_timeline(load_run(crash))
    by_kind: dict[str, list] = {}
    for entry in entries:
        by_kind.setdefault(entry.kind, []).append(entry)
    s = crash_summary
    assert sum(e.count for e in by_kind["liquidation"]) == s["liquidation_count"]
    assert sum(e.amount for e in by_kind["liquidation"]) == pytest.approx(s["liquidation_notional"], rel=1e-9)
    assert sum(e.count for e in by_kind["bankruptcy"]) == s["bankruptcy_count"]
    assert sum(e.amount for e in by_kind["insurance_payout"]) == pytest.approx(s["bad_debt_paid_by_insurance"], rel=1e-9)
    assert sum(e.extra["bad_debt"] for e in by_kind["insurance_payout"]) <= s["total_bad_debt"] + 1e-6
    assert sum(e.count for e in by_kind["adl"]) == s["adl_count"]
    assert sum(e.amount for e in by_kind["adl"]) == pytest.approx(s["adl_deficit_covered"], rel=1e-9)
    (shock,) = by_kind["shock"]
    assert (shock.step, shock.text()) == (150, "price gaps -30% (every market)")


def test_timeline_is_in_order_and_starts_with_the_first_liquidation(crash: Path) -> None:
    run = load_run(crash)
    entries = build_timeline(run)
    assert [e.step for e in entries] == sorted(e.step for e in entries)
    first = [e for e in entries if e.kind == "liquidation"][0]
    steps = run.steps.groupby("step")["liquidations"].sum()
    assert first.first and first.step == int(steps[steps > 0].index[0])
    assert first.text().startswith("first liquidation")
    assert not any(e.first for e in entries if e is not first)
    # a cascade is one line: nothing of one kind is split by fewer than MERGE_GAP quiet steps
    adl = [e for e in entries if e.kind == "adl"]
    assert all(b.step - a.last_step > 3 for a, b in zip(adl, adl[1:], strict=False))


def test_waterfall_matches_the_summary(crash: Path, crash_summary: dict) -> None:
    (eth,) = loss_waterfall(load_run(crash))
    s = crash_summary
    assert eth.market == "ETH"
    assert eth.bad_debt == pytest.approx(s["total_bad_debt"], rel=1e-9)
    assert eth.insurance == pytest.approx(s["bad_debt_paid_by_insurance"], rel=1e-9)
    assert eth.adl == pytest.approx(s["adl_deficit_covered"], rel=1e-9)
    assert eth.deficit_left == pytest.approx(s["deficit_at_end"], abs=1e-9)
    assert eth.vault == 0.0  # every dollar accounted for
    assert sum(amount for _, amount in eth.payers()) == pytest.approx(eth.bad_debt, rel=1e-12)


def test_crash_report_opens_on_the_story(crash: Path, crash_summary: dict) -> None:
    page = write_report(crash).read_text()
    # the first screen's parts come first, in this order: verdict, timeline, waterfall, zoom, headline
    order = [page.index(f"id='{part}'") for part in ("verdict", "timeline", "waterfall", "zoom")]
    assert order == sorted(order) and order[-1] < page.index("<h2>Headline</h2>")
    assert "Around step 150: price gaps -30% (every market)" in page
    s = crash_summary
    assert f"Bad debt ${s['total_bad_debt']:,.0f}, all of it paid" in page
    waterfall = page[page.index("id='waterfall'"):page.index("id='zoom'")]
    for value in (s["total_bad_debt"], s["bad_debt_paid_by_insurance"], s["adl_deficit_covered"]):
        assert f"${value:,.0f}" in waterfall
    timeline = page[page.index("id='timeline'"):page.index("id='waterfall'")]
    for entry in build_timeline(load_run(crash)):
        assert entry.text() in timeline
    assert (crash / "zoom-0.png").exists() and (crash / "waterfall.png").exists()


def test_zoom_window_covers_the_crash_and_its_aftermath(crash: Path) -> None:
    (window,) = zoom_windows(load_run(crash))
    assert window.first < 150 and window.last >= 158  # the ADL fills come 6 to 8 blocks after the gap
    assert window.last - window.first < CRASH_STEPS / 2  # a zoom, not the whole run


# -- the page ------------------------------------------------------------------------------


ALWAYS_DRAWN = {"prices", "losses", "keeper_delay", "lp", "insurance", "funding", "open_interest"}


def test_report_draws_every_chart_as_a_readable_png(runs: dict[str, Path], complete_report: str) -> None:
    assert set(CHARTS) == ALWAYS_DRAWN  # every registered chart is drawn for every run; the attacker's only where one is
    assert not (runs["complete"] / "attacker.png").exists()
    for name in ALWAYS_DRAWN:
        height, width = matplotlib.image.imread(runs["complete"] / f"{name}.png").shape[:2]
        assert 1400 <= width <= 1700 and 300 <= height <= 1500, (name, width, height)


def test_report_html_is_self_contained(runs: dict[str, Path], complete_report: str) -> None:
    html = complete_report
    assert html.count("src='data:image/png;base64,") == len(ALWAYS_DRAWN) + 2  # + the zoom and the waterfall
    assert not re.search(r"(src|href)=['\"](?!data:|#)", html)  # nothing fetched from elsewhere
    assert "scripted-crash" in html and "Two leveraged longs" in html  # name and description (meta)
    assert "Run complete" in html and "PARTIAL" not in html
    assert f"step {CRASH_STEP}: price_jump" not in html  # shocks read as words, not keys
    assert "<summary>Scenario as run</summary>" in html and "from the scenario file" in html


def test_headline_has_readable_names_units_and_colours(runs: dict[str, Path], complete_report: str) -> None:
    summary = json.loads((runs["complete"] / "summary.json").read_text())
    headline = complete_report[complete_report.index("<h2>Headline</h2>"):complete_report.index("<h2>Run</h2>")]
    assert not re.search(r">[a-z]+_[a-z_]+<", headline)  # no snake_case keys
    rows = {f.key: (text, severity) for f, text, severity in headline_rows(summary)}
    assert rows["total_bad_debt"] == (f"${summary['total_bad_debt']:,.0f}", "warn")  # bad debt, paid: amber
    assert rows["deficit_at_end"] == ("$0.00", "good")
    assert rows["liquidation_delay_blocks_median"][0] == f"{KEEPER_STEP - CRASH_STEP} blocks"
    assert rows["trader_survival_rate"][0] == f"{100 * summary['trader_survival_rate']:.1f}%"
    assert "Keeper delay, median" in headline and f"{KEEPER_STEP - CRASH_STEP} blocks" in headline
    assert {f.key for f in HEADLINE} >= {"total_bad_debt", "deficit_at_end", "books_balance"}


def test_verdict_colour_comes_from_bad_debt_and_deficit() -> None:
    balanced = {"solvency_checks": {"exchange_books_balance": True, "token_supply_conserved": True}}
    assert verdict({**balanced, "total_bad_debt": 0.0, "deficit_at_end": 0.0})[0] == "good"
    assert verdict({**balanced, "total_bad_debt": 5.0, "deficit_at_end": 0.0, "bad_debt_paid_by_insurance": 5.0})[0] == "warn"
    severity, text = verdict({**balanced, "total_bad_debt": 9.0, "deficit_at_end": 4.0})
    assert severity == "bad" and "$4.00" in text  # balanced books, yet a deficit left is red
    broken = {"solvency_checks": {"exchange_books_balance": False}, "total_bad_debt": 0.0}
    assert verdict(broken) == ("bad", "Solvency check failed: exchange books balance.")


def test_partial_run_is_marked_clearly(runs: dict[str, Path]) -> None:
    html = write_report(runs["partial"]).read_text()
    assert "PARTIAL RUN" in html and "simulated crash at step 5" in html
    assert f"5 of {STEPS} steps recorded" in html
    assert (runs["partial"] / "prices.png").exists()


def test_killed_run_still_gets_a_report(runs: dict[str, Path]) -> None:
    html = write_report(runs["killed"]).read_text()
    assert "INCOMPLETE RUN" in html
    assert "No summary" in html
    assert html.count("data:image/png;base64,") >= len(CHARTS)


def test_one_step_run_shows_its_points(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(runs["complete"], tmp_path / "one-step"))
    steps = pd.read_csv(run_dir / "steps.csv")
    steps[steps["step"] == 0].to_csv(run_dir / "steps.csv", index=False)
    html = write_report(run_dir).read_text()
    assert "The whole run" in html
    assert html.count("data:image/png;base64,") >= len(CHARTS)
    fig, ax = plt.subplots()
    _line(ax, [0], [1.0])
    _line(ax, range(10), range(10))
    assert [line.get_marker() for line in ax.lines] == ["o", "None"]  # one point is drawn, as a marker
    plt.close(fig)


def test_replay_runs_are_dated(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(runs["complete"], tmp_path / "replay"))
    for name in ("summary.json", "status.json"):
        data = json.loads((run_dir / name).read_text())
        data["meta"]["calendar_start"] = 1583971200  # 2020-03-12 00:00 UTC
        (run_dir / name).write_text(json.dumps(data))
    run = load_run(run_dir)
    assert run.when(0) == "12 Mar 2020 00:00 UTC"  # step 0 is one step (12 s) in: shown to the minute
    assert run.when(299) == "12 Mar 2020 01:00 UTC"  # (299 + 1) x 12 s = one hour
    html = write_report(run_dir).read_text()
    assert "replay dates" in html and "12 Mar 2020 00:00 UTC" in html
    assert f"step {CRASH_STEP}" not in html[html.index("id='timeline'"):html.index("id='waterfall'")]


def test_a_shock_is_marked_only_on_the_markets_it_hits(runs: dict[str, Path]) -> None:
    run = load_run(runs["complete"])
    run.meta = {**run.meta, "shocks": [{"step": 3, "kind": "price_jump", "fraction": -0.2, "market": "BTC"},
                                       {"step": 5, "kind": "keeper_outage", "duration": 2}]}
    fig, (eth, btc) = plt.subplots(2, 1)
    mark_shocks(run, [eth, btc], ["ETH", "BTC"])
    assert sorted(line.get_xdata()[0] for line in eth.lines) == [5]  # the BTC gap is not on the ETH panel
    assert sorted(line.get_xdata()[0] for line in btc.lines) == [3, 5]
    assert [t.get_text() for t in btc.texts] == ["price gaps -20% (BTC)"]
    plt.close(fig)


def test_bribes_and_scenario_shocks_read_as_words(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(runs["complete"], tmp_path / "bribed"))
    for name in ("summary.json", "status.json"):
        data = json.loads((run_dir / name).read_text())
        del data["meta"]["shocks"]
        data["meta"]["bribes"] = [{"step": 4, "end": 7, "reporters": 2, "factor": 1.3}]
        (run_dir / name).write_text(json.dumps(data))
    (run_dir / "scenario.toml").write_text(
        'name = "scripted-crash"\n\n[[shocks]]\nkind = "oracle_freeze"\nat_step = 3\nduration = 4\nmarket = "ETH"\n')
    run = load_run(run_dir)
    assert run.shocks == [Shock(3, "oracle_freeze", 4, "ETH", {}),
                          Shock(4, "bribe", 3, "", {"reporters": 2, "factor": 1.3})]
    html = write_report(run_dir).read_text()
    assert "oracle reports stop (ETH) for 4 steps" in html
    assert "manipulator bribes 2 reporters (price x 1.3) for 3 steps" in html


def test_attacker_pnl_is_charted_where_there_is_an_attacker(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(runs["complete"], tmp_path / "attacked"))
    rows = ["step,label,role,equity,notional,maintenance_margin,pnl"]
    rows += [f"{s},manipulator-0,manipulator,{1000 + 50 * s},0,0,{50 * s}" for s in range(STEPS)]
    rows += [f"{s},noise_trader-0,trader,1000,0,0,0" for s in range(STEPS)]
    (run_dir / "accounts.csv").write_text("\n".join(rows) + "\n")
    html = write_report(run_dir).read_text()
    assert (run_dir / "attacker.png").exists() and "Attacker PnL" in html


def test_load_run_reads_only_the_directory(runs: dict[str, Path]) -> None:
    run = load_run(runs["complete"])
    assert run.markets == ["ETH"] and run.steps_recorded == STEPS and run.state == "complete"
    assert run.shocks[0].step == 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(runs["complete"] / "nowhere")


def test_compare_runs_shows_both_values_and_the_difference(runs: dict[str, Path]) -> None:
    table = compare_runs(runs["complete"], runs["partial"])
    lines = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip()}
    assert lines["liquidation_count"][1:] == ["2", "0", "-2"]
    assert lines["steps_recorded"][1:] == ["10", "5", "-5"]
    assert lines["status"][1:] == ["complete", "partial", "differs"]
    assert lines["seed"][1:] == ["7", "7", "same"]  # identity fields are marked, not subtracted (issue 14)
    assert lines["first_block"][1:] == ["1", "1", "same"]
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
