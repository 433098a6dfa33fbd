"""docs/scenario-reference.md is generated from the schema and must not go stale; its example
validates; `perpsim list` prints the same tables."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sim.cli import main
from sim.reference import DOCS_PATH, EXAMPLE, SECTIONS, field_rows, reference_markdown
from sim.scenario import GbmPrice, MarketSpec, validate_scenario

REPO = Path(__file__).resolve().parents[2]


def test_the_reference_is_up_to_date() -> None:
    written = (REPO / DOCS_PATH).read_text()
    assert written == reference_markdown(), f"{DOCS_PATH} is stale: run `make docs`"


def test_the_reference_documents_every_field_with_its_bounds() -> None:
    text = reference_markdown()
    for name in ("correlation", "stress_correlation", "assets", "jump_intensity", "hold_at_end", "lag_blocks",
                 "reporters_bribed", "liquidate_when_invalid", "observation_spacing", "skew_scale"):
        assert f"| `{name}` |" in text, name
    rows = {r.name: r for r in field_rows(MarketSpec)}
    assert rows["skew_scale"].bounds == ">= 1e-18, <= 1e+18" and rows["skew_scale"].default == "1000000.0"
    assert rows["mmf"].bounds == ">= 1e-18, < 1"
    gbm = {r.name: r for r in field_rows(GbmPrice)}
    assert gbm["sigma"].default == "required" and gbm["s0"].default == "(none)"


def test_the_example_validates() -> None:
    scenario = validate_scenario(EXAMPLE)
    assert scenario.market_names == ("BTC", "ETH") and len(scenario.shocks) == 3
    assert {m.name: m.initial_price for m in scenario.protocol_config().markets} == {"BTC": 60_000.0, "ETH": 2_000.0}


def test_list_prints_each_tables_fields() -> None:
    result = CliRunner().invoke(main, ["list", "--shocks", "--prices", "--markets", "--defences"])
    assert result.exit_code == 0, result.output
    for expected in ('kind = "keeper_outage"', 'kind = "correlated"', "stress_correlation = required",
                     "skew_scale = 1000000.0  (number; >= 1e-18, <= 1e+18)", "deviation_guard = (none)",
                     "[[shocks]]", "[defences]", "[[markets]]"):
        assert expected in result.output, expected
    assert "Scenarios (perpsim run NAME)" not in result.output
    assert set(SECTIONS) == {"top", "markets", "prices", "oracle", "agents", "shocks", "defences"}
