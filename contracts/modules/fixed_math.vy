# pragma version ~=0.4.3
"""
@title fixed_math
@license MIT
@notice Stateless 1e18 fixed-point helpers with explicit rounding direction.
@dev Every rounding in perpsim favours the protocol (DESIGN §2), so each helper
     says which way it rounds. Signed division in Vyper truncates towards zero;
     these helpers floor or ceil instead.
"""

WAD: constant(uint256) = 10**18
IWAD: constant(int256) = 10**18


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
    """
    return self.floor_div(a * b, IWAD)


@internal
@pure
def mul_up(a: int256, b: int256) -> int256:
    """
    @notice a * b / 1e18, ceiled.
    """
    return self.ceil_div(a * b, IWAD)


@internal
@pure
def clamp(x: int256, lo: int256, hi: int256) -> int256:
    """
    @notice x limited to [lo, hi].
    """
    return max(lo, min(x, hi))


@internal
@pure
def median3(a: uint256, b: uint256, c: uint256) -> uint256:
    """
    @notice The middle one of three values.
    """
    return max(min(a, b), min(max(a, b), c))
