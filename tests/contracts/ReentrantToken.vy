# pragma version ~=0.4.3
"""
@title ReentrantToken
@license MIT
@notice A malicious 6-decimal ERC-20 for the re-entry tests (tests/unit/test_bad_inputs.py).
        Armed with a target and calldata, it calls the target from inside every transfer
        and transferFrom, after moving the balance (as an ERC-777 receive hook would): the
        protocol is re-entered in the middle of its own token transfer.
@dev Its constructor and faucet match MockUSDC's, so the tests deploy the protocol on it.
     Modes: 0 off; 1 bubble: a failed re-entry reverts the whole transfer with the
     re-entered call's revert data; 2 record: the outcome is logged (`Reentry`) and the
     transfer goes on. The hook runs once per armed transfer, never recursively.
     Simulation only: anyone can mint and arm it.
"""

from ethereum.ercs import IERC20

implements: IERC20

# ---------------------------------------------------------------- CONSTANTS
MODE_OFF: constant(uint256) = 0
MODE_BUBBLE: constant(uint256) = 1
MODE_RECORD: constant(uint256) = 2

# ---------------------------------------------------------------- STORAGE
name: public(constant(String[16])) = "Reentrant USD"
symbol: public(constant(String[8])) = "rUSD"
decimals: public(constant(uint8)) = 6

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)

target: public(address)
payload: public(Bytes[1024])
mode: public(uint256)
attempts: public(uint256)
entered: bool

# ---------------------------------------------------------------- EVENTS
event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event Reentry:
    target: indexed(address)
    success: bool
    data: Bytes[256]


@deploy
def __init__():
    pass


@external
def arm(target: address, payload: Bytes[1024], mode: uint256):
    """
    @notice Call `target` with `payload` from inside every transfer from now on.
    @param mode 1 bubble the re-entered call's failure, 2 record it and go on.
    """
    assert mode == MODE_BUBBLE or mode == MODE_RECORD, "reentrant token: unknown mode"
    self.target = target
    self.payload = payload
    self.mode = mode


@external
def disarm():
    """
    @notice Stop re-entering.
    """
    self.mode = MODE_OFF


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    self._reenter()
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "reentrant token: insufficient allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    self._reenter()
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Mint `amount` tokens (6 decimals) to `receiver`, as MockUSDC's faucet does.
    """
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "reentrant token: transfer to zero address"
    assert self.balanceOf[sender] >= amount, "reentrant token: insufficient balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@internal
def _reenter():
    if self.mode == MODE_OFF or self.entered:
        return
    self.entered = True
    self.attempts += 1
    success: bool = False
    response: Bytes[256] = b""
    success, response = raw_call(self.target, self.payload, max_outsize=256, revert_on_failure=False)
    self.entered = False
    if not success and self.mode == MODE_BUBBLE:
        raw_revert(response)
    log Reentry(target=self.target, success=success, data=response)
