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

   The dump is the backend's main cost, so it is kept small and read sparingly: before it
   is taken, each contract account in the journal gets its info replaced by the same info
   without code (the revert drops the account anyway), which takes the contracts' bytecode
   (tens of KB of hex) out of it; and of the dump only the journal's entries for storage
   writes are read (`StorageChange ... had_value: Some(..)`, found with `str.find`: a regex
   over 78-digit slot numbers backtracks at every digit), the values after them coming from
   `storage()`. The database takes a storage write only for an account outside the journal,
   and loads the account into it on the way, so slots are written in rounds of one slot per
   account, each round under a checkpoint whose revert unloads them again.
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
from dataclasses import dataclass, field
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

# revm parses the spec name case-sensitively and silently falls back to LATEST on anything
# it does not know: "CANCUN" would run LATEST; "Cancun" runs Cancun.
SPEC_ID = "Cancun"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
_EMPTY_CODE_HASH = keccak(b"")
_ANALYSIS_PADDING = 33  # revm pads analysed bytecode with 33 zero bytes

# revm 8's Debug format of JournaledState (pinned through pyrevm==0.3.7)
_ACCOUNT_MARK = ": Account { info: "
_STATUS_MARK = "}, status: AccountStatus("
_STATE_END_MARK = "}, transient_storage: "
_JOURNAL_MARK = ", journal: ["
_KEY_MARK = ", key: "
_WRITE_MARK = ", had_value: Some("
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
    # The account as revm itself last held it (balance, nonce and code alike), inserted as is:
    # for a contract that is its code already analysed (jump destinations found), which a
    # `AccountInfo(code=...)` built from bytes is not, so revm would analyse it again on every
    # call into it (about a quarter of a view's time).
    revm_info: AccountInfo | None = field(default=None, compare=False, repr=False)

    def info(self) -> AccountInfo:
        if self.revm_info is not None:
            return self.revm_info
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


def written_slots(text: str) -> dict[tuple[str, int], int]:
    """The storage slots a transaction wrote, from revm's Debug dump of its journaled state:
    {(lowercase address, slot): value before the transaction}, in the order first written.

    Each SSTORE to a warm slot leaves `StorageChange { address: A, key: K, had_value: Some(V) }`
    in the journal (a cold load leaves `had_value: None`), V being the value it replaced; so
    the first such entry of a slot holds its value before the transaction. Reading only these
    entries, with `str.find`, skips the dump's far longer list of every slot the transaction
    read; the values after come from the EVM (`storage`)."""
    written: dict[tuple[str, int], int] = {}
    pos = text.find(_WRITE_MARK)
    if pos < 0 and (_STATE_END_MARK not in text or _JOURNAL_MARK not in text):
        raise ChainError("revm: unrecognised journal format (is pyrevm 0.3.7 installed?)")
    while pos >= 0:
        key_start = text.rfind(_KEY_MARK, 0, pos) + len(_KEY_MARK)
        address = text[key_start - len(_KEY_MARK) - 42 : key_start - len(_KEY_MARK)]
        value_start = pos + len(_WRITE_MARK)
        value_end = text.find(")", value_start)
        if key_start < len(_KEY_MARK) or not address.startswith("0x") or value_end < 0:
            raise ChainError(f"revm: unrecognised journal entry near {text[max(pos - 160, 0) : pos + 40]!r}")
        written.setdefault((address.lower(), int(text[key_start:pos])), int(text[value_start:value_end]))
        pos = text.find(_WRITE_MARK, value_end)
    return written


def destroyed_accounts(text: str) -> set[str]:
    """Lowercase addresses of the accounts the dump's state marks SelfDestructed."""
    end = text.find(_STATE_END_MARK)
    chunks = text[:end].split(_ACCOUNT_MARK)  # chunk i ends with account i's address, i + 1 holds its body
    destroyed = set()
    for i in range(1, len(chunks)):
        status = chunks[i][chunks[i].find(_STATUS_MARK) :]
        if "SelfDestructed" in status[: status.find(")")]:
            destroyed.add(chunks[i - 1][-42:].lower())
    return destroyed


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
        # The outputs of the read-only calls made since the state or the block last changed, by
        # (to, data, sender): asked again (the agents, the keepers and the recorder often read
        # the same account's health in the same state), a call is answered without the EVM.
        # Cleared by every write to the database and every change of the block.
        self._views: dict[tuple[str, bytes, str | None], bytes] = {}
        self._block_number = GENESIS_BLOCK_NUMBER
        self._timestamp = GENESIS_TIMESTAMP
        self._apply_block_env()
        self._accounts: dict[str, _Account] = {}  # mirror of the database, by lowercase address
        self._undo: list[tuple[Any, ...]] = []  # ("account", address, previous) | ("slot", address, slot, previous)
        self.event_log = EventLog()
        self._decoder = EventDecoder()
        self._snapshots = SnapshotRegistry()
        self._codeless: dict[tuple[bytes, int, int], AccountInfo] = {}  # see _read_infos

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
        key = (to, data, sender)
        output = self._views.get(key)
        if output is not None:
            return output
        evm = self._evm
        checkpoint = evm.snapshot()
        try:
            output = self._views[key] = bytes(evm.message_call(sender or ZERO_ADDRESS, to, data, gas=GAS_LIMIT))
            return output
        except RuntimeError as exc:
            raise _failure(exc) from None
        finally:
            self._discard(checkpoint)

    def transact_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> Receipt:
        evm = self._evm
        checkpoint = evm.snapshot()
        try:
            output = self._execute(sender, to, data, value)
        except RuntimeError as exc:
            self._discard(checkpoint)
            raise _failure(exc) from None
        result = self._result()
        self._finalize(checkpoint, caller_nonce_of=sender.lower())
        events = self._record_logs(result.logs)
        return Receipt(gas_used=result.gas_used, output=bytes(output), events=events, block_number=self._block_number)

    def _execute(self, sender: str, to: str, data: bytes, value: int) -> Any:
        """The EVM alone running a transaction (benchmarks/throughput.py times it)."""
        return self._evm.message_call(sender, to, data, value=value, gas=GAS_LIMIT)

    def register_abi(self, address: str, abi: list[dict[str, Any]]) -> None:
        self._decoder.register(address, abi)

    # -- events --------------------------------------------------------------
    def _record_logs(self, logs: list[Any]) -> list[Event]:
        events: list[Event] = []
        decode, log_ = self._decoder.decode, self.event_log
        for log in logs:
            address = log.address
            topics, data = log.data
            decoded = decode(address, topics, data)
            if decoded is None:
                continue  # a contract whose ABI this chain was not given
            event = Event(decoded[0], checksum_address(address), decoded[1], self._block_number, len(log_))
            log_.append(event)
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
        self._views.clear()
        self._evm.set_block_env(BlockEnv(number=self._block_number, timestamp=self._timestamp))

    # -- state ---------------------------------------------------------------
    def snapshot(self) -> Any:
        if not self._snapshots.any_live():
            self._undo.clear()  # nothing can revert past this point any more
        handle = _Snapshot(len(self._undo), self._block_number, self._timestamp, len(self.event_log))
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
        self.event_log.truncate(snapshot.events_length)

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
        infos = self._read_infos(evm.journal_state)  # and take the code out of the journal
        text = evm.journal_str
        written = written_slots(text)
        destroyed = destroyed_accounts(text) if "SelfDestructed" in text else set()
        writes = [(address, slot, evm.storage(address, slot)) for address, slot in written if address not in destroyed]
        self._discard(checkpoint)
        for key, balance, nonce, code_hash, info in infos:
            before = self._accounts.get(key, _EMPTY_ACCOUNT)
            if key in destroyed:
                if before != _EMPTY_ACCOUNT:
                    self._put_account(key, _EMPTY_ACCOUNT)
                continue
            if key == caller_nonce_of:
                nonce += 1
            if balance == before.balance and nonce == before.nonce and code_hash == before.code_hash:
                continue  # most accounts a transaction touches: only storage changed
            code = before.code if code_hash == before.code_hash else _runtime_code(info.code, code_hash)
            # revm's own info keeps its analysed code; the sender's bumped nonce is not in it
            revm_info = info if code is not None and nonce == info.nonce else None
            self._put_account(key, _Account(balance, nonce, code_hash, code, revm_info))
        writes = [w for w in writes if w[2] != written[w[0], w[1]]]  # written back to its old value: no change
        if self._snapshots.any_live():
            self._undo += [("slot", address, slot, written[address, slot]) for address, slot, _ in writes]
        self._store_slots(writes)

    def _read_infos(self, infos: dict[str, AccountInfo]) -> list[tuple[str, int, int, bytes, AccountInfo]]:
        """(lowercase address, balance, nonce, code hash, info) of each account in the journal.

        On the way, each contract account's info in the journal is replaced by the same info
        without its code, so the journal's Debug dump leaves the bytecode out (see the module
        doc). Balance and nonce are kept, as reverting a transfer or a nonce bump adjusts them."""
        evm, codeless_infos = self._evm, self._codeless
        out = []
        for address, info in infos.items():
            balance, nonce, code_hash = info.balance, info.nonce, info.code_hash
            if code_hash != _EMPTY_CODE_HASH:
                key = (code_hash, balance, nonce)
                codeless = codeless_infos.get(key)
                if codeless is None:
                    codeless = codeless_infos[key] = AccountInfo(  # type: ignore[call-arg]
                        balance=balance, nonce=nonce, code_hash=code_hash)
                evm.insert_account_info(address, codeless)
            out.append((address.lower(), balance, nonce, code_hash, info))
        return out

    def _put_account(self, key: str, account: _Account) -> None:
        if self._snapshots.any_live():  # the undo log only grows while a snapshot is held
            self._undo.append(("account", key, self._accounts.get(key, _EMPTY_ACCOUNT)))
        self._store_account(key, account)

    def _store_account(self, key: str, account: _Account) -> None:
        """Write an account's info to the database (the journal is empty, so it goes there)."""
        self._views.clear()
        if account == _EMPTY_ACCOUNT:
            self._accounts.pop(key, None)
        else:
            self._accounts[key] = account
        self._evm.insert_account_info(key, account.info())

    def _store_slots(self, writes: list[tuple[str, int, int]]) -> None:
        """Write storage slots to the database; of several writes to one slot the last counts.

        pyrevm's insert_account_storage writes to the database only while the account is not
        in the journal, and loads it into the journal on the way; so writes go in rounds, each
        taking at most one slot per account under a checkpoint whose revert unloads them."""
        if writes:
            self._views.clear()
        by_account: dict[str, dict[int, int]] = {}
        for address, slot, value in writes:
            by_account.setdefault(address, {})[slot] = value
        queues = [(address, list(slots.items())) for address, slots in by_account.items()]
        evm = self._evm
        for i in range(max((len(q) for _, q in queues), default=0)):
            checkpoint = evm.snapshot()
            for address, queue in queues:
                if i < len(queue):
                    evm.insert_account_storage(address, *queue[i])
            evm.revert(checkpoint)
