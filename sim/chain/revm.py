"""The `revm` backend: in-process execution on pyrevm 0.3.7 (revm 8), the default chain.

pyrevm 0.3.7 keeps all state in revm's *journal* and never finalises it between calls: an
account or storage slot touched once stays warm forever, EIP-2200's "original value" of a
slot stays whatever it was when first loaded, and `message_call` does not bump the sender's
nonce. Run naively, gas diverges from every real chain after the first transaction (a
`set()` costs 24,901 gas instead of 38,501) and contract addresses diverge once an account
has sent a call. So this backend finalises each transaction itself:

1. Between transactions the journal is empty and all state lives in pyrevm's database.
2. A transaction runs inside a journal checkpoint. Afterwards the changed accounts are read
   from `journal_state` and the changed storage slots from `journal_str` (revm's Debug dump
   of the journal: the only place pyrevm exposes them), the checkpoint is reverted (so
   nothing stays warm), and the changes are written to the database. The sender's nonce is
   bumped as a real transaction would.
3. While a snapshot is held, every database write is recorded in an undo log;
   `snapshot()`/`revert()` are positions in that log, plus the clock and the event history.
   Snapshots are held weakly, so a long run that keeps none keeps no log.

Reads (`call_raw`) run inside a checkpoint that is always reverted. A transaction that
reverts leaves no trace (not even a nonce bump), as on the other backends.

The EVM runs the Cancun rules (`spec_id="Cancun"`: vyper 0.4.3 emits MCOPY, TLOAD, TSTORE)
with EIP-170's 24,576-byte code size limit, chain id 31337, a 30M gas limit per transaction
and block, and gas price and base fee 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak
from pyrevm import EVM, AccountInfo, BlockEnv, CfgEnv, Env, ExecutionResult

from sim.chain.base import (
    CHAIN_ID,
    GAS_LIMIT,
    GENESIS_BLOCK_NUMBER,
    GENESIS_TIMESTAMP,
    MAX_CODE_SIZE,
    Chain,
    ChainError,
    Event,
    Receipt,
    Reverted,
    SnapshotRegistry,
    address_from_label,
    check_mine_seconds,
    check_new_timestamp,
)
from sim.chain.contract import EventDecoder, checksum_address, decode_revert_reason

# revm parses the spec name case-sensitively and silently falls back to LATEST on anything
# it does not know: "CANCUN" would run LATEST; "Cancun" runs Cancun.
SPEC_ID = "Cancun"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
_EMPTY_CODE_HASH = keccak(b"")
_ANALYSIS_PADDING = 33  # revm pads analysed bytecode with 33 zero bytes

# revm 8's Debug format of JournaledState (pinned through pyrevm==0.3.7)
_ACCOUNT_MARK = ": Account { info: "
_STORAGE_MARK = "}, storage: {"
_STATUS_MARK = "}, status: AccountStatus("
_STATE_END_MARK = "}, transient_storage: "
_SLOT = re.compile(r"(\d+): StorageSlot \{ previous_or_original_value: (\d+), present_value: (\d+) \}")
# revm 8's Debug format of execution failures
_REVERT = re.compile(r"Revert \{ gas_used: (\d+), output: 0x([0-9a-fA-F]*) \}")
_HALT = re.compile(r"Halt \{ reason: (.*), gas_used: (\d+) \}")


@dataclass(frozen=True)
class _Account:
    """An account as stored in pyrevm's database (mirrored here for diffs and undo)."""

    balance: int
    nonce: int
    code_hash: bytes
    code: bytes | None

    def info(self) -> AccountInfo:
        # pyrevm's stub omits `balance`, which the constructor takes
        if self.code is None:
            return AccountInfo(balance=self.balance, nonce=self.nonce)  # type: ignore[call-arg]
        return AccountInfo(balance=self.balance, nonce=self.nonce, code=self.code)  # type: ignore[call-arg]


_EMPTY_ACCOUNT = _Account(0, 0, _EMPTY_CODE_HASH, None)


@dataclass(frozen=True)
class _Snapshot:
    undo_length: int
    block_number: int
    timestamp: int
    events_length: int


@dataclass(frozen=True)
class _JournalAccount:
    """What one transaction did to one account, parsed from the journal dump."""

    address: str  # lowercase hex
    slots: list[tuple[int, int, int]]  # (slot, value before, value after), changed ones only
    destroyed: bool


def parse_journal(text: str) -> list[_JournalAccount]:
    """The storage changes and self-destructs in revm's Debug dump of its journaled state."""
    end = text.find(_STATE_END_MARK)
    if end < 0:
        raise ChainError("revm: unrecognised journal format (is pyrevm 0.3.7 installed?)")
    accounts: list[_JournalAccount] = []
    pos = text.find(_ACCOUNT_MARK, 0, end)
    while pos >= 0:
        address = text[pos - 42 : pos].lower()
        storage_start = text.find(_STORAGE_MARK, pos, end) + len(_STORAGE_MARK)
        status_start = text.find(_STATUS_MARK, storage_start, end)
        status_end = text.find(")", status_start)
        if storage_start < len(_STORAGE_MARK) or status_start < 0 or status_end < 0:
            raise ChainError(f"revm: unrecognised journal format near account {address}")
        slots = [
            (int(k), int(old), int(new))
            for k, old, new in _SLOT.findall(text, storage_start, status_start)
            if old != new
        ]
        destroyed = "SelfDestructed" in text[status_start:status_end]
        accounts.append(_JournalAccount(address, slots, destroyed))
        pos = text.find(_ACCOUNT_MARK, status_end, end)
    return accounts


def _runtime_code(code: bytes | None, code_hash: bytes) -> bytes | None:
    """The unpadded runtime code whose hash is `code_hash` (revm may hand back analysed code)."""
    if code_hash == _EMPTY_CODE_HASH:
        return None
    code = bytes(code) if code else b""
    if keccak(code) == code_hash:
        return code
    if len(code) >= _ANALYSIS_PADDING and keccak(code[:-_ANALYSIS_PADDING]) == code_hash:
        return code[:-_ANALYSIS_PADDING]
    raise ChainError(f"revm: cannot recover the runtime code with hash 0x{code_hash.hex()}")


def _failure(exc: RuntimeError) -> Exception:
    """Turn pyrevm's RuntimeError (revm's Debug output) into Reverted, or ChainError."""
    message = str(exc)
    match = _REVERT.search(message)
    if match:
        data = bytes.fromhex(match[2])
        return Reverted(decode_revert_reason(data), data, int(match[1]))
    match = _HALT.search(message)
    if match:
        return Reverted(None, b"", int(match[2]), detail=f"EVM halted: {match[1]}")
    if message.startswith("Transaction("):
        return Reverted(None, b"", 0, detail=f"invalid transaction: {message}")
    return ChainError(f"revm failed: {message}")


class RevmChain(Chain):
    """An in-process Cancun EVM on pyrevm with real per-transaction semantics (see module doc)."""

    name = "revm"

    def __init__(self) -> None:
        env = Env(cfg=CfgEnv(chain_id=CHAIN_ID, limit_contract_code_size=MAX_CODE_SIZE))
        self._evm = EVM(env=env, gas_limit=GAS_LIMIT, spec_id=SPEC_ID)
        self._block_number = GENESIS_BLOCK_NUMBER
        self._timestamp = GENESIS_TIMESTAMP
        self._apply_block_env()
        self._accounts: dict[str, _Account] = {}  # mirror of the database, by lowercase address
        self._undo: list[tuple[Any, ...]] = []  # ("account", address, previous) | ("slot", address, slot, previous)
        self._events: list[Event] = []
        self._decoder = EventDecoder()
        self._snapshots = SnapshotRegistry()

    # -- accounts ------------------------------------------------------------
    def new_account(self, label: str, eth: int = 10**21) -> str:
        address = address_from_label(label)
        current = self._accounts.get(address.lower(), _EMPTY_ACCOUNT)
        self._put_account(address.lower(), _Account(eth, current.nonce, current.code_hash, current.code))
        return address

    def get_balance(self, address: str) -> int:
        return self._accounts.get(address.lower(), _EMPTY_ACCOUNT).balance

    def get_nonce(self, address: str) -> int:
        return self._accounts.get(address.lower(), _EMPTY_ACCOUNT).nonce

    def get_code(self, address: str) -> bytes:
        return self._accounts.get(address.lower(), _EMPTY_ACCOUNT).code or b""

    # -- contracts -----------------------------------------------------------
    def deploy_raw(self, sender: str, initcode: bytes, abi: list[dict[str, Any]] | None = None) -> tuple[str, int]:
        evm = self._evm
        checkpoint = evm.snapshot()
        try:
            address = evm.deploy(sender, initcode, gas=GAS_LIMIT)
        except RuntimeError as exc:
            self._discard(checkpoint)
            raise _failure(exc) from None
        result = self._result()
        self._finalize(checkpoint, caller_nonce_of=None)  # CREATE already bumped the nonce
        address = checksum_address(address)
        if abi is not None:
            self._decoder.register(address, abi)
        self._record_logs(result.logs)
        return address, result.gas_used

    def call_raw(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        evm = self._evm
        checkpoint = evm.snapshot()
        try:
            return bytes(evm.message_call(sender or ZERO_ADDRESS, to, data, gas=GAS_LIMIT))
        except RuntimeError as exc:
            raise _failure(exc) from None
        finally:
            self._discard(checkpoint)

    def transact_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> Receipt:
        evm = self._evm
        checkpoint = evm.snapshot()
        try:
            output = evm.message_call(sender, to, data, value=value, gas=GAS_LIMIT)
        except RuntimeError as exc:
            self._discard(checkpoint)
            raise _failure(exc) from None
        result = self._result()
        self._finalize(checkpoint, caller_nonce_of=sender.lower())
        events = self._record_logs(result.logs)
        return Receipt(gas_used=result.gas_used, output=bytes(output), events=events, block_number=self._block_number)

    def register_abi(self, address: str, abi: list[dict[str, Any]]) -> None:
        self._decoder.register(address, abi)

    # -- events --------------------------------------------------------------
    def events_since(self, cursor: int) -> tuple[list[Event], int]:
        return self._events[cursor:], len(self._events)

    def _record_logs(self, logs: list[Any]) -> list[Event]:
        events: list[Event] = []
        for log in logs:
            topics, data = log.data
            decoded = self._decoder.decode(log.address, topics, data)
            if decoded is None:
                continue  # a contract whose ABI this chain was not given
            event = Event(decoded[0], checksum_address(log.address), decoded[1], self._block_number, len(self._events))
            self._events.append(event)
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
        self._evm.set_block_env(BlockEnv(number=self._block_number, timestamp=self._timestamp))

    # -- state ---------------------------------------------------------------
    def snapshot(self) -> Any:
        if not self._snapshots.any_live():
            self._undo.clear()  # nothing can revert past this point any more
        handle = _Snapshot(len(self._undo), self._block_number, self._timestamp, len(self._events))
        return self._snapshots.add(handle)

    def revert(self, snapshot: Any) -> None:
        self._snapshots.reverting_to(snapshot)
        undone = self._undo[snapshot.undo_length :]
        del self._undo[snapshot.undo_length :]
        # Slots and account infos are independent, so each kind is undone newest first.
        slots = [(entry[1], entry[2], entry[3]) for entry in reversed(undone) if entry[0] == "slot"]
        self._store_slots(slots)
        for entry in reversed(undone):
            if entry[0] == "account":
                self._store_account(entry[1], entry[2])
        self._block_number, self._timestamp = snapshot.block_number, snapshot.timestamp
        self._apply_block_env()
        del self._events[snapshot.events_length :]

    # -- finalising a transaction into the database ----------------------------
    def _result(self) -> ExecutionResult:
        result = self._evm.result
        if result is None:
            raise ChainError("revm reported success but no execution result")
        return result

    def _discard(self, checkpoint: Any) -> None:
        """Drop everything since `checkpoint`, warm/cold marks and transient storage included."""
        self._evm.revert(checkpoint)
        self._evm.reset_transient_storage()

    def _finalize(self, checkpoint: Any, caller_nonce_of: str | None) -> None:
        """Move a successful transaction's changes from revm's journal into its database."""
        evm = self._evm
        infos = evm.journal_state
        journal = parse_journal(evm.journal_str)
        self._discard(checkpoint)
        if len(journal) != len(infos):
            raise ChainError(f"revm: parsed {len(journal)} accounts from the journal, expected {len(infos)}")
        destroyed = {a.address for a in journal if a.destroyed}
        for address, info in infos.items():
            key = address.lower()
            before = self._accounts.get(key, _EMPTY_ACCOUNT)
            if key in destroyed:
                after = _EMPTY_ACCOUNT
            else:
                nonce = info.nonce + 1 if key == caller_nonce_of else info.nonce
                code_hash = bytes(info.code_hash or _EMPTY_CODE_HASH)
                code = before.code if code_hash == before.code_hash else _runtime_code(info.code, code_hash)
                after = _Account(info.balance, nonce, code_hash, code)
            if after != before:
                self._put_account(key, after)
        writes: list[tuple[str, int, int]] = []
        undo = self._snapshots.any_live()
        for account in journal:
            if account.address in destroyed:
                continue
            for slot, old, new in account.slots:
                if undo:
                    self._undo.append(("slot", account.address, slot, old))
                writes.append((account.address, slot, new))
        self._store_slots(writes)

    def _put_account(self, key: str, account: _Account) -> None:
        if self._snapshots.any_live():  # the undo log only grows while a snapshot is held
            self._undo.append(("account", key, self._accounts.get(key, _EMPTY_ACCOUNT)))
        self._store_account(key, account)

    def _store_account(self, key: str, account: _Account) -> None:
        """Write an account's info to the database (the journal is empty, so it goes there)."""
        if account == _EMPTY_ACCOUNT:
            self._accounts.pop(key, None)
        else:
            self._accounts[key] = account
        self._evm.insert_account_info(key, account.info())

    def _store_slots(self, writes: list[tuple[str, int, int]]) -> None:
        """Write storage slots to the database, in order.

        pyrevm's insert_account_storage writes to the database only while the account is not
        in the journal, and loads it into the journal on the way; so each write gets its own
        checkpoint, whose revert unloads the account again."""
        evm = self._evm
        for address, slot, value in writes:
            checkpoint = evm.snapshot()
            evm.insert_account_storage(address, slot, value)
            evm.revert(checkpoint)
