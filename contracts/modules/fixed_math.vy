# pragma version ~=0.4.3
"""
@title fixed_math
@license MIT
@notice Stateless 1e18 fixed-point helpers with explicit rounding direction.
@dev Every rounding in perpsim favours the protocol (DESIGN §2), so each helper
     says which way it rounds. Signed division in Vyper truncates towards zero;
     these helpers floor or ceil instead.
"""

from . import constants as c


@internal
@pure
def floor_div(a: int256, b: int256) -> int256:
    """
    @notice a / b rounded towards negative infinity.
    @param a Dividend, any scale.
    @param b Divisor, non-zero.
    @return The floored quotient.
    """
    q: int256 = a // b
    if a % b != 0 and ((a < 0) != (b < 0)):
        q -= 1
    return q


@internal
@pure
def ceil_div(a: int256, b: int256) -> int256:
    """
    @notice a / b rounded towards positive infinity.
    @param a Dividend, any scale.
    @param b Divisor, non-zero.
    @return The ceiled quotient.
    """
    q: int256 = a // b
    if a % b != 0 and ((a < 0) == (b < 0)):
        q += 1
    return q


@internal
@pure
def mul_down(a: int256, b: int256) -> int256:
    """
    @notice a * b / 1e18, floored.
    @param a A factor, any scale.
    @param b A factor, 1e18 fixed point.
    @return The product, in the scale of `a`.
    """
    return self.floor_div(a * b, c.IWAD)


@internal
@pure
def mul_up(a: int256, b: int256) -> int256:
    """
    @notice a * b / 1e18, ceiled.
    @param a A factor, any scale.
    @param b A factor, 1e18 fixed point.
    @return The product, in the scale of `a`.
    """
    return self.ceil_div(a * b, c.IWAD)


@internal
@pure
def clamp(x: int256, lo: int256, hi: int256) -> int256:
    """
    @notice x limited to [lo, hi].
    @param x The value, any scale.
    @param lo The lower bound, in the scale of `x`.
    @param hi The upper bound, in the scale of `x`; not below `lo`.
    @return max(lo, min(x, hi)).
    """
    return max(lo, min(x, hi))


@internal
@pure
def median3(x: uint256, y: uint256, z: uint256) -> uint256:
    """
    @notice The middle one of three values.
    @param x A value, any scale.
    @param y A value, in the scale of `x`.
    @param z A value, in the scale of `x`.
    @return The median of the three.
    """
    return max(min(x, y), min(max(x, y), z))
