# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title ExchangeLens
@license MIT
@notice The Exchange's read side that no contract needs on chain: equity, accrued funding,
        the funding rate and trade quotes for off-chain readers (agents, keepers, the
        simulator), and the check of market parameters the Exchange asks before it lists or
        changes a market. It holds no state and moves no tokens.
@dev EIP-170 does not fit these in the Exchange beside its trading and risk code (DESIGN §1).
     The Exchange creates its lens in its constructor, so the lens is bound to that Exchange
     (EXCHANGE is the creator) and needs no setup transaction. Every value is read from the
     Exchange's and the Oracle's views and computed with the same modules the Exchange uses
     (perp_math, fixed_math), so it is the figure the Exchange itself would compute. Reverts
     carry the Exchange's reasons ("exchange: ..."): these are its views and its parameter rules.
"""

from interfaces import IExchangeCore
from interfaces import IOracle
import modules.constants as c
import modules.fixed_math as fm
import modules.bounds as bounds
import modules.perp_math as pm

# Bounds of market parameters (amounts and sizes: modules/bounds.vy), far beyond any real use.
MAX_PARAM: constant(uint256) = 10**36   # skew scale, funding caps, premium half-life
FUNDING_VELOCITY: constant(uint256) = 1  # funding model ids; 0 is perp_math.FUNDING_PREMIUM
MARK_MEDIAN: constant(uint256) = 2       # mark modes 0 oracle, 1 premium, 2 median

EXCHANGE: public(immutable(IExchangeCore))  # the Exchange that created this lens


@deploy
def __init__():
    """
    @notice Created by the Exchange in its constructor: the creator is the Exchange it reads.
    """
    EXCHANGE = IExchangeCore(msg.sender)


# ================================================================ VIEWS
@view
@external
def equity(owner: address, subaccount: uint256) -> int256:
    """
    @notice Collateral plus unrealised PnL at mark minus accrued funding, USD 1e18.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @return USD 1e18; negative when under water.
    """
    return (staticcall EXCHANGE.health(owner, subaccount)).equity


@view
@external
def accrued_funding(owner: address, subaccount: uint256, market: uint256) -> int256:
    """
    @notice Funding a position owes since it was last settled, USD 1e18 (negative: it is owed).
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market id.
    @return USD 1e18 (rounded up).
    """
    cum: int256 = 0
    rate: int256 = 0
    cum, rate = self._pending(market)
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    return fm.mul_up(pos.size, cum - pos.funding_entry)


@view
@external
def funding_rate(market: uint256) -> int256:
    """
    @notice The current funding rate per day, 1e18 == 100%; positive: longs pay.
    @param market The market id.
    @return Per day, 1e18 == 100%.
    """
    cum: int256 = 0
    rate: int256 = 0
    cum, rate = self._pending(market)
    return rate


@view
@external
def fill_price(market: uint256, size_delta: int256) -> uint256:
    """
    @notice The price a trade of `size_delta` would fill at now: while the feed is invalid,
            at the end of its disputed band that is worse for the trade.
    @param market The market id.
    @param size_delta Base units 1e18; > 0 buys.
    @return USD 1e18.
    """
    assert market < staticcall EXCHANGE.market_count(), "exchange: unknown market"
    assert size_delta >= -bounds.MAX_SIZE and size_delta <= bounds.MAX_SIZE, "exchange: size too large"
    p: IExchangeCore.MarketParams = staticcall EXCHANGE.markets(market)
    index: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    index, low, high, valid = staticcall IOracle(staticcall EXCHANGE.oracle()).price_band(p.asset)
    return pm.fill_price(high if size_delta > 0 else low, self._skew(market), p.skew_scale, size_delta)


# ================================================================ PARAMETER RULES
@view
@external
def check_params(p: IExchangeCore.MarketParams, oracle: IOracle) -> bool:
    """
    @notice Revert with the Exchange's reason unless `p` are valid market parameters.
    @param p The parameters, in the units of the Exchange's MarketParams.
    @param oracle The Exchange's price feed, which bounds the median mark's TWAP window.
    @return True (it reverts otherwise).
    """
    assert p.mmf > 0 and p.mmf < p.imf and p.imf <= c.WAD, "exchange: bad margin fractions"
    assert p.skew_scale > 0, "exchange: zero skew scale"
    assert p.taker_fee < c.WAD, "exchange: fee too high"
    assert p.insurance_fee_share <= c.WAD, "exchange: share above 100%"
    assert p.funding_model <= FUNDING_VELOCITY, "exchange: unknown funding model"
    assert p.mark_mode <= MARK_MEDIAN, "exchange: unknown mark mode"
    assert max(max(p.skew_scale, p.premium_half_life), max(p.max_funding_rate, p.max_funding_velocity)) <= MAX_PARAM, "exchange: parameter too large"
    assert p.max_oi <= convert(bounds.MAX_SIZE, uint256), "exchange: parameter too large"
    if p.mark_mode == MARK_MEDIAN:
        assert p.twap_window <= staticcall oracle.twap_capacity(p.asset), "exchange: twap window too long"
    return True


# ================================================================ INTERNAL
@view
@internal
def _skew(market: uint256) -> int256:
    """Long minus short open interest, base units."""
    st: IExchangeCore.MarketState = staticcall EXCHANGE.market_states(market)
    return convert(st.oi_long, int256) - convert(st.oi_short, int256)


@view
@internal
def _pending(market: uint256) -> (int256, int256):
    """(cumulative funding, funding rate per day) as of now, as the Exchange accrues them."""
    index: uint256 = 0
    valid: bool = False
    index, valid = staticcall EXCHANGE.index_price(market)  # reverts for an unknown market
    p: IExchangeCore.MarketParams = staticcall EXCHANGE.markets(market)
    st: IExchangeCore.MarketState = staticcall EXCHANGE.market_states(market)
    premium: int256 = fm.clamp((convert(st.oi_long, int256) - convert(st.oi_short, int256)) * c.IWAD // convert(p.skew_scale, int256), -c.IWAD, c.IWAD)
    cum: int256 = 0
    rate: int256 = 0
    ema: int256 = 0
    cum, rate, ema = pm.pending_funding(p.funding_model, p.imf, p.mmf, p.max_funding_rate, p.max_funding_velocity,
                                        p.premium_half_life, st.cumulative_funding, st.funding_rate, st.premium_ema,
                                        premium, convert(block.timestamp - st.last_update, int256), index)
    return cum, rate
