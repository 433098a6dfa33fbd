# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title MockAsset
@license MIT
@notice An 18-decimal ERC-20 with an open faucet: the base token of a SpotPool (the
        asset a market trades). Simulation only: anyone can mint.
"""

from ethereum.ercs import IERC20

implements: IERC20

# ---------------------------------------------------------------- CONSTANTS
name: public(constant(String[16])) = "Mock Asset"
symbol: public(constant(String[8])) = "mASSET"
decimals: public(constant(uint8)) = 18

# ---------------------------------------------------------------- STORAGE
balanceOf: public(HashMap[address, uint256])  # holder -> tokens (18 decimals)
allowance: public(HashMap[address, HashMap[address, uint256]])  # owner -> spender -> tokens; max: unlimited
totalSupply: public(uint256)  # tokens (18 decimals)

# ---------------------------------------------------------------- EVENTS
event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256  # tokens (18 decimals)

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256  # tokens (18 decimals)


@deploy
def __init__():
    """
    @notice No supply at deployment: every token comes from `faucet` or `mint`.
    """
    pass


# ================================================================ ERC-20
@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Move `amount` tokens (18 decimals) from the caller to `receiver`.
    @param receiver Who receives them; not the zero address.
    @param amount Tokens (18 decimals), at most the caller's balance.
    @return True (a failure reverts).
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Move `amount` tokens from `sender` to `receiver` against the caller's allowance.
    @dev An allowance of max_value(uint256) is unlimited and is not spent.
    @param sender Whose tokens move.
    @param receiver Who receives them; not the zero address.
    @param amount Tokens (18 decimals), at most the allowance and the sender's balance.
    @return True (a failure reverts).
    """
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "asset: insufficient allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Let `spender` move up to `amount` of the caller's tokens.
    @param spender Who may move them.
    @param amount Tokens (18 decimals); max_value(uint256) for no limit.
    @return True.
    """
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


# ================================================================ FAUCET
@external
def faucet(amount: uint256):
    """
    @notice Mint `amount` tokens (18 decimals) to the caller.
    @param amount Tokens (18 decimals).
    """
    self._mint(msg.sender, amount)


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Mint `amount` tokens (18 decimals) to `receiver`.
    @param receiver Who receives them; not the zero address.
    @param amount Tokens (18 decimals).
    """
    self._mint(receiver, amount)


# ================================================================ INTERNAL
@internal
def _mint(receiver: address, amount: uint256):
    assert receiver != empty(address), "asset: mint to zero address"
    assert amount <= max_value(uint256) - self.totalSupply, "asset: supply overflow"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "asset: transfer to zero address"
    balance: uint256 = self.balanceOf[sender]
    assert balance >= amount, "asset: insufficient balance"
    self.balanceOf[sender] = balance - amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)
