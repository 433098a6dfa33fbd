"""The command line's small promises: a version, a licence that matches the package's, and a
README that points only at files in the repository."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from sim.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"perpsim {version('perpsim')}\n"


def test_licence_file_matches_pyproject() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text


def test_readme_points_only_inside_the_repository() -> None:
    readme = (REPO / "README.md").read_text()
    assert "../" not in readme
    for target in re.findall(r"\]\(([^)#][^)]*)\)", readme):  # markdown links other than anchors
        assert (REPO / target).exists(), target
    for path in re.findall(r"`((?:sim|tests|docs|scripts|benchmarks|contracts)/[\w./-]+)`", readme):
        assert (REPO / path.rstrip("/")).exists() or "<" in path, path


def test_the_headline_separates_bankruptcies_and_shows_bad_debt_in_red(tmp_path: Path) -> None:
    """Issue 14, item 7: reporter-bribe's manipulator is declared bankrupt, not liquidated; the
    headline says so, calls the check "books balance", and puts the bad debt in red."""
    result = CliRunner(mix_stderr=False).invoke(
        main, ["run", "reporter-bribe", "--steps", "70", "--out", str(tmp_path / "run"), "--no-progress"], color=True)
    assert result.exit_code == 0, result.output + result.stderr
    lines = {line.split("  ")[1].strip(): line for line in result.output.splitlines() if line.startswith("  ")}
    red = "\x1b[31m"
    assert red in lines["bad debt (USD)"]
    assert red in lines["bankruptcies (not liquidations)"] and lines["bankruptcies (not liquidations)"].endswith(
        "1\x1b[0m")
    # the block's liquidation limit (0.0005 x 500,000 = 250 ETH) closes half of its 500 ETH
    # first; the rest is declared bankrupt in the next block
    assert lines["liquidations"].endswith(" 1")
    assert lines["books balance"].endswith(" yes") and "solvent" not in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["deficit_at_end"] > 0 and red in lines["deficit left (USD)"]  # ADL has not closed it all by step 70
    assert red not in lines["ADL fills"] and red not in lines["trader survival"]
    assert "LP PnL, marked to market (USD)" in lines


def test_a_node_that_does_not_answer_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Issue 14, item 6: checked before the run directory exists, with what to do."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        out = tmp_path / "run"
        result = CliRunner(mix_stderr=False).invoke(
            main, ["run", "calm", "--backend", "rpc", "--rpc-url", f"http://127.0.0.1:{port}", "--out", str(out)])
    assert result.exit_code == 2
    assert f"no JSON-RPC node answers at http://127.0.0.1:{port}: connection refused" in result.stderr
    assert "make devnet" in result.stderr and "HTTPConnectionPool" not in result.stderr
    assert not out.exists()


def test_a_node_url_needs_its_scheme(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner(mix_stderr=False).invoke(
        main, ["run", "calm", "--backend", "rpc", "--rpc-url", "localhost:8545", "--out", str(out)])
    assert result.exit_code == 2
    assert "localhost:8545 is not a node URL: expected http://HOST:PORT or https://..., e.g. http://localhost:8545" \
        in result.stderr
    assert not out.exists()


def test_both_sides_of_a_defended_scenario_and_their_comparison_page(tmp_path: Path) -> None:
    """`run --defences off|on` runs a scenario's [defences] as written, or with its [defended]
    table over them; `compare` prints the two and writes one page with both (issue 11, item 5)."""
    runner = CliRunner(mix_stderr=False)
    for side in ("off", "on"):
        result = runner.invoke(main, ["run", "reporter-bribe", "--steps", "70", "--defences", side,
                                      "--out", str(tmp_path / side), "--no-progress"])
        assert result.exit_code == 0, result.output + result.stderr
    ran = {side: tomllib.loads((tmp_path / side / "scenario.toml").read_text()) for side in ("off", "on")}
    assert ran["off"]["defences"]["allow_unrealized_withdrawal"] is True
    assert ran["on"]["defences"]["allow_unrealized_withdrawal"] is False  # [defended] over [defences]
    assert ran["on"]["oracle"]["max_deviation"] == 0.1
    summary = {side: json.loads((tmp_path / side / "summary.json").read_text()) for side in ("off", "on")}
    assert summary["off"]["total_bad_debt"] > summary["on"]["total_bad_debt"]  # the defence holds

    result = runner.invoke(main, ["compare", str(tmp_path / "off"), str(tmp_path / "on")])
    assert result.exit_code == 0, result.output + result.stderr
    page_path = tmp_path / "compare-off-vs-on.html"
    assert f"comparison page: {page_path}" in result.output
    page = page_path.read_text()
    rows = dict(re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", page))
    for figure in ("bad debt", "insurance drawdown", "deficit left at the end", "attacker profit",
                   "LP PnL, marked to market, at the end", "liquidations", "liquidation delay, median (blocks)"):
        assert figure in rows, figure
    cells = re.findall(r"<td class='num[^']*'>([^<]*)</td>", rows["bad debt"])
    assert cells[0] == f"${summary['off']['total_bad_debt']:,.0f}" and cells[2].startswith("-$")
    assert "class='num good'" in rows["bad debt"]  # B, the defended side, is better
    assert page.count("<img") == 1 and "data:image/png;base64," in page  # one chart, embedded


def test_defences_sides_need_a_defended_table() -> None:
    result = CliRunner(mix_stderr=False).invoke(main, ["run", "calm", "--defences", "on", "--steps", "1"])
    assert result.exit_code == 2
    assert '--defences = "on": expected a scenario with a [defended] table' in result.stderr
