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


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    lines = problems_of(write(tmp_path, "name = \n"))
    assert "valid TOML" in lines[0]
    with pytest.raises(ScenarioError, match="shipped scenario: .*calm"):
        load_scenario(tmp_path / "nope.toml")


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
    for flag, expected in (("deviaton_guard=0.1", "defences.deviaton_guard"),
                           ("deviation_guard=2", "defences.deviation_guard = 2"),
                           ("deviation_guard", "NAME=VALUE")):
        result = CliRunner().invoke(main, ["run", "reporter-bribe", "--defence", flag, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert not out.exists()


def test_rpc_url_without_the_rpc_backend_is_refused(tmp_path: Path) -> None:
    """An --rpc-url that a run would ignore is a mistake the user should hear about (it also
    used to land in the run's metadata as if the run had been on that node)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "calm", "--rpc-url", "http://127.0.0.1:8545", "--out", str(out)])
    assert result.exit_code == 2
    assert "--rpc-url is for --backend rpc" in result.output
    assert not out.exists()
