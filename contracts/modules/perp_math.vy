# pragma version ~=0.4.3
"""
@title perp_math
@license MIT
@notice The market maths the Exchange trades with and the Vault values its book with, in
        one place so that the two cannot drift apart: the SIP-279 fill price, the value of
        closing a whole skew along the same curve, continuous funding, and the initial margin
        fraction that rises with open interest and keeps to a maximum leverage.
@dev Stateless. Prices, sizes and rates are 1e18 fixed point; funding rates are per day.
"""

from . import constants as c
from . import fixed_math as fm

# ---------------------------------------------------------------- CONSTANTS
DAY: constant(int256) = 86400                   # seconds
LN2: constant(int256) = 693147180559945309      # ln 2, 1e18
INTEREST_8H: constant(int256) = 10**14          # 0.01% per 8 h
INTEREST_CLAMP_8H: constant(int256) = 5 * 10**14  # 0.05% per 8 h
FUNDING_PREMIUM: constant(uint256) = 0          # the `premium` funding model's id (1: velocity)


@pure
@internal
def fill_price(index: uint256, skew: int256, skew_scale: uint256, size_delta: int256) -> uint256:
    """
    @notice index * (1 + (premium_before + premium_after) / 2) (SIP-279).
    @dev A buy rounds up, a sell down: the trader gets the worse of the two.
    @param index The oracle price, 1e18 USD.
    @param skew Long minus short open interest before the trade, base units 1e18.
    @param skew_scale Base units 1e18; premium = skew / skew_scale.
    @param size_delta The trade, base units 1e18; > 0 buys.
    @return The fill price, 1e18 USD, never below zero.
    """
    numerator: int256 = convert(index, int256) * (2 * skew + size_delta)
    denominator: int256 = 2 * convert(skew_scale, int256)
    adjustment: int256 = fm.ceil_div(numerator, denominator) if size_delta > 0 else fm.floor_div(numerator, denominator)
    return convert(max(convert(index, int256) + adjustment, 0), uint256)


@pure
@internal
def close_value(price: uint256, skew: int256, skew_scale: uint256) -> int256:
    """
    @notice What the traders would receive (signed like the skew) for closing the whole skew
            along the SIP-279 curve at `price`: skew * price * (1 + skew / (2 skew_scale)),
            rounded down, the Vault's way.
    @dev The curve's integral does not depend on the order trades take, so this is what
         any sequence of closes would pay in total: valuing positions at it leaves the
         Vault's NAV unchanged by trades at a constant price (price impact included).
    @param price The oracle price, 1e18 USD.
    @param skew Long minus short open interest, base units 1e18.
    @param skew_scale Base units 1e18.
    @return USD 1e18.
    """
    value: int256 = fm.mul_down(skew, convert(price, int256))
    # skew^2 * price / (2 skew_scale) >= 0, rounded down
    half_premium: int256 = abs(skew) * c.IWAD // (2 * convert(skew_scale, int256))
    return value + abs(value) * half_premium // c.IWAD


@pure
@internal
def pending_funding(model: uint256, imf: uint256, mmf: uint256, max_rate: uint256, max_velocity: uint256,
                    half_life: uint256, cumulative: int256, rate: int256, ema: int256, premium: int256,
                    dt: int256, index: uint256) -> (int256, int256, int256):
    """
    @notice A market's funding index, rate and premium EMA `dt` seconds on.
    @dev `premium` (model 0, dYdX): rate per 8 h = clamp(premium + clamp(interest - premium,
         -0.05%, 0.05%), -cap, cap), cap = 6 (imf - mmf), stored per day (x 3). `velocity`
         (model 1, Synthetix): the rate moves by premium * max_velocity per day, capped at
         max_rate, and the index accrues the average of the old and new rates. The EMA uses
         alpha = dt / (dt + tau), tau = half_life / ln 2.
    @param model 0 premium, 1 velocity.
    @param imf Initial margin fraction, 1e18 == 100%.
    @param mmf Maintenance margin fraction, 1e18 == 100%.
    @param max_rate The velocity model's cap on the rate, per day, 1e18 == 100%.
    @param max_velocity The velocity model's rate change per day, per day, at full skew, 1e18.
    @param half_life Half-life of the premium EMA, seconds.
    @param cumulative The funding index, USD per base unit 1e18.
    @param rate The funding rate, per day, 1e18 == 100%.
    @param ema The premium EMA, 1e18.
    @param premium skew / skew_scale, clamped to [-1, 1], 1e18.
    @param dt Seconds since the last accrual.
    @param index The oracle price, 1e18 USD.
    @return (funding index USD 1e18 per base unit, rate per day 1e18, premium EMA 1e18) after dt.
    """
    if dt == 0:
        return cumulative, rate, ema
    new_rate: int256 = 0
    average: int256 = 0
    if model == FUNDING_PREMIUM:
        cap: int256 = 6 * convert(imf - mmf, int256)
        rate_8h: int256 = fm.clamp(premium + fm.clamp(INTEREST_8H - premium, -INTEREST_CLAMP_8H, INTEREST_CLAMP_8H), -cap, cap)
        new_rate = 3 * rate_8h
        average = new_rate
    else:
        velocity: int256 = premium * convert(max_velocity, int256) // c.IWAD
        cap: int256 = convert(max_rate, int256)
        new_rate = fm.clamp(rate + velocity * dt // DAY, -cap, cap)
        average = (rate + new_rate) // 2
    new_cumulative: int256 = cumulative + convert(index, int256) * average // c.IWAD * dt // DAY
    tau: int256 = convert(half_life, int256) * c.IWAD // LN2
    new_ema: int256 = ema + (premium - ema) * dt // (dt + tau)
    return new_cumulative, new_rate, new_ema



@pure
@internal
def initial_margin_fraction(imf: uint256, max_leverage: uint256, lower: uint256, upper: uint256,
                            open_interest: uint256) -> uint256:
    """
    @notice A position's initial margin fraction: the base `imf`, at least 1 / `max_leverage`
            (Hyperliquid's per-asset maximum leverage), rising linearly to 100% as the
            market's open interest goes from `lower` to `upper` (dYdX v4's open-interest-based
            IMF). Rounded up.
    @param imf The base initial margin fraction, 1e18 == 100%.
    @param max_leverage The largest notional / margin, 1e18; 0: no floor.
    @param lower Open interest where the fraction starts rising, USD 1e18.
    @param upper Open interest where it reaches 100%, USD 1e18; 0: it never rises.
    @param open_interest The market's open interest now, USD 1e18.
    @return The initial margin fraction, 1e18 == 100%.
    """
    fraction: uint256 = imf
    if max_leverage != 0:
        fraction = max(fraction, (c.WAD * c.WAD + max_leverage - 1) // max_leverage)
    if upper == 0 or open_interest <= lower:
        return fraction
    if open_interest >= upper:
        return c.WAD
    return fraction + ((c.WAD - fraction) * (open_interest - lower) + upper - lower - 1) // (upper - lower)
