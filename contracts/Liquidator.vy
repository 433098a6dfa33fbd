# pragma version ~=0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title Liquidator
@license MIT
@notice Decides liquidations and auto-deleveraging for the Exchange, which trusts it
        through narrow hooks (DESIGN §4).
        - `liquidate`: anyone may close part or all of a position of a subaccount whose
          equity is below maintenance margin, at mark, against the Vault. It closes enough
          to restore initial margin, or all of it when less than `min_position_notional`
          would remain or when the market's mark moves with skew (premium mode, where a
          partial close would move the mark against what remains). The fee (a share of the
          notional closed) goes to the keeper and the InsuranceFund.
        - Bad debt: when the last position closes under water, the InsuranceFund pays. If
          it cannot pay all, the position stays open, the rest is the market's deficit, and
          the subaccount is bankrupt until `deleverage` closes it.
        - `deleverage`: while a bankrupt position exists, anyone may close it against a
          profitable opposite position, both at the bankruptcy price.
@dev Liquidation parameters live here, per market, not in the Exchange's MarketParams.
"""

from interfaces import IExchangeCore
from interfaces import IPayer

# ---------------------------------------------------------------- CONSTANTS
WAD: constant(uint256) = 10**18
IWAD: constant(int256) = 10**18
MARK_PREMIUM: constant(uint256) = 1  # the Exchange's mark mode whose mark moves with skew

# ---------------------------------------------------------------- STRUCTS
struct LiquidationParams:
    liquidation_fee: uint256        # fraction of the notional closed, 1e18 == 100%
    keeper_fee_share: uint256       # share of that fee paid to the keeper
    min_position_notional: uint256  # USD 1e18; close all if less would remain
    liquidate_when_invalid: bool    # keep liquidating on the last valid price while the feed is invalid

# ---------------------------------------------------------------- IMMUTABLES
EXCHANGE: public(immutable(IExchangeCore))

# ---------------------------------------------------------------- STORAGE
owner: public(address)
params: public(HashMap[uint256, LiquidationParams])

# ---------------------------------------------------------------- EVENTS
event ParamsSet:
    market: indexed(uint256)
    params: LiquidationParams

event Liquidation:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    keeper: address
    size: int256
    price: uint256
    keeper_fee: uint256
    insurance_fee: uint256
    remaining_equity: int256

event Bankruptcy:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    keeper: address
    shortfall: uint256

event Deleverage:
    bankrupt_owner: indexed(address)
    bankrupt_subaccount: uint256
    target_owner: indexed(address)
    target_subaccount: uint256
    market: indexed(uint256)
    size: int256
    price: uint256
    deficit_covered: uint256


@deploy
def __init__(exchange: IExchangeCore):
    """
    @param exchange The Exchange this contract liquidates for.
    """
    EXCHANGE = exchange
    self.owner = msg.sender


@external
def set_params(market: uint256, params: LiquidationParams):
    """
    @notice Set a market's liquidation parameters. Only the owner.
    """
    assert msg.sender == self.owner, "liquidator: caller is not the owner"
    assert market < staticcall EXCHANGE.market_count(), "liquidator: unknown market"
    assert params.liquidation_fee < WAD, "liquidator: fee too high"
    assert params.keeper_fee_share <= WAD, "liquidator: share above 100%"
    self.params[market] = params
    log ParamsSet(market=market, params=params)


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "liquidator: caller is not the owner"
    assert new_owner != empty(address), "liquidator: zero owner"
    self.owner = new_owner


@external
def liquidate(owner: address, subaccount: uint256, market: uint256, max_size: uint256) -> uint256:
    """
    @notice Liquidate up to `max_size` base units of a subaccount's position in `market`.
    @return Base units closed; 0 when the subaccount was declared bankrupt instead.
    """
    index: uint256 = 0
    valid: bool = False
    index, valid = extcall EXCHANGE.accrue(market)
    lp: LiquidationParams = self.params[market]
    assert valid or lp.liquidate_when_invalid, "liquidator: liquidations paused"
    acct: IExchangeCore.Account = staticcall EXCHANGE.accounts(owner, subaccount)
    assert not acct.bankrupt, "liquidator: account bankrupt"
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    assert pos.size != 0, "liquidator: no position"
    h: IExchangeCore.Health = staticcall EXCHANGE.health(owner, subaccount)
    assert h.equity < convert(h.maintenance_margin, int256), "liquidator: not liquidatable"

    mark: uint256 = staticcall EXCHANGE.mark_price(market)
    size: uint256 = convert(abs(pos.size), uint256)
    close: uint256 = min(self._close_size(market, h, mark, size), max_size)
    assert close > 0, "liquidator: zero size"
    if (size - close) * mark // WAD < lp.min_position_notional or (staticcall EXCHANGE.markets(market)).mark_mode == MARK_PREMIUM:
        close = size
    last: bool = close == size and len(acct.markets) == 1
    precision: uint256 = staticcall EXCHANGE.PRECISION()

    if last and h.equity < 0:
        shortfall: uint256 = (convert(-h.equity, uint256) + precision - 1) // precision
        fund: IPayer = IPayer(staticcall EXCHANGE.INSURANCE_FUND())
        if staticcall fund.token_balance() < shortfall:
            extcall EXCHANGE.declare_bankrupt(owner, subaccount, market, shortfall)
            log Bankruptcy(owner=owner, subaccount=subaccount, market=market, keeper=msg.sender, shortfall=shortfall)
            return 0

    # The fee comes out of what equity is left, none under water. On a partial close it is
    # capped at equity * closed / notional, less one token unit for the fill's settlement
    # (which rounds realised PnL down to whole tokens), so the margin ratio of a solvent
    # subaccount never falls (DESIGN §5.5); on the last close the Exchange caps it at what is left.
    closed_notional: uint256 = close * mark // WAD
    fee: uint256 = (closed_notional * lp.liquidation_fee + WAD * precision - 1) // (WAD * precision)
    if not last:
        cap: uint256 = convert(max(h.equity, 0), uint256) * closed_notional // h.notional // precision
        fee = min(fee, cap - min(cap, 1))
    keeper_fee: uint256 = fee * lp.keeper_fee_share // WAD

    delta: int256 = -convert(close, int256) if pos.size > 0 else convert(close, int256)
    paid_keeper: uint256 = 0
    paid_insurance: uint256 = 0
    paid_keeper, paid_insurance = extcall EXCHANGE.liquidation_fill(
        owner, subaccount, market, delta, mark, msg.sender, keeper_fee, fee - keeper_fee)
    log Liquidation(owner=owner, subaccount=subaccount, market=market, keeper=msg.sender, size=delta,
                    price=mark, keeper_fee=paid_keeper, insurance_fee=paid_insurance,
                    remaining_equity=(staticcall EXCHANGE.health(owner, subaccount)).equity)
    return close


@external
def deleverage(bankrupt_owner: address, bankrupt_subaccount: uint256, target_owner: address,
               target_subaccount: uint256, market: uint256, size: uint256) -> uint256:
    """
    @notice Close up to `size` base units of a bankrupt position against a profitable opposite
            position, both at the bankruptcy price, covering the deficit pro rata.
    @return Base units deleveraged.
    """
    acct: IExchangeCore.Account = staticcall EXCHANGE.accounts(bankrupt_owner, bankrupt_subaccount)
    assert acct.bankrupt, "liquidator: not bankrupt"
    extcall EXCHANGE.accrue(market)
    bpos: IExchangeCore.Position = staticcall EXCHANGE.positions(bankrupt_owner, bankrupt_subaccount, market)
    tpos: IExchangeCore.Position = staticcall EXCHANGE.positions(target_owner, target_subaccount, market)
    assert bpos.size != 0, "liquidator: no bankrupt position"
    assert tpos.size != 0 and (tpos.size > 0) != (bpos.size > 0), "liquidator: target not opposite"
    # a bankrupt position leaves only as the bankrupt side, with its share of the deficit
    assert not (staticcall EXCHANGE.accounts(target_owner, target_subaccount)).bankrupt, "liquidator: target bankrupt"
    assert staticcall EXCHANGE.position_pnl(target_owner, target_subaccount, market) > 0, "liquidator: target not profitable"
    bankrupt_size: uint256 = convert(abs(bpos.size), uint256)
    amount: uint256 = min(size, min(bankrupt_size, convert(abs(tpos.size), uint256)))
    assert amount > 0, "liquidator: zero size"

    # settle funding first, so the bankruptcy price brings collateral to exactly zero
    extcall EXCHANGE.settle_funding(bankrupt_owner, bankrupt_subaccount, market)
    collateral: int256 = (staticcall EXCHANGE.accounts(bankrupt_owner, bankrupt_subaccount)).collateral
    price: uint256 = self._bankruptcy_price(bpos, collateral)

    covered: uint256 = acct.deficit
    if amount < bankrupt_size:
        covered = acct.deficit * amount // bankrupt_size
    delta: int256 = convert(amount, int256)
    if bpos.size > 0:
        delta = -delta
    extcall EXCHANGE.deleverage_fill(bankrupt_owner, bankrupt_subaccount, target_owner, target_subaccount,
                                     market, delta, price, covered)
    log Deleverage(bankrupt_owner=bankrupt_owner, bankrupt_subaccount=bankrupt_subaccount,
                   target_owner=target_owner, target_subaccount=target_subaccount, market=market,
                   size=delta, price=price, deficit_covered=covered)
    return amount


@view
@external
def is_liquidatable(owner: address, subaccount: uint256) -> bool:
    """
    @notice Whether a subaccount's equity is below its maintenance margin (and it is not
            already bankrupt, waiting for ADL).
    """
    acct: IExchangeCore.Account = staticcall EXCHANGE.accounts(owner, subaccount)
    if acct.bankrupt or len(acct.markets) == 0:
        return False
    h: IExchangeCore.Health = staticcall EXCHANGE.health(owner, subaccount)
    return h.equity < convert(h.maintenance_margin, int256)


@view
@external
def liquidation_price(owner: address, subaccount: uint256, market: uint256) -> uint256:
    """
    @notice The mark at which the subaccount reaches maintenance margin, other positions
            held at their current marks; 0 when no positive price does it.
    @dev Solves equity + size * (p - mark) == mm_others + mmf * |size| * p for p.
    """
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    if pos.size == 0:
        return 0
    h: IExchangeCore.Health = staticcall EXCHANGE.health(owner, subaccount)
    mark: int256 = convert(staticcall EXCHANGE.mark_price(market), int256)
    mmf: int256 = convert((staticcall EXCHANGE.markets(market)).mmf, int256)
    size_abs: int256 = abs(pos.size)
    mm_here: int256 = size_abs * mark // IWAD * mmf // IWAD
    mm_others: int256 = convert(h.maintenance_margin, int256) - mm_here
    denominator: int256 = pos.size - size_abs * mmf // IWAD
    if denominator == 0:
        return 0
    price: int256 = (mm_others - h.equity + pos.size * mark // IWAD) * IWAD // denominator
    return convert(max(price, 0), uint256)


@view
@external
def bankruptcy_price(owner: address, subaccount: uint256, market: uint256) -> uint256:
    """
    @notice The price at which closing the position leaves the subaccount's collateral at
            zero, before unsettled funding.
    """
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    if pos.size == 0:
        return 0
    return self._bankruptcy_price(pos, (staticcall EXCHANGE.accounts(owner, subaccount)).collateral)


@view
@internal
def _close_size(market: uint256, h: IExchangeCore.Health, mark: uint256, size: uint256) -> uint256:
    """
    @notice Base units to close at mark so equity (less the fee) meets initial margin again:
            (im - equity) / (mark * (imf - fee)); all of it when that cannot work.
    """
    imf: uint256 = (staticcall EXCHANGE.markets(market)).imf
    fee_rate: uint256 = self.params[market].liquidation_fee
    if imf <= fee_rate or h.equity <= 0:
        return size
    gap: uint256 = h.initial_margin - convert(h.equity, uint256)
    per_unit: uint256 = mark * (imf - fee_rate)
    return min(size, (gap * WAD * WAD + per_unit - 1) // per_unit)


@pure
@internal
def _bankruptcy_price(pos: IExchangeCore.Position, collateral: int256) -> uint256:
    """
    @notice The price p with collateral + size * p - cost == 0, rounded so the bankrupt
            side does not end below zero.
    """
    numerator: int256 = (pos.cost - collateral) * IWAD
    price: int256 = numerator // pos.size
    if numerator % pos.size != 0 and pos.size > 0:
        price += 1
    return convert(max(price, 0), uint256)
