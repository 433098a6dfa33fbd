"""Scenarios run through a node: `perpsim run --backend rpc` on anvil, `--attach` to a
deployment made by `ape run deploy`, and a node that stops in the middle of a run.

The same scenario and seed give the same `events.csv` on anvil, revm and py-evm: three EVMs,
one history.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from web3 import Web3

from sim.chain.rpc import RpcChain
from sim.cli import main
from sim.deployment import Deployment
from sim.devnet import REPO_ROOT
from tests.utils.anvil import Anvil, free_port, require_anvil

pytestmark = pytest.mark.integration

STEPS = "12"  # short, but enough for trades, funding, LP deposits and reports


def perpsim(*args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(main, [*args, "--no-progress"], catch_exceptions=False)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def calm_deployment(devnet_url: str, ape_deploy: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `calm` scenario's protocol deployed through ape, as `make devnet` does."""
    out = tmp_path_factory.mktemp("calm") / "deployment.json"
    done = ape_deploy(devnet_url, "--config", "calm", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "IncompleteFieldDefinitionWarning" not in done.stderr  # issue 14, item 8: ape commands print none
    return out


def without_node_columns(events_csv: str) -> str:
    """An rpc run's events.csv without the node's block and hash columns (its last two)."""
    rows = list(csv.reader(io.StringIO(events_csv)))
    assert rows[0][-2:] == ["node_block", "tx_hash"]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(row[:-2] for row in rows)
    return out.getvalue()


def test_same_history_on_anvil_revm_and_pyevm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replays: list[str] = []
    eth_call = RpcChain._eth_call

    def counting(self: RpcChain, call: dict[str, Any], block: str, *args: Any, **kwargs: Any) -> str:
        if block != "latest":  # a mined transaction re-run on its parent block
            replays.append(call.get("data", "")[:10])
        return eth_call(self, call, block, *args, **kwargs)

    monkeypatch.setattr(RpcChain, "_eth_call", counting)
    with Anvil(require_anvil()) as url:  # a fresh node: its clock starts where revm's does
        on_anvil = perpsim("run", "calm", "--steps", STEPS, "--backend", "rpc", "--rpc-url", url,
                           "--out", str(tmp_path / "rpc"))
        assert on_anvil.exit_code == 0, on_anvil.output + on_anvil.stderr
        # every event and step row names the node's block and the transaction, as the node has them
        events = list(csv.DictReader((tmp_path / "rpc" / "events.csv").open()))
        web3 = Web3(Web3.HTTPProvider(url))
        for event in events[:: max(len(events) // 20, 1)]:
            receipt = web3.eth.get_transaction_receipt(event["tx_hash"])
            assert receipt["blockNumber"] == int(event["node_block"])
        steps = list(csv.DictReader((tmp_path / "rpc" / "steps.csv").open()))
        assert list(steps[0])[:3] == ["step", "block", "node_block"]
        assert int(steps[-1]["node_block"]) == web3.eth.block_number
    transactions = read_json(tmp_path / "rpc" / "transactions.json")
    sent = transactions["setup_transactions"] + transactions["agent_transactions"]
    # return values are replayed only where needed (vault deposits here), not for every transaction
    assert len(replays) <= sent // 20, (len(replays), sent)
    for backend in ("revm", "pyevm"):
        done = perpsim("run", "calm", "--steps", STEPS, "--backend", backend, "--out", str(tmp_path / backend))
        assert done.exit_code == 0, done.output + done.stderr
    events_csv = without_node_columns((tmp_path / "rpc" / "events.csv").read_text())
    assert events_csv.count("\n") > 100 and ",Trade," in events_csv
    assert events_csv == (tmp_path / "revm" / "events.csv").read_text()
    assert events_csv == (tmp_path / "pyevm" / "events.csv").read_text()
    assert "node_block" not in (tmp_path / "revm" / "steps.csv").read_text().splitlines()[0]

    summary = read_json(tmp_path / "rpc" / "summary.json")
    assert summary["status"] == "complete"
    meta = summary["meta"]
    assert meta["backend"] == "rpc" and meta["rpc_url"] == url and meta["chain_id"] == 31337
    assert meta["node_client"].startswith("anvil/")
    assert meta["node_first_block"] == 1 and meta["node_last_block"] > 100  # one block per transaction


def test_run_attached_to_an_ape_deployment(calm_deployment: Path, devnet_url: str, tmp_path: Path) -> None:
    deployment = Deployment.load(calm_deployment)
    done = perpsim("run", "calm", "--steps", STEPS, "--attach", str(calm_deployment), "--out", str(tmp_path / "run"))
    assert done.exit_code == 0, done.output + done.stderr
    assert "on rpc" in done.output
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "complete" and summary["books_balance"] is True
    assert summary["meta"]["rpc_url"] == devnet_url
    assert summary["meta"]["node_first_block"] > deployment.end_block
    events = (tmp_path / "run" / "events.csv").read_text()
    assert ",Exchange,Trade," in events and ",Oracle,PriceReported," in events


def test_attaching_again_says_it_continues_from_the_used_state(calm_deployment: Path, tmp_path: Path) -> None:
    first = perpsim("run", "calm", "--steps", "3", "--attach", str(calm_deployment), "--out", str(tmp_path / "a"))
    assert first.exit_code == 0, first.output + first.stderr
    again = perpsim("run", "calm", "--steps", "3", "--attach", str(calm_deployment), "--out", str(tmp_path / "b"))
    assert again.exit_code == 0, again.output + again.stderr
    assert f"note: the deployment in {calm_deployment} has been used since it was deployed" in again.output
    assert "this run continues from the state earlier runs left" in again.output


def test_attach_to_a_stopped_devnet_says_to_start_it(calm_deployment: Path, tmp_path: Path) -> None:
    data = read_json(calm_deployment)
    data["rpc_url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the devnet is gone
    stopped = tmp_path / "deployment.json"
    stopped.write_text(json.dumps(data))
    done = perpsim("run", "calm", "--attach", str(stopped), "--out", str(tmp_path / "run"))
    assert done.exit_code == 2
    assert f"no JSON-RPC node answers at {data['rpc_url']}: connection refused" in done.stderr
    assert "is the devnet running? `make devnet` starts anvil" in done.stderr
    assert "HTTPConnectionPool" not in done.stderr and "urllib3" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_attach_refuses_a_deployment_of_another_config(calm_deployment: Path, tmp_path: Path) -> None:
    data = read_json(calm_deployment)
    data["config"]["markets"][0]["skew_scale"] = 123.0
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    done = perpsim("run", "calm", "--steps", "2", "--attach", str(other), "--out", str(tmp_path / "run"))
    assert done.exit_code == 2
    assert "markets[0].skew_scale: 200000.0 vs 123.0" in done.stderr
    assert not (tmp_path / "run").exists()


def test_attach_needs_the_rpc_backend(calm_deployment: Path, tmp_path: Path) -> None:
    done = perpsim("run", "calm", "--attach", str(calm_deployment), "--backend", "revm", "--out", str(tmp_path))
    assert done.exit_code == 2 and "--attach runs on a node" in done.stderr


def test_node_that_stops_mid_run_leaves_a_partial_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    anvil = Anvil(require_anvil())
    url = anvil.start()
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "sim.cli", "run", "calm", "--steps", "5000", "--backend", "rpc", "--rpc-url", url,
             "--out", str(out), "--no-progress"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 120
        steps = out / "steps.csv"
        while time.monotonic() < deadline and run.poll() is None:
            if steps.is_file() and len(steps.read_text().splitlines()) > 5:  # header + 5 steps
                break
            time.sleep(0.05)
    finally:
        anvil.stop()  # the node goes away in the middle of the run
    stdout, stderr = run.communicate(timeout=120)

    assert run.returncode == 1, stdout + stderr
    assert f"the node at {url} stopped answering during step" in stderr
    assert "the run stopped (steps 0 to " in stderr and str(out) in stderr
    assert f"draw its report with: perpsim report {out}" in stderr
    status = read_json(out / "status.json")
    assert status["status"] == "partial" and "stopped answering" in status["error"]
    assert status["stage"] == "steps" and "report.html" in status["missing"]
    recorded = status["last_step"]
    assert recorded >= 4
    rows = (out / "steps.csv").read_text().splitlines()
    assert len(rows) == 1 + recorded + 1  # header, steps 0..recorded, one market: nothing lost or half-written
    summary = read_json(out / "summary.json")
    assert summary["status"] == "partial" and summary["last_step"] == recorded
    assert summary["meta"]["rpc_url"] == url and summary["meta"]["node_last_block"] is None
    assert (out / "events.csv").read_text().count("\n") > 50
