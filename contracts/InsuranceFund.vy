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
TOKEN: public(immutable(IERC20))  # the collateral token (6 decimals for USDC)

# ---------------------------------------------------------------- STORAGE
exchange: public(address)    # the Exchange that may draw on the fund, set once
total_paid: public(uint256)  # tokens (6 decimals) paid out since deployment

# ---------------------------------------------------------------- EVENTS
event ExchangeSet:
    exchange: indexed(address)

event Funded:
    sender: indexed(address)
    amount: uint256     # tokens (6 decimals)

event Paid:
    receiver: indexed(address)
    requested: uint256  # tokens (6 decimals)
    paid: uint256       # tokens (6 decimals)


@deploy
def __init__(token: IERC20):
    """
    @notice The deployer is the owner.
    @param token The collateral token (6 decimals).
    """
    TOKEN = token
    ownable.__init__()


# ================================================================ ADMIN
@external
def set_exchange(exchange: address):
    """
    @notice Name the Exchange that may draw on the fund. Once only. Only the owner.
    @param exchange The Exchange; not the zero address.
    """
    ownable._check_owner()
    assert self.exchange == empty(address), "insurance: exchange already set"
    assert exchange != empty(address), "insurance: zero exchange"
    self.exchange = exchange
    log ExchangeSet(exchange=exchange)


# ================================================================ FUNDING AND PAYMENTS
@external
def fund(amount: uint256):
    """
    @notice Add `amount` tokens (6 decimals) to the fund from the caller. Anyone.
    @param amount Tokens (6 decimals), non-zero; the caller must have approved them.
    """
    assert amount > 0, "insurance: zero amount"
    assert extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True), "insurance: transfer failed"
    log Funded(sender=msg.sender, amount=amount)


@external
def pay(receiver: address, amount: uint256) -> uint256:
    """
    @notice Pay up to `amount` tokens (6 decimals) to `receiver`, as much as the fund holds.
            Only the Exchange.
    @param receiver Who is paid.
    @param amount Tokens (6 decimals) asked for.
    @return What was paid, tokens (6 decimals).
    """
    assert msg.sender == self.exchange, "insurance: caller is not the exchange"
    paid: uint256 = min(amount, staticcall TOKEN.balanceOf(self))
    if paid > 0:
        assert extcall TOKEN.transfer(receiver, paid, default_return_value=True), "insurance: transfer failed"
        self.total_paid += paid
    log Paid(receiver=receiver, requested=amount, paid=paid)
    return paid


# ================================================================ VIEWS
@view
@external
def token_balance() -> uint256:
    """
    @notice The fund's balance, tokens (6 decimals).
    @return Tokens (6 decimals).
    """
    return staticcall TOKEN.balanceOf(self)
