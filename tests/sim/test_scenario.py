"""Scenario files: the schema, its error messages, and the CLI's exit code for a bad file."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.scenario import ScenarioError, load_scenario, parse_defence, shipped_scenarios, validate_scenario

REPO = Path(__file__).resolve().parents[2]

GOOD = """
name = "tiny"
steps = 10
vault_liquidity = 1_000_000.0

[[markets]]
name = "ETH"
price = { kind = "gbm", mu = 0.0, sigma = 0.5 }

[[agents]]
kind = "oracle_reporter"
count = 2

[[agents]]
kind = "noise_trader"
count = 3
params = { trade_probability = 0.5 }
"""


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return str(info.value).splitlines()


def test_a_good_file_loads_and_maps_onto_the_protocol_config(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    config = scenario.protocol_config()
    assert scenario.step_seconds == 12 and scenario.seed == 0
    assert config.reporters == 2 and config.vault_liquidity == 1_000_000.0
    assert config.markets[0].name == "ETH" and config.markets[0].initial_price == 2000.0


def test_every_shipped_scenario_validates_and_has_a_description() -> None:
    shipped = shipped_scenarios()
    assert {"calm", "flash-crash", "oracle-lag"} <= set(shipped)
    for name in shipped:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert len(scenario.description) > 40


def test_a_bad_file_names_file_field_value_and_expectation(tmp_path: Path) -> None:
    text = GOOD.replace("params = { trade_probability = 0.5 }", "params = { trade_probability = 1.5, leverag = 3 }")
    text = text.replace("steps = 10", "steps = 10\nstepz = 4").replace("count = 2", "count = 0")
    path = write(tmp_path, text, "bad.toml")
    lines = problems_of(path)
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any("agents[1].params.trade_probability = 1.5: expected less than or equal to 1" in line for line in lines)
    assert any("agents[1].params.leverag = 3" in line and "max_leverage" in line for line in lines)
    assert any("stepz = 4" in line and "did you mean 'steps'" in line for line in lines)
    assert any("agents[0].count = 0: expected greater than or equal to 1" in line for line in lines)
    assert len(lines) == 4  # every problem, one line each


def test_unknown_agent_kind_lists_the_zoo(tmp_path: Path) -> None:
    lines = problems_of(write(tmp_path, GOOD.replace('kind = "noise_trader"', 'kind = "unicorn"')))
    assert len(lines) == 1 and 'agents[1].kind = "unicorn"' in lines[0] and "noise_trader" in lines[0]


def test_market_and_oracle_fields_are_the_protocols(tmp_path: Path) -> None:
    text = GOOD.replace('name = "ETH"', 'name = "ETH"\nimf = 0.05\nmmf = 0.1\nskew_scal = 1.0') + "\n[oracle]\nmax_age = 0\n"
    lines = problems_of(write(tmp_path, text))
    assert any("markets[0].skew_scal" in line and "skew_scale" in line for line in lines)
    assert any("oracle.max_age = 0: expected greater than 0" in line for line in lines)


def test_shock_errors_name_the_shock(tmp_path: Path) -> None:
    text = GOOD + '\n[[shocks]]\nkind = "price_jump"\nat_step = 3\nfraction = -1.5\n\n[[shocks]]\nkind = "meteor"\nat_step = 1\n'
    lines = problems_of(write(tmp_path, text))
    assert any("shocks[0].fraction = -1.5: expected greater than -1" in line for line in lines)
    assert any('shocks[1].kind = "meteor"' in line and "price_jump" in line for line in lines)


def test_cross_checks(tmp_path: Path) -> None:
    text = (GOOD.replace("params = { trade_probability = 0.5 }", 'params = { market = "DOGE" }')
            .replace("steps = 10", "steps = 10\nreporters = 3")
            + '\n[[shocks]]\nkind = "oracle_freeze"\nat_step = 50\nduration = 2\nmarket = "BTC"\n')
    lines = problems_of(write(tmp_path, text))
    assert any('agents[1].params.market = "DOGE"' in line for line in lines)
    assert any("reporters = 3: expected 2" in line for line in lines)
    assert any("shocks[0].at_step = 50" in line for line in lines)
    assert any('shocks[0].market = "BTC"' in line for line in lines)


def test_price_process_errors_carry_the_market_path(tmp_path: Path) -> None:
    lines = problems_of(write(tmp_path, GOOD.replace("sigma = 0.5", 'sigma = "high"')))
    assert len(lines) == 1 and "markets[0].price.sigma" in lines[0] and '"high"' in lines[0]


def test_defences_map_onto_markets_and_oracle_and_conflicts_are_errors(tmp_path: Path) -> None:
    text = GOOD + "\n[defences]\ndeviation_guard = 0.1\nallow_unrealized_withdrawal = true\nmark_mode = \"median\"\n"
    config = load_scenario(write(tmp_path, text)).protocol_config()
    assert config.oracle.max_deviation == 0.1
    assert config.markets[0].allow_unrealized_withdrawal and config.markets[0].mark_mode == "median"
    conflict = text.replace('name = "ETH"', 'name = "ETH"\nmark_mode = "oracle"')
    lines = problems_of(write(tmp_path, conflict, "conflict.toml"))
    assert len(lines) == 1 and "markets[0].mark_mode" in lines[0]


def test_risk_defences_map_onto_markets_and_bad_values_name_the_field(tmp_path: Path) -> None:
    """The Liquidator/Oracle-side defences: [defences] sets every market's parameter (the floor
    as a fraction of each market's first price); a value out of range, or an after-factor above
    the ADL factor, is refused naming the field, the value and what was expected."""
    text = GOOD + ("\n[defences]\nliquidation_window = 60\nadl_pnl_factor = 0.45\nadl_pnl_factor_after = 0.4\n"
                   "min_price_fraction = 0.01\n")
    [market] = load_scenario(write(tmp_path, text)).protocol_config().markets
    assert (market.liquidation_window, market.adl_pnl_factor, market.adl_pnl_factor_after) == (60, 0.45, 0.4)
    assert market.min_price == pytest.approx(20.0)  # 1% of 2000
    assert market.liquidation_params()[-3:] == (60, 45 * 10**16, 40 * 10**16)
    for bad, field in (("liquidation_window = -1", "defences.liquidation_window"),
                       ("min_price_fraction = 1.5", "defences.min_price_fraction"),
                       ("adl_pnl_factor = \"high\"", "defences.adl_pnl_factor")):
        lines = problems_of(write(tmp_path, GOOD + f"\n[defences]\n{bad}\n", "bad.toml"))
        assert len(lines) == 1 and field in lines[0] and bad.split(" = ")[1] in lines[0], lines
    lines = problems_of(write(tmp_path, GOOD + "\n[defences]\nadl_pnl_factor = 0.2\nadl_pnl_factor_after = 0.3\n",
                              "order.toml"))
    assert len(lines) == 1 and "adl_pnl_factor_after (0.3) must be at most adl_pnl_factor (0.2)" in lines[0], lines


def test_correlated_process_covers_several_markets(tmp_path: Path) -> None:
    text = GOOD.replace('price = { kind = "gbm", mu = 0.0, sigma = 0.5 }',
                        'price = { kind = "correlated", assets = { ETH = [2000.0, 0.0, 0.6], BTC = [30000.0, 0.0, 0.5] }, '
                        'correlation = [[1.0, 0.5], [0.5, 1.0]], stress_correlation = [[1.0, 0.95], [0.95, 1.0]] }')
    text += '\n[[markets]]\nname = "BTC"\n\n[[shocks]]\nkind = "correlation_spike"\nat_step = 2\nduration = 3\n'
    scenario = load_scenario(write(tmp_path, text))
    assert {m.name: m.initial_price for m in scenario.protocol_config().markets} == {"ETH": 2000.0, "BTC": 30000.0}
    uncovered = GOOD + '\n[[markets]]\nname = "BTC"\n'
    lines = problems_of(write(tmp_path, uncovered, "uncovered.toml"))
    assert len(lines) == 1 and "markets[1].price: missing" in lines[0]


def test_replay_must_cover_the_run(tmp_path: Path) -> None:
    text = GOOD.replace('price = { kind = "gbm", mu = 0.0, sigma = 0.5 }',
                        'price = { kind = "replay", path = "btcusd_2020-03-12_1h.csv" }').replace("steps = 10", "steps = 20000")
    lines = problems_of(write(tmp_path, text))
    assert len(lines) == 1 and "markets[0].price.path" in lines[0] and "hold_at_end" in lines[0]


def test_bad_toml_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\nsteps = 10\n[[markets]]\nname = ETH\n')
    assert problems_of(path) == [f"{path}: line 4, column 8: not valid TOML: Invalid value"]
    with pytest.raises(ScenarioError, match="shipped scenario: .*calm"):
        load_scenario(tmp_path / "nope.toml")


def test_a_mistyped_scenario_name_gets_a_suggestion() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("flash-crsh")
    assert str(info.value).startswith("flash-crsh: expected an existing scenario file, or a shipped scenario "
                                      "(did you mean 'flash-crash'?)")


def test_scenario_round_trips_through_toml(tmp_path: Path) -> None:
    for name in shipped_scenarios():
        scenario = load_scenario(name).with_overrides(seed=99)
        again = validate_scenario(tomllib.loads(scenario.to_toml()), base_dir=REPO / "sim" / "scenarios")
        assert again.to_toml() == scenario.to_toml() and again.seed == 99


def test_validate_command_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("count = 3", "count = -1"), "bad.toml")
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: agents[1].count = -1" in result.output
    ok = CliRunner().invoke(main, ["validate", str(write(tmp_path, GOOD, "good.toml"))])
    assert ok.exit_code == 0 and "ok" in ok.output


def test_run_command_exits_2_before_any_transaction(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("sigma = 0.5", "sigma = -1.0"), "bad.toml")
    out = tmp_path / "run"
    process = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(bad), "--out", str(out)],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert process.returncode == 2
    assert f"{bad}: markets[0].price.sigma = -1.0" in process.stderr
    assert not out.exists()  # nothing ran, nothing was written


def test_defence_overrides_replace_the_files_flags() -> None:
    """`--defence NAME=VALUE`: the same scenario with one defence flipped, validated as if the
    file said so (reporter-bribe ships with the deviation guard off)."""
    shipped = load_scenario("reporter-bribe")
    assert shipped.protocol_config().oracle.max_deviation == 0.0
    defended = load_scenario("reporter-bribe", defences=dict([parse_defence("deviation_guard=0.1"),
                                                               parse_defence("mark_mode=median")]))
    assert defended.protocol_config().oracle.max_deviation == 0.1
    assert all(m.mark_mode == "median" for m in defended.protocol_config().markets)
    assert defended.defences.allow_unrealized_withdrawal is True  # the file's other flags stay
    assert "max_deviation = 0.1" in defended.to_toml()


def test_a_bad_defence_override_exits_2_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for flag, expected in (("deviaton_guard=0.1", "--defence deviaton_guard=0.1: expected a known field (did you mean "
                                                   "'deviation_guard'?)"),
                           ("deviation_guard=2", "--defence deviation_guard=2: expected less than 1"),
                           ("deviation_guard", "NAME=VALUE")):
        result = CliRunner().invoke(main, ["run", "reporter-bribe", "--defence", flag, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert "reporter-bribe.toml" not in result.output  # the flag is named, not the shipped file
        assert not out.exists()


def test_rpc_url_without_the_rpc_backend_is_refused(tmp_path: Path) -> None:
    """An --rpc-url that a run would ignore is a mistake the user should hear about (it also
    used to land in the run's metadata as if the run had been on that node)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "calm", "--rpc-url", "http://127.0.0.1:8545", "--out", str(out)])
    assert result.exit_code == 2
    assert "--rpc-url is for --backend rpc" in result.output
    assert not out.exists()


# -- overrides go through the same validation as the file (issue 14, item 1) ---------------------


def test_steps_shorter_than_a_shock_are_refused_naming_the_shock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner(mix_stderr=False).invoke(main, ["run", "flash-crash", "--steps", "60", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "flash-crash.toml with --steps 60: shocks[0].at_step = 150: expected a step before the end" in result.stderr
    assert "this price_jump would never happen" in result.stderr
    assert not out.exists()
    with pytest.raises(ScenarioError, match="with --steps 60: shocks"):
        load_scenario("flash-crash").with_overrides(steps=60)


def test_the_scenario_a_run_saves_validates_again(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '\n[[shocks]]\nkind = "price_jump"\nat_step = 4\nfraction = -0.2\n')
    out = tmp_path / "run"
    result = CliRunner(mix_stderr=False).invoke(main, ["run", str(path), "--steps", "5", "--seed", "4", "--out",
                                                       str(out), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    saved = load_scenario(out / "scenario.toml")
    assert saved.steps == 5 and saved.seed == 4 and saved.shocks[0].at_step == 4


# -- every number bounded, strict and finite (issue 14, item 3) ------------------------------


@pytest.mark.parametrize(("change", "expected"), [
    (("vault_liquidity = 1_000_000.0", "vault_liquidity = inf"), "vault_liquidity = inf: expected a finite number"),
    (("vault_liquidity = 1_000_000.0", "vault_liquidity = nan"), "vault_liquidity = nan: expected a finite number"),
    (('name = "ETH"', 'name = "ETH"\nskew_scale = 1e40'),
     "markets[0].skew_scale = 1e+40: expected less than or equal to 1e+18"),
    (('name = "ETH"', 'name = "ETH"\ninitial_price = 1e40'),
     "markets[0].initial_price = 1e+40: expected less than or equal to 1e+18"),
    (("sigma = 0.5", "sigma = inf"), "markets[0].price.sigma = inf: expected a finite number"),
    (("trade_probability = 0.5", "trade_probability = 0.5, collateral = 1e30"),
     "agents[1].params.collateral = 1e+30: expected less than or equal to 1e+24"),
    (("steps = 10", "steps = true"), "steps = true: expected a valid integer"),
    (("trade_probability = 0.5", "trade_probability = 0.5, stop_loss = 1"),
     "agents[1].params.stop_loss = 1: expected a valid boolean"),
    (("count = 3", "count = 3.0"), "agents[1].count = 3.0: expected a valid integer"),
])
def test_values_the_contracts_cannot_take_do_not_validate(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    lines = problems_of(path)
    assert f"{path}: {expected}" in lines, lines


def test_fields_a_shock_kind_does_not_use_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '\n[[shocks]]\nkind = "price_jump"\nat_step = 3\nfraction = -0.3\nduration = 5\n')
    lines = problems_of(path)
    assert len(lines) == 1
    assert lines[0] == (f"{path}: shocks[0].duration = 5: expected a field of this kind: at_step, kind, fraction, "
                        "market (duration is a field of oracle_freeze, oracle_lag, reporter_compromise, keeper_outage, "
                        "lp_run, correlation_spike only)")


def test_bad_values_never_reach_the_chain(tmp_path: Path) -> None:
    """What used to validate and then crash the deployment (exit 1, a run directory with no
    status.json) is now refused before the run directory exists."""
    out = tmp_path / "run"
    for text in (GOOD.replace("vault_liquidity = 1_000_000.0", "vault_liquidity = 1e40"),
                 GOOD.replace("sigma = 0.5", "sigma = nan"),
                 GOOD.replace("trade_probability = 0.5", "collateral = 1e30")):
        result = CliRunner(mix_stderr=False).invoke(main, ["run", str(write(tmp_path, text)), "--out", str(out)])
        assert result.exit_code == 2, result.output + result.stderr
        assert not out.exists()


# -- one validation pass, and a price process that starts where its market does --------------------


TWO_MARKETS = """
name = "two"
steps = 50
vault_liquidity = 2_000_000.0

[[markets]]
name = "BTC"
initial_price = 60000.0
price = { kind = "correlated", assets = { BTC = [60000.0, 0.0, 0.5], ETH = { s0 = 2000.0, mu = 0.0, sigma = 0.6 } }, correlation = [[1.0, 0.6], [0.6, 1.0]], stress_correlation = [[1.0, 0.95], [0.95, 1.0]] }

[[markets]]
name = "ETH"
initial_price = 2500.0

[[agents]]
kind = "oracle_reporter"
count = 2

[[agents]]
kind = "noise_trader"
count = 4
params = { market = "ETH", colateral = 5000.0 }

[[agents]]
kind = "liquidation_keeper"
params = { reaction_delay = -1 }

[[shocks]]
kind = "oracle_gap"
at_step = 5

[[shocks]]
kind = "keeper_outage"
at_step = 80
duration = 10

[[shocks]]
kind = "correlation_spike"
at_step = 20
duration = 3
market = "BTC"
"""


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    """The new user's two-market file: schema errors, agent params, the shock past the end and
    the price that would gap at step 0, all at once rather than in rounds."""
    path = write(tmp_path, TWO_MARKETS)
    lines = [line.removeprefix(f"{path}: ") for line in problems_of(path)]
    assert any(line.startswith('shocks[0].kind = "oracle_gap": expected a shock kind: price_jump, ') for line in lines)
    assert any(line.startswith("shocks[2].market = \"BTC\": expected a field of this kind: at_step, kind, duration "
                               "(market is a field of price_jump, oracle_freeze only)") for line in lines)
    assert any(line.startswith("agents[1].params.colateral = 5000.0: expected a known field (did you mean "
                               "'collateral'?)") for line in lines)
    assert "agents[2].params.reaction_delay = -1: expected greater than or equal to 0" in lines
    assert any(line.startswith("shocks[1].at_step = 80: expected a step before the end (steps = 50") for line in lines)
    assert any(line.startswith("markets[1].initial_price = 2500.0: expected the first price of its process "
                               "(markets[0].price), 2000, or no initial_price: otherwise the price gaps -20.0%")
               for line in lines)
    assert len(lines) == 6, lines


def test_a_gbm_that_starts_away_from_its_market_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('name = "ETH"', 'name = "ETH"\ninitial_price = 60000.0')
                 .replace("mu = 0.0", "s0 = 50000.0, mu = 0.0"))
    assert problems_of(path) == [f"{path}: markets[0].initial_price = 60000.0: expected the first price of its "
                                 "process (markets[0].price), 50000, or no initial_price: otherwise the price gaps "
                                 "-16.7% at step 0"]


def test_a_process_that_would_overflow_in_one_step_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("steps = 10", "steps = 10\nstep_seconds = 31536000").replace("mu = 0.0", "mu = 900.0"))
    lines = problems_of(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: markets[0].price: missing; expected a process that cannot "
                                                   "move the price by more than e^700 in one step of 31536000 s")
