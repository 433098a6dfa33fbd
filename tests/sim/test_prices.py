"""Tests for sim/prices.py: seeded price processes, their statistics, replays and config errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from sim.prices import (
    DATA_DIR,
    GBM,
    SECONDS_PER_YEAR,
    CorrelatedAssets,
    JumpDiffusion,
    PriceProcess,
    PriceProcessError,
    Replay,
    ReplayDataError,
    ReplayEndedError,
    make_process,
)

DAY = 24 * 60 * 60
SHIPPED = ("btcusd_2020-03-12_1h.csv", "ethusd_2020-03-12_1h.csv", "lunausd_2022-05-07_1m.csv")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def path_of(process: PriceProcess, seed: int, steps: int, dt: float) -> np.ndarray:
    """Prices after each step, one column per asset."""
    generator = rng(seed)
    return np.array([list(process.step(generator, dt).values()) for _ in range(steps)])


def log_returns(start: dict[str, float], path: np.ndarray) -> np.ndarray:
    return np.diff(np.log(np.vstack([list(start.values()), path])), axis=0)


def two_assets(normal: float = 0.3, stress: float = 0.95) -> CorrelatedAssets:
    return CorrelatedAssets(
        {"BTC": (60_000.0, 0.1, 0.6), "ETH": (3_000.0, 0.1, 0.8)},
        correlation=[[1.0, normal], [normal, 1.0]],
        stress_correlation=[[1.0, stress], [stress, 1.0]],
    )


# Each stochastic kind, freshly built, for the determinism tests.
FACTORIES = {
    "gbm": lambda: GBM(2_000.0, 0.05, 0.8, asset="ETH"),
    "jump": lambda: JumpDiffusion(2_000.0, 0.05, 0.8, 20.0, -0.1, 0.05, asset="ETH"),
    "correlated": lambda: two_assets(),
}


# --- determinism -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", FACTORIES)
def test_same_seed_gives_the_same_path(kind: str) -> None:
    first = path_of(FACTORIES[kind](), seed=7, steps=300, dt=3600)
    second = path_of(FACTORIES[kind](), seed=7, steps=300, dt=3600)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("kind", FACTORIES)
def test_different_seeds_give_different_paths(kind: str) -> None:
    first = path_of(FACTORIES[kind](), seed=7, steps=50, dt=3600)
    second = path_of(FACTORIES[kind](), seed=8, steps=50, dt=3600)
    assert not np.any(first == second)


@pytest.mark.parametrize("bad", [None, 42, np.random.RandomState(1)])
def test_step_refuses_anything_but_a_generator(bad: object) -> None:
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        GBM(100.0, 0.0, 0.5).step(bad, 12)  # type: ignore[arg-type]


@pytest.mark.parametrize("dt", [0, -12, math.nan])
def test_step_refuses_a_non_positive_step(dt: float) -> None:
    with pytest.raises(PriceProcessError, match="dt_seconds"):
        GBM(100.0, 0.0, 0.5).step(rng(1), dt)


# --- statistics --------------------------------------------------------------------------


def test_gbm_log_returns_have_the_theoretical_mean_and_variance() -> None:
    # 400 paths of 30 monthly steps. Over 2.5 years with sigma = 1 the Ito term sigma^2/2
    # is about 15 standard errors of the mean, so a drift of mu instead of mu - sigma^2/2 fails.
    mu, sigma, dt = 0.3, 1.0, 30 * DAY
    years = dt / SECONDS_PER_YEAR
    paths, steps = 400, 30
    generator = rng(2024)
    returns = np.empty((paths, steps))
    for p in range(paths):
        process = GBM(100.0, mu, sigma)
        prices = [process.step(generator, dt)["ASSET"] for _ in range(steps)]
        returns[p] = np.diff(np.log([100.0, *prices]))

    total = returns.sum(axis=1)
    expected_mean = (mu - 0.5 * sigma**2) * years * steps
    standard_error = sigma * math.sqrt(years * steps / paths)
    assert abs(total.mean() - expected_mean) < 4 * standard_error

    per_step = returns.ravel()
    expected_variance = sigma**2 * years
    relative_error = math.sqrt(2 / (per_step.size - 1))
    assert abs(per_step.var(ddof=1) / expected_variance - 1) < 4 * relative_error
    # Steps are independent: neighbouring returns are uncorrelated.
    lag_one = np.corrcoef(returns[:, :-1].ravel(), returns[:, 1:].ravel())[0, 1]
    assert abs(lag_one) < 4 / math.sqrt(per_step.size)


def test_gbm_with_zero_volatility_grows_at_exactly_mu() -> None:
    process = GBM(100.0, 0.5, 0.0)
    for _ in range(365):
        process.step(rng(0), DAY)
    assert process.prices["ASSET"] == pytest.approx(100.0 * math.exp(0.5), rel=1e-12)


def test_jump_diffusion_jumps_at_the_set_intensity() -> None:
    # Tiny diffusion and large downward jumps, so every jump stands out as a big drop.
    intensity, dt, steps = 50.0, DAY, 20_000
    process = JumpDiffusion(100.0, 0.0, 0.01, intensity, -0.2, 0.05)
    returns = log_returns(process.prices, path_of(process, seed=11, steps=steps, dt=dt))[:, 0]

    jump_steps = int(np.sum(returns < -0.05))
    p = 1 - math.exp(-intensity * dt / SECONDS_PER_YEAR)  # chance of at least one jump in a step
    expected, spread = steps * p, math.sqrt(steps * p * (1 - p))
    assert abs(jump_steps - expected) < 5 * spread
    assert not np.any(returns > 0.05)  # jumps all go the set way


def test_jump_diffusion_drift_is_compensated_so_mu_is_the_expected_return() -> None:
    # Without the compensation the mean weekly gross return would be about 0.0009, not
    # exp(mu * dt) - 1 = 0.0096: some 20 standard errors away.
    mu, dt, steps = 0.5, 7 * DAY, 20_000
    process = JumpDiffusion(100.0, mu, 0.2, 5.0, -0.1, 0.1)
    gross = np.exp(log_returns(process.prices, path_of(process, seed=3, steps=steps, dt=dt))[:, 0]) - 1
    expected = math.exp(mu * dt / SECONDS_PER_YEAR) - 1
    assert abs(gross.mean() - expected) < 4 * gross.std(ddof=1) / math.sqrt(steps)


def test_jump_diffusion_without_jumps_is_gbm() -> None:
    plain = path_of(GBM(100.0, 0.1, 0.5), seed=5, steps=100, dt=3600)
    no_jumps = path_of(JumpDiffusion(100.0, 0.1, 0.5, 0.0, -0.2, 0.1), seed=5, steps=100, dt=3600)
    assert np.allclose(plain, no_jumps, rtol=1e-12)


# --- correlated assets ---------------------------------------------------------------------


THREE = {"BTC": (60_000.0, 0.0, 0.6), "ETH": (3_000.0, 0.0, 0.8), "SOL": (150.0, 0.0, 1.2)}
NORMAL = [[1.0, 0.6, 0.2], [0.6, 1.0, 0.4], [0.2, 0.4, 1.0]]
STRESS = [[1.0, 0.95, 0.9], [0.95, 1.0, 0.92], [0.9, 0.92, 1.0]]


def sample_correlation(process: CorrelatedAssets, seed: int, steps: int = 5_000) -> np.ndarray:
    start = process.prices
    return np.corrcoef(log_returns(start, path_of(process, seed, steps, dt=3600)), rowvar=False)


def test_correlated_assets_follow_the_normal_matrix() -> None:
    observed = sample_correlation(CorrelatedAssets(THREE, NORMAL, STRESS), seed=1)
    assert np.allclose(observed, NORMAL, atol=0.06)
    assert not np.allclose(observed, STRESS, atol=0.2)


def test_correlated_assets_follow_the_stress_matrix_while_stressed() -> None:
    process = CorrelatedAssets(THREE, NORMAL, STRESS)
    process.set_stress(True)
    observed = sample_correlation(process, seed=1)
    assert np.allclose(observed, STRESS, atol=0.03)


def test_correlated_assets_keep_each_assets_volatility() -> None:
    process = CorrelatedAssets(THREE, NORMAL, STRESS)
    returns = log_returns(process.prices, path_of(process, seed=9, steps=5_000, dt=3600))
    sigmas = np.array([spec[2] for spec in THREE.values()])
    expected_sd = sigmas * math.sqrt(3600 / SECONDS_PER_YEAR)
    assert np.allclose(returns.std(axis=0, ddof=1) / expected_sd, 1.0, atol=0.06)


def test_stress_flag_on_step_applies_to_that_step_only() -> None:
    flagged, switched = two_assets(normal=0.0, stress=1.0), two_assets(normal=0.0, stress=1.0)
    g1, g2 = rng(4), rng(4)
    switched.set_stress(True)
    assert flagged.step(g1, 3600, stress=True) == switched.step(g2, 3600)
    switched.set_stress(False)
    assert flagged.step(g1, 3600) == switched.step(g2, 3600)
    assert flagged.stressed is False


def test_perfect_stress_correlation_moves_assets_in_lockstep() -> None:
    process = CorrelatedAssets(
        {"A": (100.0, 0.0, 0.5), "B": (100.0, 0.0, 0.5)},
        correlation=[[1, 0], [0, 1]],
        stress_correlation=[[1, 1], [1, 1]],
    )
    returns = log_returns(process.prices, path_of(process, 2, 200, 3600))
    assert np.corrcoef(returns, rowvar=False)[0, 1] < 0.5
    process.set_stress(True)
    start = process.prices
    stressed = log_returns(start, path_of(process, 3, 200, 3600))
    assert np.allclose(stressed[:, 0], stressed[:, 1], atol=1e-12)


@pytest.mark.parametrize(
    ("matrix", "field", "words"),
    [
        ([[1.0, 0.5], [0.3, 1.0]], r"stress_correlation\[0\]\[1\]", "symmetric"),
        ([[1.0, 0.5], [0.5, 0.9]], r"stress_correlation\[1\]\[1\]", "diagonal"),
        ([[1.0, 1.5], [1.5, 1.0]], r"stress_correlation\[0\]\[1\]", "from -1 to 1"),
        ([[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]], "stress_correlation", "2x2"),
        ([[1.0, "x"], ["x", 1.0]], "stress_correlation", "numbers"),
    ],
)
def test_bad_stress_matrix_is_named_with_the_reason(matrix: list, field: str, words: str) -> None:
    with pytest.raises(PriceProcessError, match=field) as caught:
        CorrelatedAssets({"A": (1.0, 0.0, 0.1), "B": (1.0, 0.0, 0.1)}, [[1, 0], [0, 1]], matrix)
    assert words in str(caught.value)


def test_matrix_that_is_not_positive_semi_definite_is_rejected() -> None:
    impossible = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    with pytest.raises(PriceProcessError, match="correlation = .*positive semi-definite") as caught:
        CorrelatedAssets(THREE, impossible, STRESS)
    assert caught.value.field == "correlation"


# --- jumps and shocks ----------------------------------------------------------------------


def test_jump_is_kept_by_later_steps() -> None:
    process = GBM(100.0, 0.0, 0.0, asset="ETH")
    assert process.jump("ETH", -0.4) == pytest.approx(60.0)
    assert process.step(rng(0), 12)["ETH"] == pytest.approx(60.0)
    assert process.step(rng(0), 12, shock=0.5)["ETH"] == pytest.approx(90.0)
    assert process.step(rng(0), 12)["ETH"] == pytest.approx(90.0)


def test_jump_on_one_correlated_asset_leaves_the_others() -> None:
    process = two_assets()
    before = process.prices
    process.jump("ETH", -0.5)
    assert process.prices == {"BTC": before["BTC"], "ETH": pytest.approx(before["ETH"] * 0.5)}


@pytest.mark.parametrize(("asset", "fraction", "field"), [("BTC", -0.1, "asset"), ("ETH", -1.0, "fraction")])
def test_bad_jump_names_the_problem(asset: str, fraction: float, field: str) -> None:
    with pytest.raises(PriceProcessError, match=f"^{field} = "):
        GBM(100.0, 0.0, 0.1, asset="ETH").jump(asset, fraction)


# --- replay --------------------------------------------------------------------------------


def read_rows(name: str) -> list[tuple[int, float]]:
    with open(DATA_DIR / name, newline="") as handle:
        return [(int(row["timestamp"]), float(row["price"])) for row in csv.DictReader(handle)]


def test_replay_follows_the_csv_exactly_on_its_own_timestamps() -> None:
    rows = read_rows("btcusd_2020-03-12_1h.csv")
    replay = Replay("btcusd_2020-03-12_1h.csv")
    assert replay.assets == ("BTCUSD",)
    assert replay.prices["BTCUSD"] == rows[0][1]
    prices = [replay.step(rng(0), 3600)["BTCUSD"] for _ in rows[1:]]
    assert prices == [price for _, price in rows[1:]]
    assert replay.current_time == rows[-1][0]


def test_replay_holds_the_last_close_between_rows() -> None:
    rows = read_rows("ethusd_2020-03-12_1h.csv")
    replay = Replay("ethusd_2020-03-12_1h.csv", asset="ETH")
    steps_per_row = 3600 // 12
    prices = [replay.step(rng(0), 12)["ETH"] for _ in range(steps_per_row * 5)]
    for k in range(1, 6):
        hour = prices[(k - 1) * steps_per_row : k * steps_per_row]
        assert hour[:-1] == [rows[k - 1][1]] * (steps_per_row - 1)  # held
        assert hour[-1] == rows[k][1]  # exact on the row


def test_replay_interpolates_linearly_when_asked() -> None:
    rows = read_rows("btcusd_2020-03-12_1h.csv")
    replay = Replay("btcusd_2020-03-12_1h.csv", interpolate=True)
    quarter = replay.step(rng(0), 900)["BTCUSD"]
    assert quarter == pytest.approx(rows[0][1] + 0.25 * (rows[1][1] - rows[0][1]))
    assert replay.step(rng(0), 2700)["BTCUSD"] == rows[1][1]


def test_replay_end_raises_unless_told_to_hold() -> None:
    ending = Replay("btcusd_2020-03-12_1h.csv")
    for _ in range(47):
        ending.step(rng(0), 3600)
    with pytest.raises(ReplayEndedError, match="btcusd_2020-03-12_1h.csv.*hold_at_end"):
        ending.step(rng(0), 12)

    holding = Replay("btcusd_2020-03-12_1h.csv", hold_at_end=True)
    for _ in range(60):
        last = holding.step(rng(0), 3600)["BTCUSD"]
    assert last == read_rows("btcusd_2020-03-12_1h.csv")[-1][1]


def test_replay_jump_scales_the_rest_of_the_series() -> None:
    rows = read_rows("btcusd_2020-03-12_1h.csv")
    replay = Replay("btcusd_2020-03-12_1h.csv", asset="BTC")
    replay.jump("BTC", -0.1)
    assert replay.step(rng(0), 3600)["BTC"] == pytest.approx(rows[1][1] * 0.9)
    assert replay.step(rng(0), 3600)["BTC"] == pytest.approx(rows[2][1] * 0.9)


def test_luna_replay_covers_its_whole_minute_series() -> None:
    replay = Replay("lunausd_2022-05-07_1m.csv", asset="LUNA")
    assert len(replay.times) == 8_680
    assert replay.duration_seconds == 8_679 * 60
    assert replay.prices["LUNA"] == 77.45
    assert replay.series_price(replay.duration_seconds) == 0.00005


def test_replay_reads_iso_timestamps_and_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    path.write_text("time,close,volume\n2020-03-12T00:00:00Z,10,1\n2020-03-12T00:01:00,12.5,1\n")
    replay = Replay(path, column="close", time_column="time", asset="X")
    assert replay.step(rng(0), 60)["X"] == 12.5


BAD_CSVS = [
    ("timestamp,close\n1,10\n", 1, "no price column 'price'"),
    ("timestamp,price\n1,10\n2,0\n", 3, "not positive"),
    ("timestamp,price\n1,10\n2,-3\n", 3, "not positive"),
    ("timestamp,price\n1,10\n3,11\n2,12\n", 4, "not after the previous row"),
    ("timestamp,price\n1,10\n1,11\n", 3, "not after the previous row"),
    ("timestamp,price\n1,10\n2,abc\n", 3, "not a number"),
    ("timestamp,price\nyesterday,10\n", 2, "neither Unix seconds"),
    ("timestamp,price\n1,10,5\n", 2, "3 fields"),
    ("timestamp,price\n", 2, "no rows"),
    ("", 1, "empty"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_CSVS)
def test_bad_csv_names_the_file_the_line_and_the_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ReplayDataError) as caught:
        Replay(path)
    assert str(caught.value).startswith(f"{path}, line {line}: ")
    assert problem in str(caught.value)


def test_shipped_series_load_and_are_documented() -> None:
    sources = (DATA_DIR / "SOURCES.md").read_text()
    for name in SHIPPED:
        assert f"`{name}`" in sources
        Replay(name)  # loads cleanly


# --- make_process ---------------------------------------------------------------------------


def test_make_process_builds_each_kind() -> None:
    gbm = make_process({"kind": "gbm", "asset": "ETH", "s0": 2000, "mu": 0.0, "sigma": 0.7})
    assert isinstance(gbm, GBM) and gbm.prices == {"ETH": 2000.0}
    jump = make_process(
        {"kind": "jump", "s0": 2000, "mu": 0.0, "sigma": 0.7, "jump_intensity": 4,
         "jump_mean": -0.2, "jump_std": 0.1},
        asset="ETH",
    )
    assert isinstance(jump, JumpDiffusion) and jump.assets == ("ETH",)
    correlated = make_process(
        {"kind": "correlated",
         "assets": {"BTC": {"s0": 60000, "mu": 0.0, "sigma": 0.6}, "ETH": [3000, 0.0, 0.8]},
         "correlation": [[1, 0.5], [0.5, 1]], "stress_correlation": [[1, 0.9], [0.9, 1]]}
    )
    assert isinstance(correlated, CorrelatedAssets) and correlated.assets == ("BTC", "ETH")
    replay = make_process(
        {"kind": "replay", "asset": "LUNA", "path": "lunausd_2022-05-07_1m.csv", "interpolate": True}
    )
    assert isinstance(replay, Replay) and replay.interpolate and replay.prices == {"LUNA": 77.45}


def test_make_process_finds_replays_by_any_path(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text("timestamp,price\n0,1\n60,2\n")
    relative = make_process({"kind": "replay", "path": "mine.csv"}, base_dir=tmp_path, asset="X")
    absolute = make_process({"kind": "replay", "path": str(tmp_path / "mine.csv"), "asset": "X"})
    assert relative.prices == absolute.prices == {"X": 1.0}


GBM_OK = {"kind": "gbm", "s0": 2000, "mu": 0.0, "sigma": 0.7}

BAD_CONFIGS = [
    ({"kind": "gmb"}, "markets.ETH.price.kind", "'gmb'", "one of 'gbm', 'jump', 'correlated', 'replay'"),
    ({"s0": 1}, "markets.ETH.price.kind", "None", "one of"),
    ({**GBM_OK, "sigma": -0.1}, "markets.ETH.price.sigma", "-0.1", "a number >= 0"),
    ({**GBM_OK, "s0": 0}, "markets.ETH.price.s0", "0", "a number > 0"),
    ({**GBM_OK, "mu": "5%"}, "markets.ETH.price.mu", "'5%'", "a number"),
    ({**GBM_OK, "mu": True}, "markets.ETH.price.mu", "True", "a number"),
    ({**GBM_OK, "sigmaa": 0.7}, "markets.ETH.price.sigmaa", "0.7", "no such field"),
    ({"kind": "jump", "s0": 1, "mu": 0, "sigma": 0.1}, "markets.ETH.price.jump_intensity", "None", "needs"),
    ({"kind": "jump", "s0": 1, "mu": 0, "sigma": 0.1, "jump_intensity": -1, "jump_mean": 0, "jump_std": 0.1},
     "markets.ETH.price.jump_intensity", "-1", ">= 0"),
    ({"kind": "correlated", "assets": {"A": {"s0": 1, "mu": 0}},
      "correlation": [[1]], "stress_correlation": [[1]]},
     "markets.ETH.price.assets.A.sigma", "None", "s0, mu, sigma"),
    ({"kind": "correlated", "assets": {"A": [1, 0, 0.1], "B": [1, 0, 0.1]},
      "correlation": [[1, 0], [0, 1]], "stress_correlation": [[1, 2], [2, 1]]},
     r"markets.ETH.price.stress_correlation[0][1]", "2.0", "from -1 to 1"),
    ({"kind": "replay", "path": "nope.csv"},
     "markets.ETH.price.path", "'nope.csv'", "btcusd_2020-03-12_1h.csv"),
    ({"kind": "replay", "path": "btcusd_2020-03-12_1h.csv", "interpolate": "yes"},
     "markets.ETH.price.interpolate", "'yes'", "true or false"),
]


@pytest.mark.parametrize(("config", "field", "value", "expected"), BAD_CONFIGS)
def test_make_process_errors_name_field_value_and_expectation(
    config: dict, field: str, value: str, expected: str
) -> None:
    with pytest.raises(PriceProcessError) as caught:
        make_process(config, where="markets.ETH.price")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field} = {value}: expected ")
    assert expected in caught.value.expected


def test_make_process_passes_on_bad_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("timestamp,price\n2,1\n1,2\n")
    with pytest.raises(ReplayDataError, match="bad.csv, line 3"):
        make_process({"kind": "replay", "path": "bad.csv"}, base_dir=tmp_path)
