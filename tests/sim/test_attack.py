"""`perpsim attack` (sim/attack): the search finds the attack a defence stops once that defence
is off, finds nothing with every defence on, is reproducible, hands back a replay that makes
the same profit to the token unit, and refuses bad options before sending a transaction.

All on tests/sim/data/attack-small.toml: a thin ETH market (skew_scale 20,000), a $1M Vault,
every defence on; searches of 300 trials from step 10, three blocks long.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sim.agents.scripted import Move
from sim.attack import AttackInputError, Executor, make_space, run_attack
from sim.cli import main
from sim.engine import run_scenario
from sim.scenario import load_scenario

SCENARIO = Path(__file__).parent / "data" / "attack-small.toml"
COMMON = ["--capital", "1000000", "--horizon", "3", "--at-step", "10", "--no-progress"]
# Every primitive but bribery and the SpotPool (the small market has none): a majority of
# bribed reporters moving the price within the deviation guard is the trust the Oracle rests
# on (README, Security model), not a defence that can be switched.
NO_BRIBES = "deposit,withdraw,open,close,lp_deposit,lp_redeem,wash,self_liquidate,adl,trigger"
THRESHOLD = 1_000.0


def attack(tmp: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    result = CliRunner(mix_stderr=False).invoke(main, ["attack", str(SCENARIO), *COMMON, "--out", str(tmp), *args])
    assert result.exit_code == 0, result.output + result.stderr
    return result, json.loads((tmp / "attack.json").read_text())


@pytest.fixture(scope="module")
def nav_off(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("nav-off")
    _, record = attack(out, "--trials", "300", "--moves", NO_BRIBES, "--defence", "nav_at_close_price=false")
    return out, record


def test_with_nav_at_the_index_the_search_finds_the_lp_impact_attack(nav_off: tuple[Path, dict[str, Any]]) -> None:
    out, record = nav_off
    best = record["best"]
    assert best["profit_usd"] > THRESHOLD
    assert record["search"]["trials_to_first_profit"] <= 300
    assert record["defences"]["nav_at_close_price"] is False
    kinds = [m["kind"] for m in best["moves"]]
    assert "lp_deposit" in kinds and "open" in kinds, best["plan"]  # the F1 attack: buy NAV, then impact
    assert best["profit_usd"] >= best["unshrunk"]["profit_usd"] * 0.99 - 1e-6  # shrinking kept the profit
    rows = pq.read_table(out / "trials.parquet").to_pylist()
    assert len(rows) == record["search"]["trials_run"] >= 300
    searched = [r["profit_usd"] for r in rows if r["phase"] == "search"]
    assert max(searched) == pytest.approx(best["unshrunk"]["profit_usd"])
    assert sum(t["gas"] for t in best["transactions"]) > 0
    page = (out / "attack.html").read_text()
    assert "data:image/png;base64" in page and best["plan"][0] in page


@pytest.mark.parametrize("backend", ["revm", "pyevm"])
def test_the_replay_makes_the_same_profit_to_the_token_unit(nav_off: tuple[Path, dict[str, Any]], tmp_path: Path,
                                                            backend: str) -> None:
    out, record = nav_off
    replay = load_scenario(out / "replay.toml")
    result = run_scenario(replay, backend=backend, out_dir=tmp_path / "run", report=False, progress=False)
    attacker = result.summary["meta"]["agents"]["scripted_attacker-0"]
    assert attacker["profit_units"] == record["best"]["profit_units"]
    assert attacker["profit_usd"] == pytest.approx(record["best"]["profit_usd"], abs=1e-6)


def test_with_unrealised_withdrawals_the_search_finds_the_mango_exit(tmp_path: Path) -> None:
    """A premium mark counts a large position's own impact as its profit; with
    allow_unrealized_withdrawal the attacker takes it out and leaves the position under water."""
    premium = ["--defence", "mark_mode=premium", "--subaccounts", "1", "--moves", NO_BRIBES, "--trials", "300"]
    _, off = attack(tmp_path / "off", *premium, "--defence", "allow_unrealized_withdrawal=true")
    assert off["best"]["profit_usd"] > THRESHOLD
    assert "open" in [m["kind"] for m in off["best"]["moves"]]
    unwind = off["best"]["transactions"][-1]
    assert unwind["action"] == "unwind" and "negative equity" in unwind["what"]  # the position left under water
    _, on = attack(tmp_path / "on", *premium)
    assert on["best"]["profit_usd"] < THRESHOLD


def test_with_every_defence_on_nothing_beats_lending_to_the_vault(tmp_path: Path) -> None:
    """The best plan makes no more than the passive one: deposit into the Vault and wait
    (its fee income over four blocks, a few dollars)."""
    _, record = attack(tmp_path, "--trials", "300", "--moves", NO_BRIBES)
    scenario = load_scenario(SCENARIO)
    executor = Executor(scenario, make_space(scenario, capital=1_000_000.0, horizon=3, at_steps=(10,)))
    try:
        passive = executor.run(10, [Move(kind="lp_deposit", block=0, amount=1.0)]).profit
    finally:
        executor.close()
    assert passive < 10.0
    assert record["best"]["profit_usd"] <= passive + 1e-6


def test_the_same_seed_gives_the_same_best_plan(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIO, defences={"nav_at_close_price": False})
    options = dict(capital=1_000_000.0, horizon=3, at_steps=(10,), trials=30, seed=4, kinds=tuple(NO_BRIBES.split(",")))
    a = run_attack(scenario, out_dir=tmp_path / "a", progress=False, **options)
    b = run_attack(scenario, out_dir=tmp_path / "b", progress=False, **options)
    assert a.result.best.moves == b.result.best.moves
    assert a.result.best.profit_units == b.result.best.profit_units
    assert [t.result.profit_units for t in a.result.trials] == [t.result.profit_units for t in b.result.trials]
    c = run_attack(scenario, out_dir=tmp_path / "c", progress=False, **{**options, "seed": 5})
    assert [t.result.moves for t in c.result.trials] != [t.result.moves for t in a.result.trials]


@pytest.mark.parametrize(("args", "expected"), [
    (["--capital", "-5"], "--capital -5.0: expected greater than 0"),
    (["--horizon", "0"], "--horizon 0: expected greater than or equal to 1"),
    (["--horizon", "500"], "--horizon 500: expected less than or equal to 50"),
    (["--at-step", "28"], "--at-step 28: expected a step from 0 to 26"),
    (["--moves", "open,teleport"], "--moves"),
    (["--defence", "deviation_guard=2"], "--defence deviation_guard=2: expected less than 1"),
    (["--defence", "no_such_defence=true"], "no_such_defence"),
    (["--sampler", "random"], "'random' is not one of 'cem', 'tpe'"),
])
def test_a_bad_option_exits_2_naming_it(tmp_path: Path, args: list[str], expected: str) -> None:
    base = {"--capital": "1000000", "--horizon": "3"}
    rest = []
    i = 0
    while i < len(args):
        if args[i] in base:
            base[args[i]] = args[i + 1]
        else:
            rest += args[i:i + 2]
        i += 2
    flags = [x for pair in base.items() for x in pair]
    out = tmp_path / "out"
    result = CliRunner(mix_stderr=False).invoke(main, ["attack", str(SCENARIO), *flags, "--no-progress", "--out",
                                                       str(out), *rest])
    assert result.exit_code == 2, result.output + result.stderr
    assert expected in result.stderr
    assert not out.exists()  # refused before anything ran or was written


def test_the_plan_space_is_checked_against_the_scenario() -> None:
    scenario = load_scenario(SCENARIO)
    with pytest.raises(AttackInputError) as caught:
        make_space(scenario, capital=1e6, horizon=40, at_steps=(10,))
    assert str(caught.value) == ("--horizon 40: expected at most 29 blocks: the attack and its unwind must fit in "
                                 "the run's 30 steps")


def test_several_start_steps_each_replay_the_same_history() -> None:
    """Reverting to the earlier snapshot forgets the later one; the executor rebuilds it by
    stepping forward, and a plan played there makes what it makes from a fresh executor."""
    scenario = load_scenario(SCENARIO, defences={"nav_at_close_price": False})
    plan = [Move(kind="lp_deposit", block=0, amount=0.5), Move(kind="open", block=1, amount=1.0, leverage=8.0)]
    both = Executor(scenario, make_space(scenario, capital=1e6, horizon=3, at_steps=(6, 10)))
    alone = Executor(scenario, make_space(scenario, capital=1e6, horizon=3, at_steps=(10,)))
    try:
        late, early = both.run(10, plan).profit_units, both.run(6, plan).profit_units
        assert both.run(10, plan).profit_units == late == alone.run(10, plan).profit_units
        assert both.run(6, plan).profit_units == early != late
    finally:
        both.close()
        alone.close()


def test_an_interrupted_search_writes_what_it_tried(tmp_path: Path) -> None:
    """Ctrl-C during the search (raised here from the progress callback after 5 trials):
    the outputs hold those trials and their best plan, marked interrupted."""
    from sim.attack import Search
    from sim.attack.outputs import write_outputs

    scenario = load_scenario(SCENARIO)
    space = make_space(scenario, capital=1e6, horizon=3, at_steps=(10,), trials=50)
    executor = Executor(scenario, space)

    def stop(done: int, best: float) -> None:
        if done == 5:
            raise KeyboardInterrupt

    try:
        result = Search(executor, space, stop).run()
        traced = executor.run(result.best.at_step, result.best.moves, trace=True)
    finally:
        executor.close()
    assert result.interrupted and len(result.trials) == 5
    paths = write_outputs(tmp_path, scenario, space, result, "revm", traced)
    record = json.loads(paths["attack"].read_text())
    assert record["search"]["interrupted"] is True and record["search"]["trials_run"] == 5
    assert len(pq.read_table(paths["trials"])) == 5


SPOT = Path(__file__).parent / "data" / "attack-spot.toml"


def test_on_a_pool_priced_market_the_search_pumps_the_pool(tmp_path: Path) -> None:
    """The SpotPool moves: on a market whose feed reads a thin pool's spot price (no TWAP, no
    guard, no open-interest cap), the search finds the Mango plan: a long (on its own or one
    leg of a wash trade whose other leg is walked away from) and a spot buy that pumps the
    feed, the long closed at the pumped price and the base sold back. With the file's defences
    the same plan loses."""
    options = dict(capital=1_000_000.0, horizon=3, at_steps=(10,), trials=300, seed=0,
                   kinds=(*NO_BRIBES.split(","), "spot_buy", "spot_sell"))  # benchmarks/attack.py's spot rows
    off = {"pool_window": 0, "deviation_guard": 0.0, "max_oi_usd": 0.0}
    run = run_attack(load_scenario(SPOT, defences=off), out_dir=tmp_path / "off", progress=False, **options)
    best = run.result.best
    assert best.profit > THRESHOLD
    kinds = {m.kind for m in best.moves}
    assert "spot_buy" in kinds and kinds & {"open", "wash"}, [m.words() for m in best.moves]  # a long, a pump
    record = json.loads((tmp_path / "off" / "attack.json").read_text())
    assert "sell MNGO base" not in record["best"]["transactions"][-1]["what"]  # the unwind sold the base back
    defended = load_scenario(SPOT)
    executor = Executor(defended, make_space(defended, **{k: v for k, v in options.items() if k != "trials"}))
    try:
        assert executor.run(10, best.moves).profit < 0
    finally:
        executor.close()


def test_optuna_tpe_searches_the_same_space_reproducibly(tmp_path: Path) -> None:
    """--sampler tpe: Optuna's TPE draws the plans instead of the cross-entropy method, seeded
    too; the record names the method."""
    scenario = load_scenario(SCENARIO, defences={"nav_at_close_price": False})
    options = dict(capital=1_000_000.0, horizon=3, at_steps=(10,), trials=25, seed=2,
                   kinds=tuple(NO_BRIBES.split(",")))
    a = run_attack(scenario, out_dir=tmp_path / "a", progress=False, sampler="tpe", **options)
    b = run_attack(scenario, out_dir=tmp_path / "b", progress=False, sampler="tpe", **options)
    cem = run_attack(scenario, out_dir=tmp_path / "cem", progress=False, **options)
    assert [t.result.moves for t in a.result.trials] == [t.result.moves for t in b.result.trials]
    assert a.result.best.profit_units == b.result.best.profit_units
    assert [t.result.moves for t in a.result.trials] != [t.result.moves for t in cem.result.trials]
    assert len({tuple(t.result.moves) for t in a.result.trials}) > 20  # it explores, not one plan repeated
    methods = [json.loads((tmp_path / d / "attack.json").read_text())["search"]["method"] for d in ("a", "cem")]
    assert methods == ["optuna-tpe", "cross-entropy"]
