"""The bounds of every number a scenario holds, matched to the contracts' own checks.

The contracts refuse amounts, sizes, prices, durations and parameters beyond the limits of
contracts/modules/bounds.vy and of their parameter checks (Exchange, Oracle, Vault). The
scenario schema refuses them first, so a bad value is a validation error that names the
field, not a revert or an OverflowError halfway through a deployment. Each `*_WAD`, token and
count constant below mirrors one constant of the contracts; tests/unit/test_bounds.py reads
them from the Vyper sources and fails when they drift apart.

How a field of the schema is declared (`MarketConfig`, `OracleConfig`, `ProtocolConfig`, the
scenario and its shocks, price tables and agent Configs): its type is `Number` (a finite
float), `Integer` or `Flag`, all strict, so a TOML `true` is not 1 and 1 is not `true`; its
bounds are in its own `Field(...)`, from the constants here:

    skew_scale: Number = Field(1_000_000.0, ge=MIN_FIXED_POINT, le=MAX_PARAM, description=...)

One place per field. tests/sim/test_bounds.py walks the whole schema and fails on any numeric
field without a lower and an upper bound, and deploys a market with every parameter at its
bound, so a new field cannot forget them and no bound is looser than the contracts'.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AllowInfNan, Strict

Number = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number (TOML integer or float; not a boolean, not inf or nan)."""

Integer = Annotated[int, Strict()]
"""A TOML integer (not a boolean, not 3.0)."""

Flag = Annotated[bool, Strict()]
"""`true` or `false` (not 1 or 0)."""

WAD = 10**18
TOKEN_DECIMALS = 6

# ------------------------------------------------------------------- the contracts' limits
MAX_AMOUNT_TOKENS = 10**30
"""modules/bounds.vy MAX_AMOUNT: collateral tokens (6 decimals) per deposit, withdrawal or fee."""
MAX_SIZE_WAD = 10**33
"""modules/bounds.vy MAX_SIZE: base units (1e18) per trade or order."""
MAX_PARAM_WAD = 10**36
"""Exchange.vy MAX_PARAM: skew scale, funding caps (1e18) and the premium half-life (seconds)."""
MAX_PRICE_WAD = 10**36
"""Oracle.vy MAX_PRICE: a reported price, USD 1e18."""
MAX_FACTOR_WAD = 10**24
"""ExchangeLens.vy MAX_FACTOR: a market's max_oi_vault_factor and max_leverage, 1e18."""
MAX_DURATION = 10**9
"""Oracle.vy MAX_DURATION: max_age, breach_timeout, observation_spacing, seconds."""
MAX_RESERVE_FACTOR_WAD = 100 * WAD
"""Vault.vy MAX_RESERVE_FACTOR: reserves / open-interest notional, 1e18."""
MAX_REPORTERS = 16
"""Oracle.vy MAX_REPORTERS: whitelisted reporters."""
MAX_MARKETS = 16
"""contracts/modules/constants.vy MAX_MARKETS."""

# ------------------------------------------------------------------- the same, in human units
MIN_FIXED_POINT = 1 / WAD
"""1e-18: the smallest positive 1e18 fixed-point value; a positive fraction, price or scale
below it would reach the contracts as 0."""
MIN_USD = 10.0**-TOKEN_DECIMALS
"""One token unit: a positive amount below it would reach the contracts as 0."""
MAX_USD = MAX_AMOUNT_TOKENS / 10**TOKEN_DECIMALS
"""1e24 USD: the largest deposit, withdrawal or fee the contracts take."""
MAX_BASE_UNITS = MAX_SIZE_WAD / WAD
"""1e15 base units: the largest trade or order."""
MAX_PRICE_USD = MAX_PRICE_WAD / WAD
"""1e18 USD: the largest price the Oracle accepts."""
MAX_PARAM = MAX_PARAM_WAD / WAD
MAX_FACTOR = MAX_FACTOR_WAD / WAD
"""1e18: the largest skew scale or funding cap the Exchange accepts."""
MAX_RESERVE_FACTOR = MAX_RESERVE_FACTOR_WAD / WAD
"""100: the largest Vault reserve factor."""

# ------------------------------------------------------------------- the simulator's limits
# Not contract limits: far beyond any real use, they keep the simulator's own arithmetic
# (price paths, sizes computed from leverage, block counts) finite.
MAX_STEPS = 10_000_000
"""Steps of a run, and any count of steps or blocks a field holds."""
MAX_STEP_SECONDS = 31_536_000
"""One year: the longest step."""
MAX_LEVERAGE = 1_000.0
"""Position notional / equity an agent aims for."""
MAX_RATIO = 1_000_000.0
"""Multipliers and dimensionless thresholds (a price factor, a utilisation, a move)."""
MAX_GAS = 30_000_000
"""Gas of one transaction (sim/chain's GAS_LIMIT)."""
MAX_GAS_PER_STEP = 10**9
"""Gas a keeper may spend in one step."""
MAX_DRIFT = 10_000.0
"""Drift of a price process, per year (a crash over a few hundred blocks needs thousands)."""
MAX_VOLATILITY = 1_000.0
"""Volatility of a price process, per year."""
MAX_LOG_JUMP = 10.0
"""Mean and standard deviation of one log jump of a jump process (e^10: a factor of 22,000)."""
MAX_LOG_MOVE_PER_STEP = 700.0
"""The largest log price move a step may make, at eight standard deviations (e^709 overflows a float)."""
MAX_AGENTS = 10_000
"""Agents of one `[[agents]]` table."""

__all__ = [
    "Flag", "Integer", "MAX_AGENTS", "MAX_AMOUNT_TOKENS", "MAX_BASE_UNITS", "MAX_DRIFT", "MAX_DURATION",
    "MAX_GAS", "MAX_GAS_PER_STEP", "MAX_LEVERAGE", "MAX_LOG_JUMP", "MAX_LOG_MOVE_PER_STEP", "MAX_MARKETS",
    "MAX_FACTOR", "MAX_FACTOR_WAD", "MAX_PARAM", "MAX_PARAM_WAD", "MAX_PRICE_USD", "MAX_PRICE_WAD", "MAX_RATIO", "MAX_REPORTERS",
    "MAX_RESERVE_FACTOR", "MAX_RESERVE_FACTOR_WAD", "MAX_SIZE_WAD", "MAX_STEPS", "MAX_STEP_SECONDS", "MAX_USD",
    "MAX_VOLATILITY", "MIN_FIXED_POINT", "MIN_USD", "Number", "TOKEN_DECIMALS", "WAD",
]
