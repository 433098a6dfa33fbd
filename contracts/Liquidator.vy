# pragma version ~=0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title Liquidator
@license MIT
@notice Decides liquidations and auto-deleveraging for the Exchange, which trusts it
        through narrow hooks (DESIGN §4).
        - `liquidate`: anyone may close part or all of a position of a subaccount whose
          equity is below maintenance margin, against the Vault, at the fill price the
          market gives the closed size (its SIP-279 impact included, so the Vault's value
          does not move; at the last accepted index while a feed is invalid, where
          `liquidate_when_invalid` allows it). It closes enough to restore initial margin, or all of it when less
          than `min_position_notional` would remain. The fee (a share of the notional
          closed) goes to the keeper and the InsuranceFund; the fund tops the keeper's share
          up to `min_keeper_fee`, so liquidating an account under water still pays.
        - A liquidation limit (after Synthetix's): per window, a market closes at most
          `liquidation_limit_scalar * taker_fee * skew_scale` base units by liquidation. The
          window is the current block (`liquidation_window` 0), or the trailing
          `liquidation_window` seconds, as Synthetix v3 sums the liquidations of its last
          `maxSecondsInLiquidationWindow` (its cap, (maker + taker fee) * skew_scale *
          multiplier * seconds, is this scalar's limit for the whole window). A
          keeper who sells Q before a long's liquidation of q and buys back after earns
          Q * q / skew_scale of the index from the skew the liquidation moved, and pays a
          taker fee on both legs; Synthetix bounds q by (maker + taker fee) * skew_scale, but
          the keeper's own push lowers its fills and so its fees, so here the bound is one
          fee: the sandwich cannot pay while premiums stay within +-50%.
        - Bad debt: when the last position closes under water, the InsuranceFund pays. If
          it cannot pay all, the position stays open, the rest is the market's deficit, and
          the subaccount is bankrupt until `deleverage` closes it or `discharge` finds it has
          recovered. The Vault reads the bankrupt positions' books (`bankrupt_books`) so that
          its NAV never counts a loss their collateral cannot pay.
        - `deleverage`: while a bankrupt position is under water, anyone may close it against
          a profitable opposite position, both at the bankruptcy price, no more than leaves the
          target at or above maintenance margin: ADL never makes its target liquidatable, let
          alone leaves it under water.
        - `deleverage_by_pnl` (GMX v2's ADL by PnL factor): when the traders' net unrealised
          PnL in a market exceeds `adl_pnl_factor` of the Vault's value before it (GMX's
          pnlToPoolFactor over maxPnlFactorForAdl), anyone may close profitable positions
          against the Vault at the fill price a close gets, without a fee, until the factor
          is down to `adl_pnl_factor_after` (minPnlFactorAfterAdl); each close must lower the
          factor. Keepers pick the most profitable positions first.
@dev Liquidation parameters live here, per market, not in the Exchange's MarketParams.
"""

from interfaces import IExchangeCore
from interfaces import IPayer
import modules.constants as c
import modules.fixed_math as fm
import modules.perp_math as pm
import modules.ownable as ownable

interface ILens:  # the Exchange's lens (ExchangeLens), where the views the Exchange does not need live
    def position_pnl(owner: address, subaccount: uint256, market: uint256) -> int256: view

interface IVaultPnl:
    def market_pnl(market: uint256) -> (int256, int256): view

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)

# ---------------------------------------------------------------- CONSTANTS
SHRINK_STEPS: constant(uint256) = 16  # halvings a partial close may take to stay within its equity
HISTORY: constant(uint256) = 16  # blocks with liquidations a trailing window remembers per market
MAX_WINDOW: constant(uint256) = 10**9  # seconds (about 32 years)

# ---------------------------------------------------------------- STRUCTS
struct LiquidationParams:
    liquidation_fee: uint256          # fraction of the notional closed, 1e18 == 100%
    keeper_fee_share: uint256         # share of that fee paid to the keeper, 1e18 == 100%
    min_position_notional: uint256    # USD 1e18; close all if less would remain
    liquidate_when_invalid: bool      # keep liquidating on the last valid price while the feed is invalid
    min_keeper_fee: uint256           # USD 1e18; the fund tops the keeper's share up to it
    liquidation_limit_scalar: uint256  # 1e18; per-window limit = scalar * taker_fee * skew_scale; 0: none
    liquidation_window: uint256   # seconds the limit's trailing window spans; 0: the current block
    adl_pnl_factor: uint256       # 1e18; traders' PnL over the Vault's value above it starts ADL; 0: off
    adl_pnl_factor_after: uint256  # 1e18; ADL by PnL runs until the factor is down to it

struct BankruptBook:
    size: int256           # sum of the bankrupt positions' sizes, base units 1e18
    cost: int256           # sum of their cost, USD 1e18
    collateral: int256     # sum of their subaccounts' collateral, USD 1e18
    funding_entry: int256  # sum of size * funding_entry / 1e18, USD 1e18

struct Window:
    block_number: uint256  # the block the count is for
    closed: uint256        # base units 1e18 liquidated in that block

struct Closed:
    timestamp: uint256     # the block's time, unix seconds; 0: an empty slot
    closed: uint256        # base units 1e18 liquidated in that block (and any carried into it)

# ---------------------------------------------------------------- IMMUTABLES
EXCHANGE: public(immutable(IExchangeCore))  # the Exchange this contract liquidates for

# ---------------------------------------------------------------- STORAGE
params: public(HashMap[uint256, LiquidationParams])  # market id -> parameters (units: LiquidationParams)
# reentrant: the Vault's NAV reads the books, and ADL by PnL reads the NAV mid-call
bankrupt_books: public(reentrant(HashMap[uint256, HashMap[bool, BankruptBook]]))  # market id, long side -> book (units: BankruptBook)
windows: public(HashMap[uint256, Window])  # market id -> what the last block with a liquidation closed
history: public(HashMap[uint256, Closed[HISTORY]])  # market id -> a trailing window's blocks (a ring)
history_head: public(HashMap[uint256, uint256])  # market id -> the newest slot of `history`
adl_active: public(HashMap[uint256, bool])  # market id -> ADL by PnL started and not yet down to its after-factor

# ---------------------------------------------------------------- EVENTS
event ParamsSet:
    market: indexed(uint256)
    params: LiquidationParams

event Liquidation:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    keeper: address
    size: int256               # base units 1e18 traded: the opposite of the position's sign
    price: uint256             # USD 1e18
    keeper_fee: uint256        # tokens (6 decimals) paid to the keeper
    insurance_fee: uint256     # tokens (6 decimals) paid to the InsuranceFund
    remaining_equity: int256   # USD 1e18

event Bankruptcy:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    keeper: address
    shortfall: uint256         # tokens (6 decimals), more than the InsuranceFund held

event Deleverage:
    bankrupt_owner: indexed(address)
    bankrupt_subaccount: uint256
    target_owner: indexed(address)
    target_subaccount: uint256
    market: indexed(uint256)
    size: int256               # base units 1e18 the bankrupt position traded
    price: uint256             # the bankruptcy price, USD 1e18
    deficit_covered: uint256   # USD 1e18

event PnlDeleverage:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    keeper: address
    size: int256               # base units 1e18 traded: the opposite of the position's sign
    price: uint256             # USD 1e18
    pnl_factor: uint256        # before, 1e18
    pnl_factor_after: uint256  # after, 1e18

event Discharge:
    owner: indexed(address)
    subaccount: indexed(uint256)
    market: indexed(uint256)
    deficit: uint256           # its share of the deficit that left with it, USD 1e18


@deploy
def __init__(exchange: IExchangeCore):
    """
    @notice The deployer is the owner.
    @param exchange The Exchange this contract liquidates for.
    """
    EXCHANGE = exchange
    ownable.__init__()


# ================================================================ ADMIN
@external
def set_params(market: uint256, params: LiquidationParams):
    """
    @notice Set a market's liquidation parameters. Only the owner.
    @param market The market id.
    @param params Fractions 1e18 == 100%; amounts USD 1e18; the limit scalar 1e18 (see LiquidationParams).
    """
    ownable._check_owner()
    assert market < staticcall EXCHANGE.market_count(), "liquidator: unknown market"
    assert params.liquidation_fee < c.WAD, "liquidator: fee too high"
    assert params.keeper_fee_share <= c.WAD, "liquidator: share above 100%"
    assert max(max(params.min_keeper_fee, params.liquidation_limit_scalar), params.adl_pnl_factor) <= 10**36, "liquidator: parameter too large"
    assert params.liquidation_window <= MAX_WINDOW, "liquidator: window too long"
    assert params.adl_pnl_factor_after <= params.adl_pnl_factor, "liquidator: adl after-factor above factor"
    self.params[market] = params
    log ParamsSet(market=market, params=params)


# ================================================================ KEEPERS
@external
def liquidate(owner: address, subaccount: uint256, market: uint256, max_size: uint256) -> uint256:
    """
    @notice Liquidate up to `max_size` base units of a subaccount's position in `market`.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market.
    @param max_size Base units 1e18 at most.
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
    if (size - close) * mark // c.WAD < lp.min_position_notional:
        close = size
    # the most this liquidation may close: the position, the keeper's cap, the block's limit
    ceiling: uint256 = min(min(size, max_size), self._capacity(market, lp))
    close = min(close, ceiling)
    assert close > 0, "liquidator: limit reached"
    precision: uint256 = staticcall EXCHANGE.PRECISION()

    # A partial close must not lower a solvent subaccount's margin ratio (DESIGN §5.5): its
    # fee and the impact it realises against mark stay within its share of the equity,
    # less one token unit for the settlement's rounding. A close whose impact alone would
    # take more is halved until it fits; a position so large against the skew that no half
    # fits closes as much as it may (all of it, unless the keeper's cap or the block's limit
    # holds it back), as when equity cannot restore initial margin.
    state: IExchangeCore.MarketState = staticcall EXCHANGE.market_states(market)
    skew: int256 = convert(state.oi_long, int256) - convert(state.oi_short, int256)
    skew_scale: uint256 = (staticcall EXCHANGE.markets(market)).skew_scale
    last: bool = False
    delta: int256 = 0
    price: uint256 = 0
    gain: int256 = 0  # what the fill realises against mark, USD 1e18
    room: int256 = 0
    for attempt: uint256 in range(SHRINK_STEPS + 1):
        last = close == size and len(acct.markets) == 1
        delta = -convert(close, int256) if pos.size > 0 else convert(close, int256)
        price = pm.fill_price(index, skew, skew_scale, delta)
        gain = -fm.mul_up(delta, convert(price, int256) - convert(mark, int256))
        share: uint256 = 0  # a premium mark at -100% (skew beyond the scale) values the book at 0
        if h.notional > 0:
            share = convert(max(h.equity, 0), uint256) * (close * mark // c.WAD) // h.notional
        room = convert(share, int256) + gain
        if close == ceiling or h.equity <= 0 or room >= convert(precision, int256):
            break
        close = ceiling if close == 1 or attempt + 1 == SHRINK_STEPS else close // 2

    if last and h.equity + gain < 0:
        # the last close would leave a shortfall: the fund pays it, or the subaccount is bankrupt
        shortfall: uint256 = (convert(-(h.equity + gain), uint256) + precision - 1) // precision
        fund: IPayer = IPayer(staticcall EXCHANGE.INSURANCE_FUND())
        if staticcall fund.token_balance() < shortfall:
            extcall EXCHANGE.declare_bankrupt(owner, subaccount, market, shortfall)
            self._enter_book(owner, subaccount, market, 1)
            log Bankruptcy(owner=owner, subaccount=subaccount, market=market, keeper=msg.sender, shortfall=shortfall)
            return 0
    self._use_capacity(market, close, lp.liquidation_window)

    fee: uint256 = (close * mark // c.WAD * lp.liquidation_fee + c.WAD * precision - 1) // (c.WAD * precision)
    if not last:
        # none from an account under water: its fee would be paid by whoever covers its debt
        cap: uint256 = convert(max(room, 0), uint256) // precision if h.equity > 0 else 0
        fee = min(fee, cap - min(cap, 1))
    keeper_fee: uint256 = fee * lp.keeper_fee_share // c.WAD
    paid_keeper: uint256 = 0
    paid_insurance: uint256 = 0
    # the fund tops the keeper up to the minimum once per position, when it closes: never
    # per chunk, or a keeper could farm the fund with tiny liquidations
    minimum: uint256 = lp.min_keeper_fee // precision if close == size else 0
    paid_keeper, paid_insurance = extcall EXCHANGE.liquidation_fill(
        owner, subaccount, market, delta, price, msg.sender, keeper_fee, fee - keeper_fee, minimum)
    log Liquidation(owner=owner, subaccount=subaccount, market=market, keeper=msg.sender, size=delta,
                    price=price, keeper_fee=paid_keeper, insurance_fee=paid_insurance,
                    remaining_equity=(staticcall EXCHANGE.health(owner, subaccount)).equity)
    return close


@external
def deleverage(bankrupt_owner: address, bankrupt_subaccount: uint256, target_owner: address,
               target_subaccount: uint256, market: uint256, size: uint256) -> uint256:
    """
    @notice Close up to `size` base units of a bankrupt position that is still under water
            against a profitable opposite position, both at the bankruptcy price, covering
            the deficit pro rata. No more than leaves the target at or above maintenance margin:
            closing at the bankruptcy price rather than mark costs the target the difference.
    @param bankrupt_owner The bankrupt subaccount's owner.
    @param bankrupt_subaccount The bankrupt subaccount.
    @param target_owner The target's owner.
    @param target_subaccount The target subaccount.
    @param market The market.
    @param size Base units 1e18 at most.
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
    assert staticcall ILens(staticcall EXCHANGE.LENS()).position_pnl(target_owner, target_subaccount, market) > 0, "liquidator: target not profitable"
    equity: int256 = (staticcall EXCHANGE.health(bankrupt_owner, bankrupt_subaccount)).equity
    # recovered: nothing is left to socialise, and the old bankruptcy price would be a gift
    assert equity < 0, "liquidator: bankrupt recovered"
    mark: uint256 = staticcall EXCHANGE.mark_price(market)
    price: uint256 = self._bankruptcy_price(bpos.size, equity, mark)

    bankrupt_size: uint256 = convert(abs(bpos.size), uint256)
    amount: uint256 = min(size, min(bankrupt_size, convert(abs(tpos.size), uint256)))
    assert amount > 0, "liquidator: zero size"
    # Every unit closes the target `adverse` worse than mark, and frees mmf * mark of its
    # maintenance margin: no more is closed than leaves the target at or above maintenance
    # margin (two token units kept back for the fills' rounding), so ADL never makes its
    # target liquidatable, let alone leaves it under water.
    adverse: uint256 = max(price, mark) - min(price, mark)
    freed: uint256 = mark * (staticcall EXCHANGE.markets(market)).mmf // c.WAD
    if adverse > freed:
        h: IExchangeCore.Health = staticcall EXCHANGE.health(target_owner, target_subaccount)
        room: int256 = h.equity - convert(h.maintenance_margin, int256) - 2 * convert(staticcall EXCHANGE.PRECISION(), int256)
        amount = min(amount, convert(max(room, 0), uint256) * c.WAD // (adverse - freed))
    assert amount > 0, "liquidator: target equity too low"

    covered: uint256 = acct.deficit
    if amount < bankrupt_size:
        covered = acct.deficit * amount // bankrupt_size
    delta: int256 = convert(amount, int256)
    if bpos.size > 0:
        delta = -delta
    self._enter_book(bankrupt_owner, bankrupt_subaccount, market, -1)
    extcall EXCHANGE.deleverage_fill(bankrupt_owner, bankrupt_subaccount, target_owner, target_subaccount,
                                     market, delta, price, covered)
    if (staticcall EXCHANGE.accounts(bankrupt_owner, bankrupt_subaccount)).bankrupt:
        self._enter_book(bankrupt_owner, bankrupt_subaccount, market, 1)
    log Deleverage(bankrupt_owner=bankrupt_owner, bankrupt_subaccount=bankrupt_subaccount,
                   target_owner=target_owner, target_subaccount=target_subaccount, market=market,
                   size=delta, price=price, deficit_covered=covered)
    return amount


@external
def deleverage_by_pnl(owner: address, subaccount: uint256, market: uint256, max_size: uint256) -> uint256:
    """
    @notice GMX v2's ADL by PnL factor: while the traders' net unrealised PnL in `market` is
            above `adl_pnl_factor` of the Vault's value before it, or ADL has started and the
            factor is not yet down to `adl_pnl_factor_after`, close up to `max_size` of a
            profitable position against the Vault at the fill price a close gets, no fee. It
            closes no more than brings the factor to the after-factor, and must lower it.
            Anyone may call it; keepers pick the most profitable positions first.
    @param owner The position's owner.
    @param subaccount The subaccount.
    @param market The market.
    @param max_size Base units 1e18 at most.
    @return Base units closed; 0 when the factor was already down to the after-factor, which
            ends this round of ADL.
    """
    lp: LiquidationParams = self.params[market]
    assert lp.adl_pnl_factor > 0, "liquidator: adl by pnl off"
    index: uint256 = 0
    valid: bool = False
    index, valid = extcall EXCHANGE.accrue(market)
    assert valid, "liquidator: feed invalid"
    pnl: int256 = 0
    pool: int256 = 0
    pnl, pool = staticcall IVaultPnl(staticcall EXCHANGE.VAULT()).market_pnl(market)
    factor: uint256 = self._factor(pnl, pool)
    assert self.adl_active[market] or factor > lp.adl_pnl_factor, "liquidator: pnl factor below adl"
    if factor <= lp.adl_pnl_factor_after:
        self.adl_active[market] = False
        return 0
    self.adl_active[market] = True
    assert not (staticcall EXCHANGE.accounts(owner, subaccount)).bankrupt, "liquidator: account bankrupt"
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    gain: int256 = staticcall ILens(staticcall EXCHANGE.LENS()).position_pnl(owner, subaccount, market)
    assert pos.size != 0 and gain > 0, "liquidator: target not profitable"
    # each unit closed takes its share of the position's PnL (at mark) off the market's: close
    # what brings the PnL to after-factor * pool, the pool (the Vault before this PnL)
    # unchanged. The NAV counts the book at its closing fill, so the factor lands near the
    # after-factor, not on it; a round left above it goes on.
    size: uint256 = convert(abs(pos.size), uint256)
    excess: uint256 = convert(pnl - convert(lp.adl_pnl_factor_after, int256) * pool // c.IWAD, uint256)
    g: uint256 = convert(gain, uint256)
    close: uint256 = min(min(size, max_size), (excess * size + g - 1) // g)
    if (size - close) * (staticcall EXCHANGE.mark_price(market)) // c.WAD < lp.min_position_notional:
        close = min(size, max_size)
    assert close > 0, "liquidator: zero size"
    before: IExchangeCore.Health = staticcall EXCHANGE.health(owner, subaccount)
    state: IExchangeCore.MarketState = staticcall EXCHANGE.market_states(market)
    delta: int256 = -convert(close, int256) if pos.size > 0 else convert(close, int256)
    price: uint256 = pm.fill_price(index, convert(state.oi_long, int256) - convert(state.oi_short, int256),
                                   (staticcall EXCHANGE.markets(market)).skew_scale, delta)
    extcall EXCHANGE.liquidation_fill(owner, subaccount, market, delta, price, msg.sender, 0, 0, 0)
    after: IExchangeCore.Health = staticcall EXCHANGE.health(owner, subaccount)
    # like the bankrupt ADL, it never makes a healthy target liquidatable
    assert after.equity >= convert(after.maintenance_margin, int256) \
        or before.equity < convert(before.maintenance_margin, int256), "liquidator: adl leaves target liquidatable"
    pnl, pool = staticcall IVaultPnl(staticcall EXCHANGE.VAULT()).market_pnl(market)
    factor_after: uint256 = self._factor(pnl, pool)
    assert factor_after < factor, "liquidator: adl did not lower pnl factor"
    if factor_after <= lp.adl_pnl_factor_after:
        self.adl_active[market] = False
    log PnlDeleverage(owner=owner, subaccount=subaccount, market=market, keeper=msg.sender, size=delta,
                      price=price, pnl_factor=factor, pnl_factor_after=factor_after)
    return close


@external
def discharge(owner: address, subaccount: uint256):
    """
    @notice A bankrupt subaccount whose equity has come back to zero or more leaves
            bankruptcy, and its share of the deficit with it. Anyone.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    """
    acct: IExchangeCore.Account = staticcall EXCHANGE.accounts(owner, subaccount)
    assert acct.bankrupt, "liquidator: not bankrupt"
    market: uint256 = acct.markets[0]
    extcall EXCHANGE.accrue(market)
    assert (staticcall EXCHANGE.health(owner, subaccount)).equity >= 0, "liquidator: still under water"
    self._enter_book(owner, subaccount, market, -1)
    extcall EXCHANGE.discharge(owner, subaccount, market)
    log Discharge(owner=owner, subaccount=subaccount, market=market, deficit=acct.deficit)


# ================================================================ VIEWS
@view
@external
def is_liquidatable(owner: address, subaccount: uint256) -> bool:
    """
    @notice Whether a subaccount's equity is below its maintenance margin (and it is not
            already bankrupt, waiting for ADL).
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @return True when `liquidate` would accept it.
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
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market.
    @return USD 1e18.
    """
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    if pos.size == 0:
        return 0
    h: IExchangeCore.Health = staticcall EXCHANGE.health(owner, subaccount)
    mark: int256 = convert(staticcall EXCHANGE.mark_price(market), int256)
    mmf: int256 = convert((staticcall EXCHANGE.markets(market)).mmf, int256)
    size_abs: int256 = abs(pos.size)
    mm_here: int256 = size_abs * mark // c.IWAD * mmf // c.IWAD
    mm_others: int256 = convert(h.maintenance_margin, int256) - mm_here
    denominator: int256 = pos.size - size_abs * mmf // c.IWAD
    if denominator == 0:
        return 0
    price: int256 = (mm_others - h.equity + pos.size * mark // c.IWAD) * c.IWAD // denominator
    return convert(max(price, 0), uint256)


@view
@external
def bankruptcy_price(owner: address, subaccount: uint256, market: uint256) -> uint256:
    """
    @notice The mark at which the subaccount's equity is zero, other positions held at their
            current marks: what ADL closes a bankrupt position at.
    @param owner The subaccount's owner.
    @param subaccount The subaccount.
    @param market The market.
    @return USD 1e18; 0 without a position.
    """
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    if pos.size == 0:
        return 0
    return self._bankruptcy_price(pos.size, (staticcall EXCHANGE.health(owner, subaccount)).equity,
                                  staticcall EXCHANGE.mark_price(market))


@view
@external
def pnl_factor(market: uint256) -> uint256:
    """
    @notice The traders' net unrealised PnL in `market` over the Vault's value before it
            (GMX's pnlToPoolFactor): what `deleverage_by_pnl` compares with its factors.
    @param market The market.
    @return 1e18 == 100%; 0 when the traders are not in profit; max_value when the Vault is worth nothing without it.
    """
    pnl: int256 = 0
    pool: int256 = 0
    pnl, pool = staticcall IVaultPnl(staticcall EXCHANGE.VAULT()).market_pnl(market)
    return self._factor(pnl, pool)


# ================================================================ INTERNAL
@view
@internal
def _close_size(market: uint256, h: IExchangeCore.Health, mark: uint256, size: uint256) -> uint256:
    """
    @notice Base units to close at mark so equity (less the fee) meets initial margin again:
            (im - equity) / (mark * (imf - fee)); all of it when that cannot work.
    """
    imf: uint256 = (staticcall EXCHANGE.markets(market)).imf
    fee_rate: uint256 = self.params[market].liquidation_fee
    if imf <= fee_rate or h.equity <= 0 or mark == 0:
        return size
    gap: uint256 = h.initial_margin - convert(h.equity, uint256)
    per_unit: uint256 = mark * (imf - fee_rate)
    return min(size, (gap * c.WAD * c.WAD + per_unit - 1) // per_unit)


@view
@internal
def _capacity(market: uint256, lp: LiquidationParams) -> uint256:
    """Base units this market may still liquidate in its window (no limit without a scalar or a taker fee)."""
    if lp.liquidation_limit_scalar == 0:
        return max_value(uint256)
    p: IExchangeCore.MarketParams = staticcall EXCHANGE.markets(market)
    limit: uint256 = lp.liquidation_limit_scalar * p.taker_fee // c.WAD * p.skew_scale // c.WAD
    if limit == 0:
        return max_value(uint256)
    used: uint256 = 0
    if lp.liquidation_window == 0:
        if self.windows[market].block_number == block.number:
            used = self.windows[market].closed
    else:
        # Synthetix sums its liquidations back to `maxSecondsInLiquidationWindow` ago
        i: uint256 = self.history_head[market]
        for _: uint256 in range(HISTORY):
            entry: Closed = self.history[market][i]
            if entry.timestamp == 0 or block.timestamp >= entry.timestamp + lp.liquidation_window:
                break
            used += entry.closed
            i = (i + HISTORY - 1) % HISTORY
    return limit - min(used, limit)


@internal
def _use_capacity(market: uint256, closed: uint256, window: uint256):
    """Count `closed` against this block (window 0) or the trailing window's newest block."""
    if window == 0:
        if self.windows[market].block_number != block.number:
            self.windows[market] = Window(block_number=block.number, closed=0)
        self.windows[market].closed += closed
        return
    head: uint256 = self.history_head[market]
    if self.history[market][head].timestamp == block.timestamp:
        self.history[market][head].closed += closed
        return
    head = (head + 1) % HISTORY
    oldest: Closed = self.history[market][head]
    if oldest.timestamp > 0 and block.timestamp < oldest.timestamp + window:
        # the ring is full of blocks inside the window: the oldest's count moves to the
        # newest rather than drop out early, so the limit errs strict
        closed += oldest.closed
    self.history[market][head] = Closed(timestamp=block.timestamp, closed=closed)
    self.history_head[market] = head


@internal
def _enter_book(owner: address, subaccount: uint256, market: uint256, sign: int256):
    """Add (sign 1) or remove (sign -1) a bankrupt position and its collateral from its
    market's bankrupt book, on the side it holds."""
    pos: IExchangeCore.Position = staticcall EXCHANGE.positions(owner, subaccount, market)
    collateral: int256 = (staticcall EXCHANGE.accounts(owner, subaccount)).collateral
    book: BankruptBook = self.bankrupt_books[market][pos.size > 0]
    book.size += sign * pos.size
    book.cost += sign * pos.cost
    book.collateral += sign * collateral
    book.funding_entry += sign * fm.mul_down(pos.size, pos.funding_entry)
    self.bankrupt_books[market][pos.size > 0] = book


@pure
@internal
def _factor(pnl: int256, pool: int256) -> uint256:
    """PnL over pool, 1e18; 0 when the PnL is not positive, max_value when the pool is not."""
    if pnl <= 0:
        return 0
    if pool <= 0:
        return max_value(uint256)
    return convert(pnl * c.IWAD // pool, uint256)


@pure
@internal
def _bankruptcy_price(size: int256, equity: int256, mark: uint256) -> uint256:
    """
    @notice The price p at which equity + size * (p - mark) == 0: mark - equity / size,
            rounded (and moved two wei) so that the bankrupt side, closed there, does not end
            below zero after the fill's own rounding.
    """
    distance: int256 = fm.ceil_div(abs(equity) * c.IWAD, abs(size)) + 2
    if (size > 0) == (equity < 0):
        return convert(convert(mark, int256) + distance, uint256)
    return convert(max(convert(mark, int256) - distance, 0), uint256)
