"""The `pyevm` backend: in-process execution on py-evm, the reference EVM.

This drives py-evm's Cancun state directly rather than through titanoboa. boa's `raw_call`
runs a bare message (no intrinsic gas, no nonce, no `lock_changes()` between calls, so
slots stay warm and EIP-2200 "original values" go stale) and builds a Prague VM; both would
make gas differ from a real chain and from the other backends. Here every transaction is a
real (unsigned, spoofed-sender) transaction applied with `state.apply_transaction`, exactly
as py-evm's own `VM.apply_transaction` does, minus signature checks:

- `lock_changes()` before each transaction: accounts and slots start cold, original values
  are the values at the start of the transaction, as on mainnet.
- Gas used is py-evm's receipt rule (`finalize_gas_used`: intrinsic + execution - refund).
- A transaction that fails is undone entirely (nonce included), as on the other backends.

Blocks and time are py-evm's execution context, patched in place (block number, timestamp,
gas limit 30M, base fee 0, chain id 31337). Snapshots persist the state trie and remember
its root: `revert()` rebuilds the state from that root, which py-evm's content-addressed
database still holds. EIP-170's 24,576-byte limit is py-evm's own; a process that raised it
(titanoboa can patch the module constant) is refused rather than silently inherited.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import eth.vm.forks.spurious_dragon.computation as spurious_dragon_computation
from eth._utils.address import generate_contract_address
from eth.chains.base import Chain as PyEvmBlockchain
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.db.atomic import AtomicDB
from eth.vm.forks.cancun import CancunVM
from eth.vm.spoof import SpoofTransaction
from eth_typing import Address
from eth_utils import ValidationError

from sim.chain.base import (
    CHAIN_ID,
    GAS_LIMIT,
    GENESIS_BLOCK_NUMBER,
    GENESIS_TIMESTAMP,
    MAX_CODE_SIZE,
    Chain,
    ChainError,
    EventLog,
    Event,
    Receipt,
    Reverted,
    SnapshotRegistry,
    address_from_label,
    check_mine_seconds,
    check_new_timestamp,
)
from sim.chain.contract import EventDecoder, checksum_address, decode_revert_reason

ZERO_ADDRESS = Address(b"\x00" * 20)
_PerpsimBlockchain = PyEvmBlockchain.configure(
    __name__="PerpsimPyEvmChain", vm_configuration=((0, CancunVM),), chain_id=CHAIN_ID
)


@lru_cache(maxsize=1 << 16)
def _canonical(address: str) -> Address:
    """20-byte form of a hex address (cached: the same addresses recur constantly)."""
    raw = bytes.fromhex(address[2:] if address.startswith(("0x", "0X")) else address)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return Address(raw)


@dataclass(frozen=True)
class _Snapshot:
    state_root: bytes
    block_number: int
    timestamp: int
    events_length: int


class PyEvmChain(Chain):
    """An in-process Cancun EVM on py-evm with real per-transaction semantics (see module doc)."""

    name = "pyevm"

    def __init__(self) -> None:
        genesis: dict[str, Any] = {
            "difficulty": 0,
            "gas_limit": GAS_LIMIT,
            "timestamp": GENESIS_TIMESTAMP,
            "base_fee_per_gas": 0,
            "coinbase": ZERO_ADDRESS,
        }
        self._db = AtomicDB()
        blockchain = _PerpsimBlockchain.from_genesis(self._db, genesis)
        self._vm = cast(CancunVM, blockchain.get_vm())
        self._state = self._vm.state
        # py-evm has no setters for the block environment, so its private fields are patched.
        # The pending block it built is wall-clock timed with a drifting gas limit: pin both.
        context: Any = self._state.execution_context
        context._gas_limit = GAS_LIMIT
        context._base_fee_per_gas = 0
        context._coinbase = ZERO_ADDRESS
        self._context = context
        self._block_number = GENESIS_BLOCK_NUMBER
        self._timestamp = GENESIS_TIMESTAMP
        self._apply_block_env()
        self.event_log = EventLog()
        self._decoder = EventDecoder()
        self._snapshots = SnapshotRegistry()

    # -- accounts ------------------------------------------------------------
    def new_account(self, label: str, eth: int = 10**21) -> str:
        address = address_from_label(label)
        self._state.set_balance(_canonical(address), eth)
        return address

    def get_balance(self, address: str) -> int:
        return self._state.get_balance(_canonical(address))

    def get_nonce(self, address: str) -> int:
        return self._state.get_nonce(_canonical(address))

    def get_code(self, address: str) -> bytes:
        return bytes(self._state.get_code(_canonical(address)))

    # -- contracts -----------------------------------------------------------
    def deploy_raw(self, sender: str, initcode: bytes, abi: list[dict[str, Any]] | None = None) -> tuple[str, int]:
        limit = spurious_dragon_computation.EIP170_CODE_SIZE_LIMIT
        if limit != MAX_CODE_SIZE:
            raise ChainError(
                f"py-evm's EIP-170 code size limit was changed in this process to {limit} "
                f"(titanoboa can do this); expected {MAX_CODE_SIZE}"
            )
        sender_bytes = _canonical(sender)
        address = checksum_address(generate_contract_address(sender_bytes, self._state.get_nonce(sender_bytes)))
        if abi is not None:
            self._decoder.register(address, abi)
        computation, gas_used = self._execute(sender_bytes, CREATE_CONTRACT_ADDRESS, initcode, 0, commit=True)
        self._record_logs(computation)
        return address, gas_used

    def call_raw(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        sender_bytes = _canonical(sender) if sender else ZERO_ADDRESS
        computation, _ = self._execute(sender_bytes, _canonical(to), data, 0, commit=False)
        return bytes(computation.output)

    def transact_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> Receipt:
        computation, gas_used = self._execute(_canonical(sender), _canonical(to), data, value, commit=True)
        events = self._record_logs(computation)
        return Receipt(
            gas_used=gas_used, output=bytes(computation.output), events=events, block_number=self._block_number
        )

    def register_abi(self, address: str, abi: list[dict[str, Any]]) -> None:
        self._decoder.register(address, abi)

    def _execute(self, sender: Address, to: Address, data: bytes, value: int, commit: bool) -> tuple[Any, int]:
        """Apply one transaction; keep it only if `commit` and it succeeded."""
        state = self._state
        state.lock_changes()  # a new transaction: everything cold, original values reset
        checkpoint = state.snapshot()
        tx = self._vm.create_unsigned_transaction(
            nonce=state.get_nonce(sender), gas_price=0, gas=GAS_LIMIT, to=to, value=value, data=data
        )
        try:
            computation = state.apply_transaction(cast(Any, SpoofTransaction(tx, from_=sender)))
        except ValidationError as exc:
            state.revert(checkpoint)
            raise Reverted(None, b"", 0, detail=f"invalid transaction: {exc}") from None
        gas_used = self._vm.finalize_gas_used(cast(Any, tx), computation)
        if computation.is_error:
            state.revert(checkpoint)
            output = bytes(computation.output)
            reason = decode_revert_reason(output)
            detail = None if output else f"EVM halted: {computation.error!r}"
            raise Reverted(reason, output, gas_used, detail=detail)
        if commit:
            state.commit(checkpoint)
        else:
            state.revert(checkpoint)
        return computation, gas_used

    # -- events --------------------------------------------------------------
    def _record_logs(self, computation: Any) -> list[Event]:
        events: list[Event] = []
        for address, topic_ints, data in computation.get_log_entries():
            topics = [t.to_bytes(32, "big") for t in topic_ints]
            decoded = self._decoder.decode("0x" + address.hex(), topics, data)
            if decoded is None:
                continue  # a contract whose ABI this chain was not given
            event = Event(decoded[0], checksum_address(address), decoded[1], self._block_number, len(self.event_log))
            self.event_log.append(event)
            events.append(event)
        return events

    # -- time ----------------------------------------------------------------
    @property
    def block_number(self) -> int:
        return self._block_number

    @property
    def timestamp(self) -> int:
        return self._timestamp

    def mine(self, seconds: int = 0) -> None:
        check_mine_seconds(seconds)
        self._block_number += 1
        self._timestamp += seconds
        self._apply_block_env()

    def set_timestamp(self, timestamp: int) -> None:
        check_new_timestamp(self._timestamp, timestamp)
        self._timestamp = timestamp
        self._apply_block_env()

    def _apply_block_env(self) -> None:
        self._context._block_number = self._block_number
        self._context._timestamp = self._timestamp

    # -- state ---------------------------------------------------------------
    def snapshot(self) -> Any:
        self._state.lock_changes()
        self._state.persist()  # writes the trie to the database, so its root can be reopened
        handle = _Snapshot(self._state.state_root, self._block_number, self._timestamp, len(self.event_log))
        return self._snapshots.add(handle)

    def revert(self, snapshot: Any) -> None:
        self._snapshots.reverting_to(snapshot)
        self._state = self._vm.get_state_class()(self._db, self._context, snapshot.state_root)
        self._block_number, self._timestamp = snapshot.block_number, snapshot.timestamp
        self._apply_block_env()
        self.event_log.truncate(snapshot.events_length)
