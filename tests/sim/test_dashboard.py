"""The live dashboard (sim/dashboard/): the feed that tails a run directory, the server, the
command line, and in a real browser (Debian's Chromium through Playwright) the page following
a run and the report's first screen."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.dashboard.feed import RunFeed, TailedCsv
from sim.report import build_timeline, load_run, write_report
from tests.sim.scripted_session import STEPS, run_session
from tests.utils.browser import browser_page, chromium_path, keep_screenshot

pytest.importorskip("starlette", reason="the dashboard needs its extra: pip install 'perpsim[dashboard]'")
pytest.importorskip("uvicorn", reason="the dashboard needs its extra: pip install 'perpsim[dashboard]'")

from sim.dashboard.server import Dashboard  # noqa: E402

LIVE_STEPS = 170  # flash-crash gaps at step 150: the run has a timeline, a waterfall and a zoom
LIVE_PACE = 0.15  # seconds a step at least: on revm the run otherwise ends before the browser has started


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished scripted run with its scenario file and report."""
    run_dir = run_session(tmp_path_factory.mktemp("dash") / "run").recorder.run_dir
    (run_dir / "scenario.toml").write_text('name = "scripted-crash"\nsteps = 10\n\n[[markets]]\nname = "ETH"\n')
    write_report(run_dir)
    return run_dir


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local test server
        return response.status, response.read().decode()


# -- the feed, the server, the command line ---------------------------------------------------


def test_feed_replays_a_finished_run(finished: Path) -> None:
    messages = list(RunFeed(finished).poll())
    kinds = [kind for kind, _ in messages]
    assert kinds == ["meta", "steps", "timeline", "status"]
    data = dict(messages)
    assert data["meta"]["scenario"] == "scripted-crash" and data["meta"]["markets"] == ["ETH"]
    steps = pd.read_csv(finished / "steps.csv")
    assert [r["step"] for r in data["steps"]] == list(range(STEPS))
    assert [r["markets"]["ETH"]["index_price"] for r in data["steps"]] == list(steps["index_price"])
    assert [r["insurance_balance"] for r in data["steps"]] == list(steps["insurance_balance"])
    expected = [e.text() for e in build_timeline(load_run(finished)) if e.kind != "shock"]
    assert [e["text"] for e in data["timeline"]] == expected  # the report's timeline (shocks come from the scenario)
    assert data["status"] == {"state": "complete", "last_step": STEPS - 1, "error": None, "report": "report"}


def test_feed_sends_only_what_is_new(finished: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "growing"
    run_dir.mkdir()
    (run_dir / "scenario.toml").write_text((finished / "scenario.toml").read_text()
                                           + '\n[[shocks]]\nkind = "price_jump"\nat_step = 4\nfraction = -0.1\n')
    lines = (finished / "steps.csv").read_text().splitlines(keepends=True)
    steps_csv = run_dir / "steps.csv"
    feed = RunFeed(run_dir)
    steps_csv.write_text("".join(lines[:4]) + lines[4][:20])  # three rows and a torn fourth
    first = dict(feed.poll())
    assert [r["step"] for r in first["steps"]] == [0, 1, 2] and first["status"]["state"] == "starting"
    assert first["timeline"] == [] and first["meta"]["shocks"][0]["step"] == 4  # a shock shows once it happens
    with open(steps_csv, "a") as handle:
        handle.write(lines[4][20:] + lines[5])
    second = dict(feed.poll())
    assert [r["step"] for r in second["steps"]] == [3, 4]
    assert [e["text"] for e in second["timeline"]] == ["price gaps -10% (every market)"]
    assert list(feed.poll()) == []  # nothing new, nothing sent
    tail = TailedCsv(run_dir / "absent.csv")
    assert tail.new_rows() == []


def test_server_serves_the_page_offline_streams_and_stops_at_once(finished: Path) -> None:
    board = Dashboard(finished, port=0)
    assert board.host == "127.0.0.1" and board.url.startswith("http://127.0.0.1:")
    board.start()
    try:
        status, page = _get(board.url)
        assert status == 200 and "static/vendor/uPlot.iife.min.js" in page
        assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from a CDN: it works offline
        status, script = _get(board.url + "static/vendor/uPlot.iife.min.js")
        assert status == 200 and script.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
        assert _get(board.url + "report")[1] == (finished / "report.html").read_text()
        stream = urllib.request.urlopen(board.url + "events", timeout=10)  # noqa: S310
        head = stream.read(200).decode()
        assert head.startswith("event: meta\ndata: {")
    finally:
        started = time.monotonic()
        board.stop()  # with the event stream still open
        stopped_in = time.monotonic() - started
    assert stopped_in < 5 and not board.thread.is_alive()  # type: ignore[union-attr]
    with pytest.raises(OSError):
        _get(board.url)


def test_report_route_waits_for_the_report(finished: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(finished, tmp_path / "no-report"))
    (run_dir / "report.html").unlink()
    board = Dashboard(run_dir, port=0)
    board.start()
    try:
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(board.url + "report")
    finally:
        board.stop()


def test_command_line_checks_the_dashboard_flags(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["run", "calm", "--port", "9999"])
    assert result.exit_code == 2 and "--port is for the dashboard: add --dashboard" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["run", "calm", "--steps", "1", "--dashboard", "--port", str(port),
                                      "--out", str(tmp_path / "never")])
    assert result.exit_code == 2 and f"cannot serve the dashboard on 127.0.0.1:{port}" in result.output
    assert not (tmp_path / "never").exists()  # refused before the run began
    result = runner.invoke(main, ["dashboard", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "does not exist" in result.output


# -- in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`perpsim run flash-crash --dashboard` in its own process: (process, page URL, run directory)."""
    chromium_path()  # skip before starting a run no browser will look at
    run_dir = tmp_path_factory.mktemp("live") / "flash-crash"
    perpsim = Path(sys.executable).with_name("perpsim")
    process = subprocess.Popen(
        [str(perpsim), "run", "flash-crash", "--steps", str(LIVE_STEPS), "--dashboard", "--port", "0",
         "--out", str(run_dir), "--no-progress", "--pace", str(LIVE_PACE)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C works even from a background job
    url = None
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        if match := re.match(r"dashboard: (http://\S+)$", line.strip()):
            url = match.group(1)
    if url is None:
        process.kill()
        pytest.fail(f"perpsim run --dashboard printed no URL: {process.stdout.read()}")
    yield process, url, run_dir
    if process.poll() is None:
        process.kill()
        process.wait()


def test_live_dashboard_follows_the_run_and_links_the_report(live: tuple[subprocess.Popen[str], str, Path],
                                                             tmp_path: Path) -> None:
    process, url, run_dir = live
    with browser_page() as page:
        page.goto(url)
        page.wait_for_function("/^step \\d+$/.test(document.getElementById('step').textContent)", timeout=120_000)
        seen = page.text_content("#step")
        page.wait_for_function(f"document.getElementById('step').textContent !== {json.dumps(seen)}", timeout=60_000)
        page.wait_for_function("window.dashboard.charts['price-ETH'].data[0].length > 1", timeout=30_000)
        points = page.evaluate("window.dashboard.charts['price-ETH'].data[1].filter(v => v != null).length")
        assert points > 1
        shot = tmp_path / "dashboard-mid-run.png"
        page.screenshot(path=str(shot))
        keep_screenshot(shot)
        assert shot.stat().st_size > 20_000  # a page with charts, not a blank one
        page.wait_for_selector("#report-link", timeout=240_000)
        assert "The run is complete." in page.text_content("#ended")
        assert int(page.text_content("#step").split()[-1]) == LIVE_STEPS - 1
        page.click("#report-link")
        page.wait_for_selector("#timeline")
        assert page.title() == "perpsim: flash-crash"
    process.send_signal(signal.SIGINT)  # the dashboard stays up after the run until Ctrl-C
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "dashboard stopped" in output


def test_report_first_screen_shows_the_crash_waterfall_and_timeline(live: tuple[subprocess.Popen[str], str, Path],
                                                                    tmp_path: Path) -> None:
    _, _, run_dir = live
    deadline = time.monotonic() + 240
    while not (run_dir / "report.html").exists() and time.monotonic() < deadline:
        time.sleep(1)
    with browser_page(1440, 900) as page:
        page.goto((run_dir / "report.html").as_uri())
        boxes = {name: page.locator(selector).bounding_box() for name, selector in
                 (("timeline", "#timeline"), ("waterfall", "#waterfall img"), ("zoom", "#zoom img"))}
        for name, box in boxes.items():
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900, (name, box)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fills, never overflows
        overflowing = page.evaluate(
            "[...document.querySelectorAll('td, th, p, h1, h2, figcaption')]"
            ".filter(el => el.scrollWidth > el.clientWidth + 1).map(el => el.textContent.slice(0, 40))")
        assert overflowing == []
        shot = tmp_path / "report-first-screen.png"
        page.screenshot(path=str(shot))
        keep_screenshot(shot)

