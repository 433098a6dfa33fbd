# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Vault
@license MIT
@notice The LP pool. It is the counterparty of the traders' net position: traders'
        realised PnL and funding settle against it, and it earns most of the taker fee.
        LPs hold shares of its NAV.
@dev NAV (1e18 USD) = token balance + negative collateral the Exchange owes it (it lent it)
     - profit the Exchange credited that it has not paid yet - the traders' book, valued at
     what closing all of it along the SIP-279 curve would pay them, net of funding. The
     price impact a trade paid is not the Vault's until the trade closes, so a trade at a
     constant price leaves NAV where it was (GMX v2 keeps impact out of pool value).
     NAV is a bid and an ask: LPs redeem at the bid and deposit at the ask. The bid takes,
     market by market, the end of the oracle's disputed band that is worse for the Vault,
     and counts a bankrupt position at no more than its collateral can pay; the ask takes
     the other end and counts it in full. While every feed is valid and nothing is
     bankrupt, the two are one number. So no value leaves at a price the protocol knows is
     disputed, and an LP who enters cannot dilute those already in.
     Virtual shares (one share and one dollar that nobody owns) make a donation the donor's
     loss, not the next depositor's (the first-depositor attack).
     Withdrawals stop when they would leave the balance, less what the Vault owes the
     Exchange, below `reserve_factor` times the open-interest notional (GMX v2); the
     Exchange checks the same reserve when open interest grows.
"""

from ethereum.ercs import IERC20
from interfaces import IPayer
from interfaces import IExchange
from interfaces import IOracle
from interfaces import ILiquidator
import modules.bounds as bounds
import modules.constants as c
import modules.fixed_math as fm
import modules.perp_math as pm
import modules.ownable as ownable

implements: IPayer

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)

# ---------------------------------------------------------------- CONSTANTS
# Input bounds that keep every product far below 2**256.
MAX_RESERVE_FACTOR: constant(uint256) = 100 * c.WAD  # reserves of 100x open-interest notional
VIRTUAL_SHARES: constant(uint256) = 10**18  # one share (1e18 scale) that nobody owns
VIRTUAL_ASSETS: constant(int256) = 10**18   # and the dollar (USD 1e18) it is worth

# ---------------------------------------------------------------- IMMUTABLES
TOKEN: public(immutable(IERC20))       # the collateral token (6 decimals for USDC)
PRECISION: public(immutable(uint256))  # 10**(18 - token decimals): USD 1e18 per token unit

# ---------------------------------------------------------------- STORAGE
exchange: public(address)        # the Exchange this Vault backs, set once
reserve_factor: public(uint256)  # 1e18 == 100% of open-interest notional
total_shares: public(uint256)    # 1e18 scale, virtual share not included
shares: public(HashMap[address, uint256])  # LP -> shares, 1e18 scale
nav_at_close_price: public(bool)  # value the book at its closing fill (a defence; True is safe)

# ---------------------------------------------------------------- EVENTS
event ExchangeSet:
    exchange: indexed(address)

event ReserveFactorSet:
    reserve_factor: uint256  # 1e18 == 100% of open-interest notional

event ValuationSet:
    nav_at_close_price: bool

event Deposit:
    provider: indexed(address)
    amount: uint256  # tokens (6 decimals)
    shares: uint256  # minted, 1e18 scale
    nav: int256      # the ask NAV before the deposit, USD 1e18

event Withdraw:
    provider: indexed(address)
    amount: uint256  # tokens (6 decimals)
    shares: uint256  # burnt, 1e18 scale
    nav: int256      # the bid NAV before the withdrawal, USD 1e18

event Paid:
    receiver: indexed(address)
    amount: uint256  # tokens (6 decimals)


@deploy
def __init__(token: IERC20, token_decimals: uint256, reserve_factor: uint256):
    """
    @notice The deployer is the owner. The book is valued at its closing fill.
    @param token The collateral token.
    @param token_decimals Its decimals (6 for USDC), at most 18.
    @param reserve_factor 1e18 == reserves must cover 100% of open-interest notional; at most 100x.
    """
    TOKEN = token
    PRECISION = 10 ** (18 - token_decimals)
    ownable.__init__()
    assert reserve_factor <= MAX_RESERVE_FACTOR, "vault: reserve factor too high"
    self.reserve_factor = reserve_factor
    self.nav_at_close_price = True


# ================================================================ ADMIN
@external
def set_exchange(exchange: address):
    """
    @notice Name the Exchange this Vault backs. Once only. Only the owner.
    @param exchange The Exchange.
    """
    ownable._check_owner()
    assert self.exchange == empty(address), "vault: exchange already set"
    assert exchange != empty(address), "vault: zero exchange"
    self.exchange = exchange
    log ExchangeSet(exchange=exchange)


@external
def set_reserve_factor(reserve_factor: uint256):
    """
    @notice Change the reserve the Vault keeps against open interest. Only the owner.
    @param reserve_factor 1e18 == 100% of open-interest notional.
    """
    ownable._check_owner()
    assert reserve_factor <= MAX_RESERVE_FACTOR, "vault: reserve factor too high"
    self.reserve_factor = reserve_factor
    log ReserveFactorSet(reserve_factor=reserve_factor)


@external
def set_nav_at_close_price(enabled: bool):
    """
    @notice Value the traders' book at what closing it would pay (True, the default), or at
            the index price with no impact (False: the price impact traders paid counts as
            NAV at once, which lets an LP take it back with a round trip). Only the owner.
    @param enabled True to keep impact out of NAV.
    """
    ownable._check_owner()
    self.nav_at_close_price = enabled
    log ValuationSet(nav_at_close_price=enabled)


# ================================================================ LIQUIDITY
@external
def deposit(amount: uint256) -> uint256:
    """
    @notice Deposit `amount` tokens for shares at the ask NAV.
    @param amount Tokens (6 decimals).
    @return Shares minted (1e18 scale), rounded down.
    """
    assert amount > 0, "vault: zero amount"
    assert amount <= bounds.MAX_AMOUNT, "vault: amount too large"
    assert self.exchange != empty(address), "vault: no exchange"
    nav: int256 = self._nav(True)
    assert nav + VIRTUAL_ASSETS > 0, "vault: insolvent"
    minted: uint256 = amount * PRECISION * (self.total_shares + VIRTUAL_SHARES) // convert(nav + VIRTUAL_ASSETS, uint256)
    assert minted > 0, "vault: zero shares"
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "vault: transfer failed"
    self.total_shares += minted
    self.shares[msg.sender] += minted
    log Deposit(provider=msg.sender, amount=amount, shares=minted, nav=nav)
    return minted


@external
def withdraw(share_amount: uint256) -> uint256:
    """
    @notice Burn `share_amount` shares for tokens at the bid NAV.
    @param share_amount Shares, 1e18 scale.
    @return Tokens paid (6 decimals), rounded down.
    """
    assert share_amount > 0, "vault: zero shares"
    assert self.shares[msg.sender] >= share_amount, "vault: insufficient shares"
    nav: int256 = self._nav(False)
    assert nav > 0, "vault: insolvent"
    amount: uint256 = convert(nav + VIRTUAL_ASSETS, uint256) * share_amount // (self.total_shares + VIRTUAL_SHARES) // PRECISION
    assert amount > 0, "vault: zero amount"
    balance: uint256 = staticcall TOKEN.balanceOf(self)
    # what the Vault owes the Exchange comes first
    debt: uint256 = staticcall IExchange(self.exchange).vault_debt()
    assert amount * PRECISION + debt <= balance * PRECISION, "vault: insufficient liquidity"
    reserve: uint256 = self.reserve_factor * (staticcall IExchange(self.exchange).open_interest_notional()) // c.WAD
    assert (balance - amount) * PRECISION >= reserve + debt, "vault: below reserve"
    self.total_shares -= share_amount
    self.shares[msg.sender] -= share_amount
    assert extcall TOKEN.transfer(msg.sender, amount, default_return_value=True), "vault: transfer failed"
    log Withdraw(provider=msg.sender, amount=amount, shares=share_amount, nav=nav)
    return amount


# ================================================================ EXCHANGE
@external
def pay(receiver: address, amount: uint256) -> uint256:
    """
    @notice Pay traders' profit and funding, a fee share or a keeper, on the Exchange's
            request: as much of `amount` as the Vault holds.
    @param receiver Who is paid.
    @param amount Tokens (6 decimals).
    @return What was paid; the Exchange records any rest as the Vault's debt where it owes it.
    """
    assert msg.sender == self.exchange, "vault: caller is not the exchange"
    paid: uint256 = min(amount, staticcall TOKEN.balanceOf(self))
    if paid > 0:
        assert extcall TOKEN.transfer(receiver, paid, default_return_value=True), "vault: transfer failed"
    log Paid(receiver=receiver, amount=paid)
    return paid


# ================================================================ VIEWS
@view
@external
def nav() -> int256:
    """
    @notice Net asset value at the bid (what redemptions pay), 1e18 USD.
    @return USD 1e18; negative when insolvent.
    """
    return self._nav(False)


@view
@external
def nav_bounds() -> (int256, int256):
    """
    @notice NAV at the bid (redemptions) and at the ask (deposits), 1e18 USD.
    @return (bid, ask).
    """
    return self._nav(False), self._nav(True)


@view
@external
def share_price() -> uint256:
    """
    @notice Bid NAV per share, virtual share included: 1e18 == $1 per share.
    @return USD 1e18 per share; 0 when insolvent.
    """
    nav: int256 = self._nav(False)
    if nav + VIRTUAL_ASSETS <= 0:
        return 0
    return convert(nav + VIRTUAL_ASSETS, uint256) * c.WAD // (self.total_shares + VIRTUAL_SHARES)


@view
@external
def market_pnl(market: uint256) -> (int256, int256):
    """
    @notice The traders' net unrealised PnL in `market` (net of funding, at the bid, as NAV
            counts it) and the Vault's value before it (bid NAV plus that PnL): GMX's pnl
            and pool value, whose ratio starts ADL by PnL (Liquidator.deleverage_by_pnl).
    @param market The market id.
    @return (PnL, value before it), USD 1e18.
    """
    assert self.exchange != empty(address), "vault: no exchange"
    ex: IExchange = IExchange(self.exchange)
    assert market < staticcall ex.market_count(), "vault: unknown market"
    pnl: int256 = self._traders_value(ex, IOracle(staticcall ex.oracle()), ILiquidator(staticcall ex.liquidator()),
                                      market, False)
    return pnl, self._nav(False) + pnl


@view
@external
def token_balance() -> uint256:
    """
    @notice Tokens held (6 decimals).
    @return Tokens.
    """
    return staticcall TOKEN.balanceOf(self)


# ================================================================ INTERNAL
@view
@internal
def _nav(ask: bool) -> int256:
    """
    @notice NAV at the ask (`ask`, what deposits pay) or at the bid (what redemptions get),
            USD 1e18, virtual assets not included.
    """
    held: int256 = convert(staticcall TOKEN.balanceOf(self) * PRECISION, int256)
    if self.exchange == empty(address):
        return held
    ex: IExchange = IExchange(self.exchange)
    oracle: IOracle = IOracle(staticcall ex.oracle())
    liquidator: ILiquidator = ILiquidator(staticcall ex.liquidator())
    value: int256 = held + convert(staticcall ex.vault_receivable(), int256) - convert(staticcall ex.vault_debt(), int256)
    count: uint256 = staticcall ex.market_count()
    for m: uint256 in range(c.MAX_MARKETS):
        if m >= count:
            break
        value -= self._traders_value(ex, oracle, liquidator, m, ask)
    return value


@view
@internal
def _traders_value(ex: IExchange, oracle: IOracle, liquidator: ILiquidator, market: uint256, ask: bool) -> int256:
    """
    @notice What the traders' book in `market` is worth to them, net of funding, USD 1e18:
            at the ask, the least it could be; at the bid, the most, less what bankrupt
            positions cannot pay.
    """
    p: IExchange.MarketParams = staticcall ex.markets(market)
    s: IExchange.MarketState = staticcall ex.market_states(market)
    price: uint256 = 0
    low: uint256 = 0
    high: uint256 = 0
    valid: bool = False
    price, low, high, valid = staticcall oracle.price_band(p.asset)
    skew: int256 = convert(s.oi_long, int256) - convert(s.oi_short, int256)
    premium: int256 = fm.clamp(skew * c.IWAD // convert(p.skew_scale, int256), -c.IWAD, c.IWAD)
    cumulative: int256 = 0
    rate: int256 = 0
    ema: int256 = 0
    cumulative, rate, ema = pm.pending_funding(p.funding_model, p.imf, p.mmf, p.max_funding_rate,
                                               p.max_funding_velocity, p.premium_half_life,
                                               s.cumulative_funding, s.funding_rate, s.premium_ema,
                                               premium, convert(block.timestamp - s.last_update, int256), price)
    # the traders are worth most at the high end when net long: that end is the bid's
    at: uint256 = high if (skew > 0) != ask else low
    closing: int256 = fm.mul_down(skew, convert(at, int256))
    if self.nav_at_close_price:
        closing = pm.close_value(at, skew, p.skew_scale)
    value: int256 = closing - s.sum_cost - fm.mul_down(skew, cumulative) + s.sum_funding_entry
    if not ask:
        # a bankrupt side's negative equity is a loss its collateral cannot pay
        value -= min(self._bankrupt_equity(staticcall liquidator.bankrupt_books(market, True), low, cumulative), 0)
        value -= min(self._bankrupt_equity(staticcall liquidator.bankrupt_books(market, False), high, cumulative), 0)
    return value


@pure
@internal
def _bankrupt_equity(book: ILiquidator.BankruptBook, price: uint256, cumulative: int256) -> int256:
    """Collateral plus unrealised PnL at `price`, net of funding, of one side's bankrupt positions."""
    return book.collateral + fm.mul_down(book.size, convert(price, int256)) - book.cost \
        - fm.mul_down(book.size, cumulative) + book.funding_entry
