# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title ExchangeLens
@license MIT
@notice The Exchange's read side that it does not need itself: equity, a position's PnL,
        accrued funding, the funding rate, trade quotes and the initial margin fraction now,
        for off-chain readers (agents, keepers, the simulator) and the Liquidator's ADL
        check; and the rules of market parameters and limits, which the Exchange asks before
        it sets them. It holds no state and moves no tokens.
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
MAX_PARAM: constant(uint256) = 10**36   # skew scale, funding caps, premium half-life; USD caps, prices
MAX_FACTOR: constant(uint256) = 10**24  # 1e18: a million; the Vault factor and the leverage (products stay below 2**256)
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
def position_pnl(owner: address, subaccount: uint256, market: uint256) -> int256:
    """
    @notice A position's unrealised PnL at mark minus the funding it owes, USD 1e18.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market id.
    @return USD 1e18.
    """
    cum: int256 = 0
    rate: int256 = 0
    cum, rate = self._pending(market)
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    mark: int256 = convert(staticcall EXCHANGE.mark_price(market), int256)
    return fm.mul_down(pos.size, mark) - pos.cost - fm.mul_up(pos.size, cum - pos.funding_entry)


@view
@external
def initial_margin_fraction(market: uint256) -> uint256:
    """
    @notice The initial margin fraction a position in `market` is held to now: the base IMF,
            at least 1 / max_leverage, rising with the market's open interest (MarketLimits).
    @param market The market id.
    @return 1e18 == 100%.
    """
    index: uint256 = 0
    valid: bool = False
    index, valid = staticcall EXCHANGE.index_price(market)  # reverts for an unknown market
    lim: IExchangeCore.MarketLimits = staticcall EXCHANGE.market_limits(market)
    st: IExchangeCore.MarketState = staticcall EXCHANGE.market_states(market)
    return pm.initial_margin_fraction((staticcall EXCHANGE.markets(market)).imf, lim.max_leverage, lim.oi_imf_lower,
                                      lim.oi_imf_upper, max(st.oi_long, st.oi_short) * index // c.WAD)


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
    settled: uint256 = (staticcall EXCHANGE.market_limits(market)).settlement_price
    if settled != 0:  # a delisted market is priced at its settlement price
        low = settled
        high = settled
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


@view
@external
def check_limits(limits: IExchangeCore.MarketLimits, settlement_price: uint256) -> bool:
    """
    @notice Revert with the Exchange's reason unless `limits` are valid for a market whose
            settlement price is `settlement_price` (0: listed).
    @param limits The limits, in the units of the Exchange's MarketLimits.
    @param settlement_price The market's settlement price now, USD 1e18; once set it stays.
    @return True (it reverts otherwise).
    """
    assert settlement_price == 0 or limits.settlement_price == settlement_price, "exchange: market delisted"
    assert max(max(limits.oi_imf_upper, limits.max_oi_usd), limits.settlement_price) <= MAX_PARAM, "exchange: parameter too large"
    assert limits.oi_imf_upper > limits.oi_imf_lower or limits.oi_imf_upper + limits.oi_imf_lower == 0, "exchange: bad open-interest IMF caps"
    assert max(limits.max_oi_vault_factor, limits.max_leverage) <= MAX_FACTOR, "exchange: parameter too large"
    assert limits.max_leverage == 0 or limits.max_leverage >= c.WAD, "exchange: max leverage below 1"
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
