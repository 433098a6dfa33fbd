"""Fixed-point conversion at the Python edge (DESIGN §2).

Inside the contracts every price, size, rate and fraction is 1e18 fixed point (WAD) and the
collateral token has 6 decimals. Python callers speak human units; these helpers convert,
exactly for anything written in decimal (through `Decimal(str(x))`, never float maths).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Union

WAD = 10**18
USDC_DECIMALS = 6
USDC_UNIT = 10**USDC_DECIMALS
PRECISION = 10 ** (18 - USDC_DECIMALS)  # one token unit in WAD

Number = Union[int, float, Decimal, str]


def _decimal(x: Number) -> Decimal:
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float) and x != x:  # NaN
        raise ValueError("expected a number, got NaN")
    return Decimal(str(x))


def to_wad(x: Number) -> int:
    """Human value -> 1e18 fixed point, rounded towards negative infinity."""
    return int((_decimal(x) * WAD).to_integral_value(rounding=ROUND_FLOOR))


def from_wad(x: int) -> float:
    """1e18 fixed point -> float (for display, decisions and tables; never fed back exactly)."""
    return x / WAD


def to_usdc(x: Number) -> int:
    """Dollars -> token units (6 decimals), rounded down."""
    return int((_decimal(x) * USDC_UNIT).to_integral_value(rounding=ROUND_FLOOR))


def from_usdc(x: int) -> float:
    """Token units (6 decimals) -> dollars."""
    return x / USDC_UNIT
