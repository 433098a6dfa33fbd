"""The one interface every EVM backend implements (DESIGN §3).

A `Chain` runs raw transactions and calls; `Contract` (sim/chain/contract.py) adds the
ABI on top, so backends never see an ABI except to decode logs of contracts they deployed.

Blocks and time: a chain has a current block (`block_number`, `timestamp`). Transactions
execute inside the current block, in order, and see its timestamp. `mine(seconds)` closes
the block and opens the next one `seconds` later. Every backend must give the same
`block.timestamp` to the same transaction, so that the same scenario and seed give the same
history on every EVM.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable
from operator import attrgetter
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak, to_checksum_address

# Every backend starts here: transactions before the first `mine()` run in block 1 at this
# timestamp (2023-11-14T22:13:20Z), so the same scenario sees the same clock on every EVM.
GENESIS_BLOCK_NUMBER = 1
GENESIS_TIMESTAMP = 1_700_000_000
CHAIN_ID = 31337
# The gas limit of every transaction and block; the same on every backend, so `gasleft()`
# and the 63/64 rule behave identically.
GAS_LIMIT = 30_000_000
# EIP-170: the largest deployable runtime code. Backends enforce it and never raise it.
MAX_CODE_SIZE = 24_576


def address_from_label(label: str) -> str:
    """The checksummed address of account `label`: the last 20 bytes of keccak(label).

    Derived from the label alone, so it is the same on every backend and every run."""
    return to_checksum_address(keccak(text=label)[-20:])


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: what the vyper compiler at the pinned version produced."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes  # init code
    runtime_bytecode: bytes


@dataclass(frozen=True)
class Event:
    """A decoded log. `args` holds the event's fields by name, ABI-decoded."""

    name: str
    address: str
    args: dict[str, Any]
    block_number: int
    log_index: int  # index of the log within the chain's whole history of this run
    # On a node (the rpc backend) only: the node's own block number and the transaction's hash,
    # so a run's events can be looked up with the node's tools (`cast tx HASH`).
    node_block: int | None = None
    tx_hash: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What a successful transaction left behind.

    A node's receipt does not carry the return data: the rpc backend leaves `output` empty and
    gives `replay`, which fetches it (replaying the transaction) only when `read_output()` is
    called, so a transaction whose return value nobody needs costs no second request."""

    gas_used: int
    output: bytes
    events: list[Event] = field(default_factory=list)
    block_number: int = 0
    return_value: Any = None  # filled by Contract.transact from the ABI
    replay: Callable[[], bytes] | None = field(default=None, repr=False, compare=False)

    def read_output(self) -> bytes:
        """The transaction's return data."""
        return self.output if self.replay is None else self.replay()


class ChainError(Exception):
    """The backend itself failed (node unreachable, malformed response): not a revert."""


class Reverted(Exception):
    """A call or transaction reverted. `reason` is the decoded revert string, if any."""

    def __init__(self, reason: str | None, data: bytes = b"", gas_used: int = 0, detail: str | None = None):
        self.reason = reason
        self.data = data
        self.gas_used = gas_used
        # What the EVM said when there is no revert string (out of gas, code size limit, ...).
        self.detail = detail
        if reason is not None:
            message = reason
        elif detail is not None:
            message = f"reverted without reason: {detail}"
        else:
            message = f"reverted without reason (data=0x{data.hex()})"
        super().__init__(message)


class Chain(ABC):
    """An EVM that perpsim can deploy to, call, transact on, and move in time."""

    name: str = "abstract"

    # -- accounts ------------------------------------------------------------
    @abstractmethod
    def new_account(self, label: str, eth: int = 10**21) -> str:
        """Return a checksummed address that can send transactions, funded with `eth` wei.

        The address is derived from `label` alone, so the same label gives the same address
        on every backend and every run."""

    # -- contracts -----------------------------------------------------------
    @abstractmethod
    def deploy_raw(self, sender: str, initcode: bytes, abi: list[dict[str, Any]] | None = None) -> tuple[str, int]:
        """Deploy `initcode` (constructor args already appended); return (address, gas_used).
        If `abi` is given, logs from this address are decoded into `Event`s."""

    @abstractmethod
    def call_raw(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        """Run a read-only call against the current state; raise `Reverted` on revert."""

    @abstractmethod
    def transact_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> Receipt:
        """Execute a transaction in the current block; raise `Reverted` (state unchanged) on revert."""

    @abstractmethod
    def register_abi(self, address: str, abi: list[dict[str, Any]]) -> None:
        """Decode future logs of `address` with `abi`."""

    # -- events --------------------------------------------------------------
    # Every backend keeps its decoded events in `self.event_log` (an EventLog).
    event_log: EventLog

    def events_since(self, cursor: int) -> tuple[list[Event], int]:
        """All decoded events with log_index >= cursor, and the next cursor."""
        return self.event_log.since(cursor)

    def forget_events(self, before: int) -> None:
        """Stop keeping the events with log_index < `before` (their readers have read them),
        so that a long run's memory does not grow with its history. The events a live
        snapshot would go back to are kept (a reader may start again from the first after a
        revert); `events_since` across a forgotten event raises ChainError."""
        restored = self._snapshots.events_restored()
        self.event_log.forget(restored, before)

    # -- time ----------------------------------------------------------------
    @property
    @abstractmethod
    def block_number(self) -> int: ...

    @property
    @abstractmethod
    def timestamp(self) -> int: ...

    @abstractmethod
    def mine(self, seconds: int = 0) -> None:
        """Close the current block; the next block's timestamp is the current one plus `seconds`."""

    @abstractmethod
    def set_timestamp(self, timestamp: int) -> None:
        """Set the current block's timestamp (must not go backwards)."""

    # -- state ---------------------------------------------------------------
    @abstractmethod
    def snapshot(self) -> Any:
        """Return an opaque handle to the current state, time included."""

    @abstractmethod
    def revert(self, snapshot: Any) -> None:
        """Return to a state taken by `snapshot` (time included)."""

    @abstractmethod
    def get_balance(self, address: str) -> int: ...

    @abstractmethod
    def get_nonce(self, address: str) -> int:
        """The account's transaction count (what the next CREATE from it is keyed by)."""

    @abstractmethod
    def get_code(self, address: str) -> bytes:
        """The runtime code at `address` (empty for accounts without code)."""

    def close(self) -> None:
        """Release the backend's resources (a node connection)."""


# -- helpers shared by the backends ---------------------------------------------


def check_mine_seconds(seconds: int) -> None:
    """Reject a negative block interval: time never runs backwards."""
    if seconds < 0:
        raise ValueError(f"mine(seconds={seconds}): seconds must be >= 0")


def check_new_timestamp(current: int, timestamp: int) -> None:
    """Reject a timestamp earlier than the current block's: time never runs backwards."""
    if timestamp < current:
        raise ValueError(f"set_timestamp({timestamp}) would move time backwards from {current}; expected >= {current}")


class EventLog:
    """A chain's decoded events, numbered from 0 in the order they were logged (`log_index`),
    of which it keeps those not forgotten (`forget`): the log of a long run need not grow
    with its history."""

    def __init__(self) -> None:
        self._events: list[Event] = []  # kept events, in log index order
        self._next = 0  # the log index the next event gets

    def __len__(self) -> int:
        """The log index the next event gets."""
        return self._next

    def append(self, event: Event) -> None:
        self._events.append(event)
        self._next += 1

    def _position(self, log_index: int) -> int:
        return bisect_left(self._events, log_index, key=_LOG_INDEX)

    def since(self, cursor: int) -> tuple[list[Event], int]:
        """The events from log index `cursor` on; ChainError if some of them are forgotten."""
        cursor = max(cursor, 0)
        i = self._position(cursor)
        if len(self._events) - i < self._next - cursor:  # kept events are in order: one is missing
            raise ChainError(f"some events from log index {cursor} on are no longer kept; read events as they "
                             "come (a live snapshot keeps those it would go back to)")
        return self._events[i:], self._next

    def forget(self, start: int, end: int) -> None:
        """Stop keeping the events with log index in [start, end)."""
        if start < end:
            del self._events[self._position(start) : self._position(end)]

    def truncate(self, length: int) -> None:
        """Drop the events from log index `length` on (a revert)."""
        del self._events[self._position(length) :]
        self._next = length


_LOG_INDEX = attrgetter("log_index")


class SnapshotRegistry:
    """Tracks which snapshot handles are still valid.

    Every backend gives the same rule: a snapshot can be reverted to any number of times;
    reverting to it invalidates the snapshots taken after it (their states no longer exist).
    Handles are held weakly: a snapshot nobody holds any more is forgotten, so a backend can
    stop keeping what reverting to it would need (see `any_live`)."""

    def __init__(self) -> None:
        self._live: list[weakref.ref[Any]] = []

    def add(self, handle: Any) -> Any:
        self._prune()
        self._live.append(weakref.ref(handle))
        return handle

    def events_restored(self) -> int:
        """How many events the live snapshots would bring back (the most any of them would):
        0 without one."""
        self._prune()
        return max((ref().events_length for ref in self._live if ref() is not None), default=0)

    def any_live(self) -> bool:
        """Whether any snapshot can still be reverted to."""
        self._prune()
        return bool(self._live)

    def reverting_to(self, handle: Any) -> None:
        """Validate `handle` and forget every snapshot taken after it."""
        self._prune()
        for i, live in enumerate(self._live):
            if live() is handle:
                del self._live[i + 1 :]
                return
        raise ChainError(
            "cannot revert: this snapshot is unknown to this chain or was invalidated by reverting to an earlier one"
        )

    def _prune(self) -> None:
        if any(ref() is None for ref in self._live):
            self._live = [ref for ref in self._live if ref() is not None]
