# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title ChainProbe
@license MIT
@notice A tiny contract for the chain-layer conformance tests (tests/unit/test_chain.py).
@dev It exercises what every backend must agree on: constructor arguments, storage, events with
     indexed and non-indexed fields, revert reasons, Panic data, block time and environment,
     several return values, default arguments, payable calls, a storage refund, a CREATE by a
     contract, a reverted inner call, and Cancun opcodes (the nonreentrancy pragma puts the
     lock in transient storage: TSTORE/TLOAD; dynamic strings are copied with MCOPY).
"""

# ---------------------------------------------------------------------------
# STORAGE
# ---------------------------------------------------------------------------

owner: public(address)
value: public(uint256)
label: public(String[32])
set_count: public(uint256)

# ---------------------------------------------------------------------------
# EVENTS
# ---------------------------------------------------------------------------

event ValueSet:
    setter: indexed(address)
    old_value: uint256
    new_value: uint256
    note: String[32]

event Tagged:
    tag: indexed(String[32])
    amount: indexed(int256)
    who: address


@deploy
def __init__(initial_value: uint256, label: String[32]):
    """
    @notice Store the owner, a first value and a label.
    @param initial_value The first stored value (unitless).
    @param label A short label, kept to test dynamic constructor arguments.
    """
    self.owner = msg.sender
    self.value = initial_value
    self.label = label


@external
def set(new_value: uint256):
    """
    @notice Store `new_value` and log ValueSet with the old and new value.
    @param new_value The value to store (unitless).
    """
    old_value: uint256 = self.value
    self.value = new_value
    self.set_count += 1
    log ValueSet(setter=msg.sender, old_value=old_value, new_value=new_value, note=self.label)


@external
def set_checked(new_value: uint256) -> uint256:
    """
    @notice Store a non-zero value and return the previous one; zero reverts with a reason.
    @param new_value The value to store; must not be zero.
    @return The value stored before.
    """
    assert new_value != 0, "probe: zero value"
    old_value: uint256 = self.value
    self.value = new_value
    return old_value


@external
def tag(tag: String[32], amount: int256):
    """
    @notice Log Tagged: a dynamic indexed field, a signed indexed field and an address.
    @param tag A short tag; indexed, so only its hash reaches the log topics.
    @param amount A signed amount (unitless).
    """
    log Tagged(tag=tag, amount=amount, who=msg.sender)


@external
def add(x: uint256, y: uint256 = 1) -> uint256:
    """
    @notice Return x + y; `y` defaults to 1, so the ABI has two overloads of `add`.
    """
    return x + y


@external
def fail_with_panic(code: uint256):
    """
    @notice Revert with Solidity-style Panic(uint256) data, to test Panic decoding.
    @param code The panic code to put in the revert data.
    """
    raw_revert(abi_encode(code, method_id=method_id("Panic(uint256)")))


@external
def spawn() -> address:
    """
    @notice Deploy a minimal proxy of this contract: a CREATE made by a contract, not an account.
    @return The new proxy's address; its storage starts empty (no constructor runs).
    """
    return create_minimal_proxy_to(self)


@external
def call_failing(target: address) -> bool:
    """
    @notice Call `target.set_checked(0)`, which reverts, without reverting this transaction.
    @param target A ChainProbe (or a proxy of one) other than this contract.
    @return Whether the inner call succeeded (it does not).
    """
    success: bool = raw_call(
        target,
        abi_encode(empty(uint256), method_id=method_id("set_checked(uint256)")),
        revert_on_failure=False,
    )
    self.set_count += 1
    return success


@external
@view
def now() -> uint256:
    """
    @notice The timestamp of the block this call executes in, in seconds.
    """
    return block.timestamp


@external
@view
def block_env() -> (uint256, uint256, uint256, address):
    """
    @notice The block environment a transaction sees: chain id, block gas limit, base fee (wei)
            and coinbase, which every backend must agree on.
    """
    return chain.id, block.gaslimit, block.basefee, block.coinbase


@external
@view
def stats() -> (uint256, address, int256, String[32]):
    """
    @notice Several values at once: the stored value, the owner, a negative number, the label.
    """
    return self.value, self.owner, -7, self.label


@external
@payable
def deposit() -> uint256:
    """
    @notice Accept ether; return this contract's balance afterwards, in wei.
    """
    return self.balance
