# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Vault
@license MIT
@notice The LP pool. It is the counterparty of the traders' net position: traders'
        realised PnL and funding settle against it, and it earns most of the taker fee.
        LPs hold shares of its NAV.
@dev NAV (1e18 USD) = token balance + what the Exchange owes it (`vault_claims`:
     negative collateral it lent, minus traders' net unrealised PnL at mark, net of funding). Withdrawals stop when they would leave the balance below
     `reserve_factor` times the open-interest notional (GMX v2).
"""

from ethereum.ercs import IERC20
from interfaces import IPayer
from interfaces import IExchange
import modules.bounds as bounds

implements: IPayer

# ---------------------------------------------------------------- CONSTANTS
WAD: constant(uint256) = 10**18
# Input bounds that keep every product far below 2**256.
MAX_RESERVE_FACTOR: constant(uint256) = 100 * WAD  # reserves of 100x open-interest notional

# ---------------------------------------------------------------- IMMUTABLES
TOKEN: public(immutable(IERC20))
PRECISION: public(immutable(uint256))  # 10**(18 - token decimals)

# ---------------------------------------------------------------- STORAGE
owner: public(address)
exchange: public(address)
reserve_factor: public(uint256)  # 1e18 == 100% of open-interest notional
total_shares: public(uint256)    # 1e18 scale
shares: public(HashMap[address, uint256])

# ---------------------------------------------------------------- EVENTS
event ExchangeSet:
    exchange: indexed(address)

event ReserveFactorSet:
    reserve_factor: uint256

event Deposit:
    provider: indexed(address)
    amount: uint256
    shares: uint256
    nav: int256

event Withdraw:
    provider: indexed(address)
    amount: uint256
    shares: uint256
    nav: int256

event Paid:
    receiver: indexed(address)
    amount: uint256


@deploy
def __init__(token: IERC20, token_decimals: uint256, reserve_factor: uint256):
    """
    @param token The collateral token.
    @param token_decimals Its decimals (6 for USDC).
    @param reserve_factor 1e18 == reserves must cover 100% of open-interest notional.
    """
    TOKEN = token
    PRECISION = 10 ** (18 - token_decimals)
    self.owner = msg.sender
    assert reserve_factor <= MAX_RESERVE_FACTOR, "vault: reserve factor too high"
    self.reserve_factor = reserve_factor


@external
def set_exchange(exchange: address):
    """
    @notice Name the Exchange this Vault backs. Once only.
    """
    assert msg.sender == self.owner, "vault: caller is not the owner"
    assert self.exchange == empty(address), "vault: exchange already set"
    assert exchange != empty(address), "vault: zero exchange"
    self.exchange = exchange
    log ExchangeSet(exchange=exchange)


@external
def set_reserve_factor(reserve_factor: uint256):
    """
    @param reserve_factor 1e18 == 100% of open-interest notional.
    """
    assert msg.sender == self.owner, "vault: caller is not the owner"
    assert reserve_factor <= MAX_RESERVE_FACTOR, "vault: reserve factor too high"
    self.reserve_factor = reserve_factor
    log ReserveFactorSet(reserve_factor=reserve_factor)


@external
def deposit(amount: uint256) -> uint256:
    """
    @notice Deposit `amount` tokens (6 decimals) for shares at the current NAV.
    @return Shares minted (1e18 scale), rounded down.
    """
    assert amount > 0, "vault: zero amount"
    assert amount <= bounds.MAX_AMOUNT, "vault: amount too large"
    assert self.exchange != empty(address), "vault: no exchange"
    nav: int256 = self._nav()
    minted: uint256 = amount * PRECISION
    if self.total_shares > 0:
        assert nav > 0, "vault: insolvent"
        minted = amount * PRECISION * self.total_shares // convert(nav, uint256)
    assert minted > 0, "vault: zero shares"
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "vault: transfer failed"
    self.total_shares += minted
    self.shares[msg.sender] += minted
    log Deposit(provider=msg.sender, amount=amount, shares=minted, nav=nav)
    return minted


@external
def withdraw(share_amount: uint256) -> uint256:
    """
    @notice Burn `share_amount` shares for tokens at the current NAV.
    @return Tokens paid (6 decimals), rounded down.
    """
    assert share_amount > 0, "vault: zero shares"
    assert self.shares[msg.sender] >= share_amount, "vault: insufficient shares"
    nav: int256 = self._nav()
    assert nav > 0, "vault: insolvent"
    amount: uint256 = convert(nav, uint256) * share_amount // self.total_shares // PRECISION
    balance: uint256 = staticcall TOKEN.balanceOf(self)
    assert amount <= balance, "vault: insufficient liquidity"
    reserve: uint256 = self.reserve_factor * (staticcall IExchange(self.exchange).open_interest_notional()) // WAD
    assert (balance - amount) * PRECISION >= reserve, "vault: below reserve"
    self.total_shares -= share_amount
    self.shares[msg.sender] -= share_amount
    if amount > 0:
        assert extcall TOKEN.transfer(msg.sender, amount, default_return_value=True), "vault: transfer failed"
    log Withdraw(provider=msg.sender, amount=amount, shares=share_amount, nav=nav)
    return amount


@external
def pay(receiver: address, amount: uint256) -> uint256:
    """
    @notice Pay traders' profit and funding, or a fee share, on the Exchange's request.
    @return What was paid: all of it, or the call reverts.
    """
    assert msg.sender == self.exchange, "vault: caller is not the exchange"
    assert amount <= staticcall TOKEN.balanceOf(self), "vault: insufficient liquidity"
    assert extcall TOKEN.transfer(receiver, amount, default_return_value=True), "vault: transfer failed"
    log Paid(receiver=receiver, amount=amount)
    return amount


@view
@external
def nav() -> int256:
    """
    @notice Net asset value, 1e18 USD: balance plus what the Exchange owes it at mark.
    """
    return self._nav()


@view
@external
def share_price() -> uint256:
    """
    @notice NAV per share, 1e18 == $1 per share; 1e18 with no shares.
    """
    if self.total_shares == 0:
        return WAD
    nav: int256 = self._nav()
    if nav <= 0:
        return 0
    return convert(nav, uint256) * WAD // self.total_shares


@view
@external
def token_balance() -> uint256:
    """
    @notice Tokens held (6 decimals).
    """
    return staticcall TOKEN.balanceOf(self)


@view
@internal
def _nav() -> int256:
    held: int256 = convert(staticcall TOKEN.balanceOf(self) * PRECISION, int256)
    if self.exchange == empty(address):
        return held
    return held + staticcall IExchange(self.exchange).vault_claims()
