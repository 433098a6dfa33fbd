"""Seeded price processes: where each step's prices come from (DESIGN §6).

A process holds the current price of each of its assets, in USD as floats (the caller
converts to 1e18 fixed point). `step(rng, dt_seconds)` moves every price forward by one
simulation step and returns them all. Randomness comes only from the `numpy.random.Generator`
passed to `step`, never from a global or default-seeded RNG, so the same seed gives the
same path.

Drift `mu` and volatility `sigma` are annualised, jump intensity is per year, and a year is
365 days of 24 hours (crypto markets never close).

Kinds: `GBM`, `JumpDiffusion` (Merton), `CorrelatedAssets` (correlated GBM with a stress
regime) and `Replay` (a CSV of real prices). `make_process` builds one from a plain dict, as
read from a scenario file.
"""

from __future__ import annotations

import bisect
import csv
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

SECONDS_PER_YEAR = 365 * 24 * 60 * 60
DATA_DIR = Path(__file__).resolve().parent / "data"
"""Where shipped replay series live; a bare file name in a config is looked up here."""

# Tolerance for checking that a correlation matrix is symmetric, has a unit diagonal and
# no negative eigenvalue (TOML floats such as 0.1 are not exact).
_MATRIX_TOLERANCE = 1e-9


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


class PriceProcessError(ValueError):
    """A parameter of a price process is wrong: names the field, the value and what was expected."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field} = {value!r}: expected {expected}")

    def under(self, prefix: str) -> PriceProcessError:
        """The same error with the field's path prefixed, e.g. `markets.BTC.price.sigma`."""
        return PriceProcessError(f"{prefix}.{self.field}", self.value, self.expected)


class ReplayDataError(ValueError):
    """A replay CSV cannot be used: names the file, the line (1 is the header) and the problem."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}, line {line}: {problem}")


class ReplayEndedError(RuntimeError):
    """A replay was stepped past the last row of its series and is not set to hold the last price."""


# ---------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------


class PriceProcess(ABC):
    """One or more assets' prices, moved step by step.

    `assets` names the assets in a fixed order. `prices` is the current price of each (USD);
    before the first step it is the starting price. A one-off shock (`jump`, or `shock` in
    `step`) multiplies a price by (1 + fraction), and later steps continue from there.
    """

    assets: tuple[str, ...]

    def __init__(self, prices: Mapping[str, float]) -> None:
        self.assets = tuple(prices)
        self._prices = dict(prices)

    @property
    def prices(self) -> dict[str, float]:
        """The current price of every asset, in USD."""
        return dict(self._prices)

    def step(
        self, rng: np.random.Generator, dt_seconds: float, shock: float | None = None
    ) -> dict[str, float]:
        """Move every price forward by `dt_seconds` and return the new prices (USD).

        `shock`, if given, then multiplies every asset's price by (1 + shock), as `jump` does
        for one asset: -0.3 is a 30% crash of everything this step.
        """
        self._move(_checked_rng(rng), _checked_dt(dt_seconds))
        self._apply_shock(shock)
        return self.prices

    def jump(self, asset: str, fraction: float) -> float:
        """Multiply `asset`'s price by (1 + fraction) now; later steps continue from it.

        Returns the new price. `fraction` must be above -1 so that the price stays positive.
        """
        if asset not in self._prices:
            raise PriceProcessError("asset", asset, f"one of {list(self.assets)}")
        self._prices[asset] *= 1.0 + _checked_fraction("fraction", fraction)
        return self._prices[asset]

    @abstractmethod
    def _move(self, rng: np.random.Generator, dt_seconds: float) -> None:
        """Advance `self._prices` by one step of `dt_seconds` (already validated)."""

    def _apply_shock(self, shock: float | None) -> None:
        if shock is None:
            return
        fraction = _checked_fraction("shock", shock)
        for asset in self.assets:
            self.jump(asset, fraction)


# ---------------------------------------------------------------------------------------
# Random processes
# ---------------------------------------------------------------------------------------


class GBM(PriceProcess):
    """Geometric Brownian motion: log-normal prices, the textbook model of a liquid asset.

    `s0` is the starting price (USD), `mu` the annualised expected return (E[S_t] =
    s0 * exp(mu * t), t in years) and `sigma` the annualised volatility of log returns.
    Each step is sampled exactly, so any step length gives the same distribution.
    """

    def __init__(self, s0: float, mu: float, sigma: float, *, asset: str = "ASSET") -> None:
        super().__init__({_checked_name("asset", asset): _positive("s0", s0)})
        self.mu = _finite("mu", mu)
        self.sigma = _non_negative("sigma", sigma)

    def _move(self, rng: np.random.Generator, dt_seconds: float) -> None:
        years = dt_seconds / SECONDS_PER_YEAR
        asset = self.assets[0]
        self._prices[asset] *= math.exp(
            _diffusion(self.mu, self.sigma, years, rng.standard_normal())
        )


class JumpDiffusion(GBM):
    """Merton jump diffusion: GBM plus sudden log-normal jumps, for crashes and squeezes.

    Jumps arrive as a Poisson process with `jump_intensity` jumps per year. Each jump
    multiplies the price by exp(Y), Y ~ Normal(`jump_mean`, `jump_std`), so `jump_mean` is
    the mean log jump (-0.2 is a typical drop of about 18%). The diffusion's drift is
    lowered by intensity * E[exp(Y) - 1], so `mu` stays the annualised expected return
    including jumps.
    """

    def __init__(
        self,
        s0: float,
        mu: float,
        sigma: float,
        jump_intensity: float,
        jump_mean: float,
        jump_std: float,
        *,
        asset: str = "ASSET",
    ) -> None:
        super().__init__(s0, mu, sigma, asset=asset)
        self.jump_intensity = _non_negative("jump_intensity", jump_intensity)
        self.jump_mean = _finite("jump_mean", jump_mean)
        self.jump_std = _non_negative("jump_std", jump_std)
        mean_jump_return = math.exp(self.jump_mean + 0.5 * self.jump_std**2) - 1.0
        self._compensated_mu = self.mu - self.jump_intensity * mean_jump_return

    def _move(self, rng: np.random.Generator, dt_seconds: float) -> None:
        years = dt_seconds / SECONDS_PER_YEAR
        log_return = _diffusion(self._compensated_mu, self.sigma, years, rng.standard_normal())
        jumps = int(rng.poisson(self.jump_intensity * years))
        if jumps:
            # The sum of `jumps` independent Normal(m, s) log jumps.
            log_return += jumps * self.jump_mean + self.jump_std * math.sqrt(jumps) * rng.standard_normal()
        self._prices[self.assets[0]] *= math.exp(log_return)


class CorrelatedAssets(PriceProcess):
    """Several GBM assets whose shocks are correlated, with a stress regime.

    `assets` maps each name to (s0 in USD, annualised mu, annualised sigma); its order is
    the order of the matrices' rows. `correlation` is the correlation of log returns in
    normal times; `stress_correlation` applies while the stress regime is on, and is meant
    to push correlations towards 1, as in a market-wide crash when diversification fails.
    Both must be symmetric, with a unit diagonal, and positive semi-definite (a matrix of
    all ones, perfect correlation, is allowed).
    """

    def __init__(
        self,
        assets: Mapping[str, tuple[float, float, float]],
        correlation: Sequence[Sequence[float]] | np.ndarray,
        stress_correlation: Sequence[Sequence[float]] | np.ndarray,
    ) -> None:
        if not isinstance(assets, Mapping) or not assets:
            raise PriceProcessError("assets", assets, "a non-empty table of name -> (s0, mu, sigma)")
        params = {_checked_name("assets", name): _asset_params(name, spec) for name, spec in assets.items()}
        super().__init__({name: s0 for name, (s0, _, _) in params.items()})
        self._mu = np.array([mu for _, mu, _ in params.values()])
        self._sigma = np.array([sigma for _, _, sigma in params.values()])
        self._normal_factor = _correlation_factor("correlation", correlation, self.assets)
        self._stress_factor = _correlation_factor("stress_correlation", stress_correlation, self.assets)
        self.stressed = False

    def set_stress(self, on: bool) -> None:
        """Turn the stress regime on or off for all later steps."""
        self.stressed = bool(on)

    def step(
        self,
        rng: np.random.Generator,
        dt_seconds: float,
        shock: float | None = None,
        stress: bool | None = None,
    ) -> dict[str, float]:
        """As `PriceProcess.step`; `stress` overrides the regime for this step only."""
        self._move_with(self._factor(stress), _checked_rng(rng), _checked_dt(dt_seconds))
        self._apply_shock(shock)
        return self.prices

    def _factor(self, stress: bool | None) -> np.ndarray:
        """The Cholesky factor of the regime in force: `stress` if given, else `stressed`."""
        stressed = self.stressed if stress is None else bool(stress)
        return self._stress_factor if stressed else self._normal_factor

    def _move(self, rng: np.random.Generator, dt_seconds: float) -> None:
        self._move_with(self._factor(None), rng, dt_seconds)

    def _move_with(self, factor: np.ndarray, rng: np.random.Generator, dt_seconds: float) -> None:
        years = dt_seconds / SECONDS_PER_YEAR
        # Always draw one normal per asset, whatever the regime, so that switching regimes
        # does not shift the rest of the random stream.
        shocks = factor @ rng.standard_normal(len(self.assets))
        log_returns = (self._mu - 0.5 * self._sigma**2) * years + self._sigma * math.sqrt(years) * shocks
        for asset, log_return in zip(self.assets, log_returns):
            self._prices[asset] *= math.exp(float(log_return))


# ---------------------------------------------------------------------------------------
# Replay of real series
# ---------------------------------------------------------------------------------------


class Replay(PriceProcess):
    """A real price series from a CSV, replayed on the simulation's step grid.

    The CSV has a header and one row per observation: a time column (Unix seconds, or an
    ISO 8601 date-time, UTC if no zone is given) and a price column (USD, > 0), sorted
    oldest first. The replay starts at the first row; after steps totalling t seconds the
    price is the series at first time + t: the last row at or before it (hold), or the
    straight line between the two rows around it (`interpolate=True`). Past the last row
    it holds the last price if `hold_at_end`, else raises `ReplayEndedError`. A `jump`
    scales the rest of the series, so a replay can carry wicks the candles hide.

    `path` is a shipped name in `sim/data/` or any file path; `asset` defaults to the file
    name up to its first underscore, upper-cased ("btcusd_2020-03-12_1h.csv" -> "BTCUSD").
    `rng` is accepted by `step` for the common protocol and not used.
    """

    def __init__(
        self,
        path: str | Path,
        column: str = "price",
        *,
        time_column: str = "timestamp",
        asset: str | None = None,
        interpolate: bool = False,
        hold_at_end: bool = False,
        base_dir: str | Path | None = None,
    ) -> None:
        self.path = resolve_data_path(path, base_dir)
        self.times, self.values = read_series(self.path, time_column, column)
        name = asset if asset is not None else self.path.stem.split("_")[0].upper()
        super().__init__({_checked_name("asset", name): self.values[0]})
        self.interpolate = bool(interpolate)
        self.hold_at_end = bool(hold_at_end)
        self.elapsed_seconds = 0.0
        self._scale = 1.0  # product of all jumps so far

    @property
    def duration_seconds(self) -> float:
        """Seconds from the first row to the last: how long the replay runs before its end."""
        return self.times[-1] - self.times[0]

    @property
    def current_time(self) -> float:
        """The series' own time (Unix seconds) that the replay has reached."""
        return self.times[0] + self.elapsed_seconds

    def series_price(self, elapsed_seconds: float) -> float:
        """The series' price `elapsed_seconds` after its first row, without jumps (USD)."""
        t = self.times[0] + elapsed_seconds
        i = max(bisect.bisect_right(self.times, t) - 1, 0)
        if not self.interpolate or i + 1 >= len(self.times):
            return self.values[i]
        t0, t1 = self.times[i], self.times[i + 1]
        p0, p1 = self.values[i], self.values[i + 1]
        return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    def jump(self, asset: str, fraction: float) -> float:
        price = super().jump(asset, fraction)
        self._scale *= 1.0 + fraction
        return price

    def _move(self, rng: np.random.Generator, dt_seconds: float) -> None:
        elapsed = self.elapsed_seconds + dt_seconds
        if elapsed > self.duration_seconds and not self.hold_at_end:
            raise ReplayEndedError(
                f"{self.path}: the replay ran past its last row: this step reaches {elapsed:g} s "
                f"after the first row, but the series covers only {self.duration_seconds:g} s "
                f"(at {dt_seconds:g} s a step, {int(self.duration_seconds // dt_seconds)} steps). "
                "Run fewer steps, or set hold_at_end to hold the last price."
            )
        self.elapsed_seconds = elapsed
        self._prices[self.assets[0]] = self.series_price(elapsed) * self._scale


def resolve_data_path(path: str | Path, base_dir: str | Path | None = None) -> Path:
    """Find a replay file: absolute as given, else under `base_dir`, `sim/data/`, then the cwd."""
    candidate = Path(path)
    if candidate.is_absolute():
        places = [candidate]
    else:
        roots = ([Path(base_dir)] if base_dir is not None else []) + [DATA_DIR, Path.cwd()]
        places = [root / candidate for root in roots]
    for place in places:
        if place.is_file():
            return place
    shipped = sorted(p.name for p in DATA_DIR.glob("*.csv"))
    raise PriceProcessError(
        "path", str(path), f"a CSV shipped in sim/data ({', '.join(shipped)}) or the path of an existing file"
    )


def read_series(path: Path, time_column: str, price_column: str) -> tuple[list[float], list[float]]:
    """Read and check a CSV's time and price columns: times in Unix seconds, prices in USD."""
    times: list[float] = []
    values: list[float] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise ReplayDataError(
                path, 1, "the file is empty; expected a header line such as 'timestamp,price'"
            )
        time_index = _column_index(path, header, time_column, "time")
        price_index = _column_index(path, header, price_column, "price")
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ReplayDataError(
                    path, line, f"the row has {len(row)} fields but the header has {len(header)}"
                )
            time = _parse_time(path, line, time_column, row[time_index].strip())
            price = _parse_price(path, line, price_column, row[price_index].strip())
            if times and time <= times[-1]:
                raise ReplayDataError(
                    path, line,
                    f"{time_column} {row[time_index].strip()} is not after the previous row's; "
                    "rows must be sorted by time, oldest first, with no repeats",
                )
            times.append(time)
            values.append(price)
    if not times:
        raise ReplayDataError(path, 2, "the file has a header but no rows")
    return times, values


def _column_index(path: Path, header: list[str], column: str, role: str) -> int:
    if column not in header:
        raise ReplayDataError(
            path, 1, f"no {role} column {column!r}; the header has {', '.join(repr(h) for h in header)}"
        )
    return header.index(column)


def _parse_time(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ReplayDataError(
                path, line, f"{column} {text!r} is neither Unix seconds nor an ISO 8601 date-time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ReplayDataError(path, line, f"{column} {text!r} is not a finite number of seconds")
    return value


def _parse_price(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ReplayDataError(path, line, f"{column} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ReplayDataError(path, line, f"{column} {text!r} is not positive; prices must be finite and > 0")
    return value


# ---------------------------------------------------------------------------------------
# Building a process from a scenario's dict
# ---------------------------------------------------------------------------------------

# kind -> (required fields, optional fields), besides "kind".
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gbm": (("s0", "mu", "sigma"), ("asset",)),
    "jump": (("s0", "mu", "sigma", "jump_intensity", "jump_mean", "jump_std"), ("asset",)),
    "correlated": (("assets", "correlation", "stress_correlation"), ()),
    "replay": (("path",), ("asset", "column", "time_column", "interpolate", "hold_at_end")),
}


def make_process(
    config: Mapping[str, Any],
    *,
    where: str = "price",
    asset: str | None = None,
    base_dir: str | Path | None = None,
) -> PriceProcess:
    """Build a price process from a plain dict, e.g. `{"kind": "gbm", "s0": 2000, ...}`.

    `kind` is "gbm", "jump", "correlated" or "replay"; the other keys are the class's
    parameters. `where` is the config's place in the scenario, used to name fields in
    errors (`markets.ETH.price.sigma`). `asset` names the asset of a single-asset process
    whose config gives none. Replay paths are looked up under `base_dir` (say, the scenario
    file's folder), then `sim/data/`, then the cwd. Raises `PriceProcessError` naming the
    field, the value and what was expected, or `ReplayDataError` for a bad CSV.
    """
    if not isinstance(config, Mapping):
        raise PriceProcessError(where, config, "a table with a 'kind' and its parameters")
    kind = config.get("kind")
    if kind not in _FIELDS:
        raise PriceProcessError(f"{where}.kind", kind, f"one of {', '.join(map(repr, _FIELDS))}")
    required, optional = _FIELDS[kind]
    for key in config:
        if key != "kind" and key not in required and key not in optional:
            fields = ", ".join(required + optional)
            raise PriceProcessError(
                f"{where}.{key}", config[key], f"no such field for kind {kind!r}; fields are {fields}"
            )
    for key in required:
        if key not in config:
            raise PriceProcessError(
                f"{where}.{key}", None, f"a value (it is missing; kind {kind!r} needs {', '.join(required)})"
            )
    try:
        return _BUILDERS[kind](config, asset, base_dir)
    except PriceProcessError as error:
        raise error.under(where) from None


def _build_gbm(config: Mapping[str, Any], asset: str | None, base_dir: Any) -> PriceProcess:
    numbers = {key: config[key] for key in _FIELDS["gbm"][0]}
    return GBM(**numbers, asset=config.get("asset", asset or "ASSET"))


def _build_jump(config: Mapping[str, Any], asset: str | None, base_dir: Any) -> PriceProcess:
    numbers = {key: config[key] for key in _FIELDS["jump"][0]}
    return JumpDiffusion(**numbers, asset=config.get("asset", asset or "ASSET"))


def _build_correlated(config: Mapping[str, Any], asset: str | None, base_dir: Any) -> PriceProcess:
    return CorrelatedAssets(config["assets"], config["correlation"], config["stress_correlation"])


def _build_replay(config: Mapping[str, Any], asset: str | None, base_dir: Any) -> PriceProcess:
    path = config["path"]
    if not isinstance(path, (str, Path)):
        raise PriceProcessError("path", path, "a file name or path (a string)")
    options: dict[str, Any] = {}
    for key in ("column", "time_column"):
        if key in config:
            options[key] = _checked_name(key, config[key])
    for key in ("interpolate", "hold_at_end"):
        if key in config:
            if not isinstance(config[key], bool):
                raise PriceProcessError(key, config[key], "true or false")
            options[key] = config[key]
    name = config.get("asset", asset)
    return Replay(path, asset=name, base_dir=base_dir, **options)


_BUILDERS = {"gbm": _build_gbm, "jump": _build_jump, "correlated": _build_correlated, "replay": _build_replay}


# ---------------------------------------------------------------------------------------
# Checks and maths shared by the processes
# ---------------------------------------------------------------------------------------


def _diffusion(mu: float, sigma: float, years: float, z: float) -> float:
    """One exact GBM log return over `years`, given a standard normal draw `z`."""
    return (mu - 0.5 * sigma * sigma) * years + sigma * math.sqrt(years) * float(z)


def _correlation_factor(name: str, matrix: Any, assets: tuple[str, ...]) -> np.ndarray:
    """Check a correlation matrix and return L with L @ L.T == matrix (Cholesky if it can)."""
    n = len(assets)
    try:
        m = np.array(matrix, dtype=float)
    except (TypeError, ValueError):
        raise PriceProcessError(
            name, matrix, f"a {n}x{n} matrix of numbers, rows and columns in order {list(assets)}"
        ) from None
    if m.shape != (n, n):
        raise PriceProcessError(
            name, matrix,
            f"a {n}x{n} matrix (one row and column per asset, in order {list(assets)}), not shape {m.shape}",
        )
    if not np.all(np.isfinite(m)):
        raise PriceProcessError(name, matrix, "finite numbers only")
    for i in range(n):
        if abs(m[i, i] - 1.0) > _MATRIX_TOLERANCE:
            raise PriceProcessError(
                f"{name}[{i}][{i}]", float(m[i, i]), f"1 on the diagonal ({assets[i]} with itself)"
            )
        for j in range(i + 1, n):
            pair = f"{assets[i]} with {assets[j]}"
            if abs(m[i, j] - m[j, i]) > _MATRIX_TOLERANCE:
                mirror = f"{name}[{j}][{i}] is {float(m[j, i])!r}"
                raise PriceProcessError(
                    f"{name}[{i}][{j}]", float(m[i, j]), f"a symmetric matrix, but {mirror} ({pair})"
                )
            if abs(m[i, j]) > 1.0:
                raise PriceProcessError(
                    f"{name}[{i}][{j}]", float(m[i, j]), f"a correlation from -1 to 1 ({pair})"
                )
    eigenvalues, eigenvectors = np.linalg.eigh(m)
    if eigenvalues.min() < -_MATRIX_TOLERANCE:
        raise PriceProcessError(
            name, matrix,
            f"a positive semi-definite matrix, but its smallest eigenvalue is {eigenvalues.min():.3g}: "
            "no set of assets can have all these correlations at once",
        )
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        # Semi-definite but singular (some correlations exactly 1): factor through the eigenbasis.
        return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def _asset_params(name: str, spec: Any) -> tuple[float, float, float]:
    """(s0, mu, sigma) from a tuple or a table {s0, mu, sigma}, checked."""
    field = f"assets.{name}"
    if isinstance(spec, Mapping):
        keys = ("s0", "mu", "sigma")
        extra = [key for key in spec if key not in keys]
        if extra:
            raise PriceProcessError(
                f"{field}.{extra[0]}", spec[extra[0]], "no such field; fields are s0, mu, sigma"
            )
        missing = [key for key in keys if key not in spec]
        if missing:
            raise PriceProcessError(f"{field}.{missing[0]}", None, "a value: each asset needs s0, mu, sigma")
        s0, mu, sigma = (spec[key] for key in keys)
    elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) == 3:
        s0, mu, sigma = spec
    else:
        raise PriceProcessError(field, spec, "(s0, mu, sigma) or a table with s0, mu and sigma")
    return (
        _positive(f"{field}.s0", s0),
        _finite(f"{field}.mu", mu),
        _non_negative(f"{field}.sigma", sigma),
    )


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PriceProcessError(field, value, "a number")
    return float(value)


def _finite(field: str, value: Any) -> float:
    number = _number(field, value)
    if not math.isfinite(number):
        raise PriceProcessError(field, value, "a finite number")
    return number


def _positive(field: str, value: Any) -> float:
    number = _finite(field, value)
    if number <= 0:
        raise PriceProcessError(field, value, "a number > 0")
    return number


def _non_negative(field: str, value: Any) -> float:
    number = _finite(field, value)
    if number < 0:
        raise PriceProcessError(field, value, "a number >= 0")
    return number


def _checked_fraction(field: str, value: Any) -> float:
    number = _finite(field, value)
    if number <= -1.0:
        raise PriceProcessError(
            field, value, "a fraction > -1 (the price is multiplied by 1 + fraction and must stay positive)"
        )
    return number


def _checked_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PriceProcessError(field, value, "a non-empty name")
    return value


def _checked_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng = {rng!r}: expected a numpy.random.Generator, e.g. numpy.random.default_rng(seed); "
            "price processes take no global or default-seeded RNG"
        )
    return rng


def _checked_dt(dt_seconds: Any) -> float:
    number = _finite("dt_seconds", dt_seconds)
    if number <= 0:
        raise PriceProcessError("dt_seconds", dt_seconds, "a step length in seconds > 0")
    return number
