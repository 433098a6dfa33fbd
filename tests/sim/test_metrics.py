"""The recorder (sim/metrics.py) on a scripted session: the step and event tables, the summary
against the events and the engineered keeper delay, a crashed and a killed run, determinism
on one backend and identical events across backends."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from sim.metrics import (
    EVENT_COLUMNS,
    STEP_METRICS,
    SUMMARY_METRICS,
    Participant,
    StepCollector,
    SummaryCollector,
)
from sim.units import WAD
from tests.sim.scripted_session import CRASH_STEP, KEEPER_STEP, PRICES, STEPS, Session, run_session

STEP_COLUMNS = [
    "step", "block", "timestamp", "market", "true_price", "index_price", "oracle_valid", "mark_price",
    "funding_rate_per_day", "cumulative_funding", "oi_long", "oi_short", "vault_nav", "vault_share_price", "lp_pnl",
    "insurance_balance", "deficit", "liquidations", "liquidated_size", "liquidated_notional", "bankruptcies",
    "bad_debt", "deleverages", "liquidatable_accounts", "keeper_delay_max",
]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    return run_session(tmp_path_factory.mktemp("run") / "complete")


@pytest.fixture(scope="module")
def run_dir(session: Session) -> Path:
    return session.recorder.run_dir


@pytest.fixture(scope="module")
def steps(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "steps.csv")


@pytest.fixture(scope="module")
def events(run_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / "events.csv")
    frame["args"] = frame["args"].map(json.loads)
    return frame


@pytest.fixture(scope="module")
def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# -- steps.csv ------------------------------------------------------------------------


def test_steps_table_has_one_row_per_step_and_market(steps: pd.DataFrame) -> None:
    assert list(steps.columns) == STEP_COLUMNS == list(STEP_METRICS.columns)
    assert len(steps) == STEPS  # one market
    assert list(steps["step"]) == list(range(STEPS))
    assert (steps["block"].diff().dropna() == 1).all()  # one block per step
    assert (steps["timestamp"].diff().dropna() == 12).all()
    assert set(steps["market"]) == {"ETH"}
    assert list(steps["true_price"]) == list(PRICES)
    assert list(steps["index_price"]) == list(PRICES)  # reporters report the true price each step
    assert steps["oracle_valid"].all()


def test_steps_table_shows_the_crash_and_the_late_keeper(steps: pd.DataFrame) -> None:
    by_step = steps.set_index("step")
    liquidatable = by_step["liquidatable_accounts"]
    assert list(liquidatable[liquidatable > 0].index) == list(range(CRASH_STEP, KEEPER_STEP))
    assert (liquidatable[liquidatable > 0] == 2).all()  # alice and carol wait for the keeper
    liquidations = by_step["liquidations"]
    assert list(liquidations[liquidations > 0].index) == [KEEPER_STEP] and liquidations[KEEPER_STEP] == 2
    assert by_step.loc[KEEPER_STEP, "liquidated_size"] == pytest.approx(54.0)  # 45 + 9 ETH
    # at the fills, which carry the closed sizes' SIP-279 impact: within a few basis points of the index
    assert by_step.loc[KEEPER_STEP, "liquidated_notional"] == pytest.approx(54.0 * PRICES[KEEPER_STEP], rel=1e-3)
    assert by_step.loc[KEEPER_STEP, "bad_debt"] > 0 and by_step["bad_debt"].drop(KEEPER_STEP).eq(0).all()
    assert by_step.loc[KEEPER_STEP, "insurance_balance"] < by_step.loc[KEEPER_STEP - 1, "insurance_balance"]
    assert by_step.loc[KEEPER_STEP, "oi_long"] == 0 and by_step.loc[KEEPER_STEP - 1, "oi_long"] == pytest.approx(54.0)
    assert (by_step["oi_short"] == 5.0).all()


def test_last_row_matches_the_chain_views(session: Session, steps: pd.DataFrame) -> None:
    """The table is read from views, not computed: its last row is what the views say now
    (one 12 s block later, so funding has moved the Vault's NAV by a few cents)."""
    protocol, last = session.protocol, steps.iloc[-1]
    assert last["insurance_balance"] == protocol.insurance_balance()
    assert last["mark_price"] == protocol.mark_price("ETH")
    assert last["funding_rate_per_day"] == protocol.funding_rate("ETH")
    assert (last["oi_long"], last["oi_short"]) == protocol.open_interest("ETH")
    assert last["deficit"] == protocol.deficit("ETH")
    assert last["vault_nav"] == pytest.approx(protocol.vault_nav(), abs=0.01)


# -- events.csv -----------------------------------------------------------------------


def test_events_table_holds_the_liquidations_at_the_keeper_step(session: Session, events: pd.DataFrame) -> None:
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert events["log_index"].is_monotonic_increasing and events["log_index"].is_unique
    liquidations = events[events["event"] == "Liquidation"]
    assert set(liquidations["contract"]) == {"Liquidator"}
    assert set(liquidations["step"]) == {KEEPER_STEP}
    assert {a["owner"] for a in liquidations["args"]} == {session.accounts["alice"], session.accounts["carol"]}
    assert {a["keeper"] for a in liquidations["args"]} == {session.accounts["keeper"]}
    bad_debt = events[events["event"] == "BadDebt"]
    assert set(bad_debt["contract"]) == {"Exchange"} and set(bad_debt["step"]) == {KEEPER_STEP}
    trades = events[events["event"] == "Trade"]
    assert set(trades["step"]) == {0} and len(trades) == 3


def test_events_before_the_recorder_are_setup(events: pd.DataFrame) -> None:
    setup = events[events["step"] == -1]
    assert {"MarketAdded", "Deposit", "Funded"} <= set(setup["event"])
    assert set(setup.loc[setup["event"] == "Deposit", "contract"]) == {"Exchange", "Vault"}


def test_event_args_are_plain_json(run_dir: Path) -> None:
    """Ints stay exact (JSON ints, uint256 included), addresses are checksummed strings."""
    with open(run_dir / "events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    approval = next(json.loads(r["args"]) for r in rows if r["event"] == "Approval")
    assert approval["value"] == 2**256 - 1
    liquidation = next(json.loads(r["args"]) for r in rows if r["event"] == "Liquidation")
    assert liquidation["size"] in (-45 * WAD, -9 * WAD)  # a whole long, to the wei
    assert isinstance(liquidation["price"], int) and abs(liquidation["price"] - int(PRICES[KEEPER_STEP]) * WAD) < WAD
    assert liquidation["owner"].startswith("0x") and liquidation["owner"] != liquidation["owner"].lower()


# -- summary.json ---------------------------------------------------------------------


def test_summary_counts_match_the_events(summary: dict, events: pd.DataFrame) -> None:
    liquidations = events[events["event"] == "Liquidation"]
    assert summary["liquidation_count"] == len(liquidations) == 2
    notional = sum(abs(a["size"]) * a["price"] / WAD**2 for a in liquidations["args"])
    assert summary["liquidation_notional"] == pytest.approx(notional)
    bad_debt = sum(a["amount"] for a in events.loc[events["event"] == "BadDebt", "args"]) / WAD
    assert summary["total_bad_debt"] == pytest.approx(bad_debt) and bad_debt > 0
    assert summary["bad_debt_paid_by_insurance"] == pytest.approx(bad_debt)
    assert summary["bad_debt_to_deficit"] == 0 and summary["deficit_at_end"] == 0
    assert summary["adl_count"] == 0 and summary["bankruptcy_count"] == 0
    assert summary["event_counts"]["Liquidator.Liquidation"] == 2


def test_summary_keeper_delay_is_the_engineered_one(summary: dict) -> None:
    delay = KEEPER_STEP - CRASH_STEP
    assert summary["liquidation_delay_blocks_median"] == delay
    assert summary["liquidation_delay_blocks_max"] == delay
    assert summary["liquidation_delay_samples"] == 2
    assert summary["liquidatable_at_end"] == 0


def test_steps_table_records_the_keeper_delay_where_it_happened(steps: pd.DataFrame) -> None:
    delays = steps.set_index("step")["keeper_delay_max"]
    assert delays[KEEPER_STEP] == KEEPER_STEP - CRASH_STEP
    assert delays.drop(KEEPER_STEP).isna().all()  # empty where nobody was liquidated


def test_keeper_acting_in_the_crash_step_has_zero_delay(tmp_path: Path) -> None:
    prompt = run_session(tmp_path / "prompt", keeper_step=CRASH_STEP).summary
    assert prompt is not None
    assert prompt["liquidation_delay_blocks_max"] == 0
    assert prompt["liquidation_count"] >= 2
    assert prompt["liquidation_delay_samples"] <= prompt["liquidation_count"]


def test_summary_solvency_survival_and_lp_pnl(summary: dict, steps: pd.DataFrame) -> None:
    assert summary["books_balance"] is True
    assert all(summary["solvency_checks"].values())
    assert summary["traders"] == 3 and summary["traders_liquidated"] == 2
    assert summary["trader_survival_rate"] == pytest.approx(1 / 3)
    balances = [summary["insurance_start"], *steps["insurance_balance"]]
    peak = max(balances[: balances.index(min(balances)) + 1])
    assert summary["insurance_drawdown_pct"] == pytest.approx(100 * (peak - min(balances)) / peak)
    assert summary["insurance_end"] == steps["insurance_balance"].iloc[-1]
    # the LP deposited 1M at share price 1: its PnL is the share price change on 1M shares
    assert summary["lp_share_price_start"] == 1.0
    assert summary["lp_share_price_end"] == steps["vault_share_price"].iloc[-1]
    assert summary["lp_pnl_usd"] == pytest.approx((summary["lp_share_price_end"] - 1) * 1_000_000, abs=0.01)
    assert summary["lp_share_price_change_pct"] == pytest.approx(100 * (summary["lp_share_price_end"] - 1))


def test_lp_pnl_is_marked_to_market_every_step(summary: dict, steps: pd.DataFrame) -> None:
    """Issue 14, item 7: not only at the end. The LP holds 1M shares bought at 1.0, so each
    step its PnL is the share price change on 1M shares."""
    pnl = steps["lp_pnl"]
    assert pnl.tolist() == pytest.approx(((steps["vault_share_price"] - 1) * 1_000_000).tolist(), abs=0.01)
    assert pnl.nunique() > 1  # it moves with the run, not once at exit
    assert pnl.iloc[-1] == pytest.approx(summary["lp_pnl_usd"], abs=1e-6)
    assert summary["lp_pnl_min_usd"] == pnl.min()


def test_summary_identity_and_key_order(summary: dict) -> None:
    assert list(summary)[:9] == ["scenario", "seed", "backend", "status", "error", "steps_recorded", "last_step",
                                 "first_block", "last_block"]
    assert list(summary)[9:-1] == list(SUMMARY_METRICS.keys)
    assert list(summary)[-1] == "meta"
    assert (summary["scenario"], summary["seed"], summary["backend"]) == ("scripted-crash", 7, "revm")
    assert summary["status"] == "complete" and summary["error"] is None
    assert (summary["first_block"], summary["last_block"]) == (1, STEPS)
    assert summary["meta"]["shocks"][0] == {"step": CRASH_STEP, "kind": "price_jump"}


def test_status_complete(run_dir: Path) -> None:
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "complete" and status["error"] is None
    assert status["last_step"] == STEPS - 1 and status["steps_recorded"] == STEPS


# -- crashes -----------------------------------------------------------------------------


def test_crash_mid_run_leaves_a_readable_partial_run(tmp_path: Path) -> None:
    crashed = run_session(tmp_path / "crashed", crash_at=5)
    run_dir = crashed.recorder.run_dir
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "partial" and status["error"] == "simulated crash at step 5"
    assert status["last_step"] == 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "partial" and summary["error"] == "simulated crash at step 5"
    assert summary["steps_recorded"] == 5 and summary["liquidatable_at_end"] == 2
    steps = pd.read_csv(run_dir / "steps.csv")
    assert list(steps["step"]) == [0, 1, 2, 3, 4]
    events = pd.read_csv(run_dir / "events.csv")
    assert events["step"].max() == 4


def test_killed_run_keeps_its_rows_and_says_running(tmp_path: Path) -> None:
    """A run killed without finish(): every recorded step is already on disk."""
    killed = run_session(tmp_path / "killed", finish=False)
    run_dir = killed.recorder.run_dir
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running"
    assert not (run_dir / "summary.json").exists()
    assert len(pd.read_csv(run_dir / "steps.csv")) == STEPS
    assert (pd.read_csv(run_dir / "events.csv")["event"] == "Liquidation").sum() == 2


def test_recorder_refuses_steps_after_finish(session: Session) -> None:
    with pytest.raises(RuntimeError, match="after finish"):
        session.recorder.record_step(STEPS, {"ETH": 1.0})
    with pytest.raises(ValueError, match="expected 'complete' or 'partial'"):
        session.recorder.finish("done")


# -- determinism -------------------------------------------------------------------------


def test_same_session_twice_gives_identical_files(tmp_path: Path, run_dir: Path) -> None:
    again = run_session(tmp_path / "again").recorder.run_dir
    for name in ("events.csv", "summary.json", "steps.csv"):
        assert (again / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_events_identical_across_backends(tmp_path: Path, run_dir: Path) -> None:
    pyevm = run_session(tmp_path / "pyevm", backend="pyevm").recorder.run_dir
    assert (pyevm / "events.csv").read_bytes() == (run_dir / "events.csv").read_bytes()
    assert (pyevm / "steps.csv").read_bytes() == (run_dir / "steps.csv").read_bytes()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run_dir, pyevm))
    for summary in (a, b):
        del summary["backend"], summary["meta"]["backend"]
    assert a == b


# -- registries --------------------------------------------------------------------------


def test_adding_a_metric_is_one_function() -> None:
    collector = StepCollector()

    @collector.metric("double_true_price")
    def double_true_price(view, market):  # noqa: ANN001 - a throwaway metric
        return 2 * view.true_prices[market]

    assert collector.columns[-1] == "double_true_price"
    with pytest.raises(ValueError, match="already registered"):
        collector.metric("double_true_price")(double_true_price)
    summaries = SummaryCollector()
    summaries.metric("broken")(lambda run: 1 / 0)
    values, errors = summaries.collect(None)  # type: ignore[arg-type]
    assert values == {"broken": None} and "ZeroDivisionError" in errors["broken"]


def test_participant_role_is_checked() -> None:
    with pytest.raises(ValueError, match="role 'whale'"):
        Participant("0x0000000000000000000000000000000000000001", 0, "leveraged_whale", "whale")
