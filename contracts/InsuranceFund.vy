# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title InsuranceFund
@license MIT
@notice Holds collateral from fee shares and liquidation penalties and pays bad debt
        on the Exchange's request.
"""

from ethereum.ercs import IERC20
from interfaces import IPayer
import modules.ownable as ownable

implements: IPayer

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)

# ---------------------------------------------------------------- IMMUTABLES
TOKEN: public(immutable(IERC20))

# ---------------------------------------------------------------- STORAGE
exchange: public(address)
total_paid: public(uint256)

# ---------------------------------------------------------------- EVENTS
event ExchangeSet:
    exchange: indexed(address)

event Funded:
    sender: indexed(address)
    amount: uint256

event Paid:
    receiver: indexed(address)
    requested: uint256
    paid: uint256


@deploy
def __init__(token: IERC20):
    """
    @param token The collateral token (6 decimals).
    """
    TOKEN = token
    ownable.__init__()


@external
def set_exchange(exchange: address):
    """
    @notice Name the Exchange that may draw on the fund. Once only.
    """
    ownable._check_owner()
    assert self.exchange == empty(address), "insurance: exchange already set"
    assert exchange != empty(address), "insurance: zero exchange"
    self.exchange = exchange
    log ExchangeSet(exchange=exchange)


@external
def fund(amount: uint256):
    """
    @notice Add `amount` tokens (6 decimals) to the fund from the caller.
    """
    assert amount > 0, "insurance: zero amount"
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "insurance: transfer failed"
    log Funded(sender=msg.sender, amount=amount)


@external
def pay(receiver: address, amount: uint256) -> uint256:
    """
    @notice Pay up to `amount` tokens (6 decimals) to `receiver`, as much as the fund holds.
    @return What was paid.
    """
    assert msg.sender == self.exchange, "insurance: caller is not the exchange"
    paid: uint256 = min(amount, staticcall TOKEN.balanceOf(self))
    if paid > 0:
        assert extcall TOKEN.transfer(receiver, paid, default_return_value=True), "insurance: transfer failed"
        self.total_paid += paid
    log Paid(receiver=receiver, requested=amount, paid=paid)
    return paid


@view
@external
def token_balance() -> uint256:
    """
    @notice The fund's balance, tokens (6 decimals).
    """
    return staticcall TOKEN.balanceOf(self)
