"""The `rpc` backend: any JSON-RPC node through web3.py's HTTP provider (anvil, an ape network).

It needs anvil's test methods (`anvil_*`, `evm_*`), which anvil and most dev nodes provide:
`anvil_autoImpersonateAccount` lets every label-derived address send, `anvil_setBalance`
funds it, `evm_snapshot`/`evm_revert` back `snapshot()`/`revert()`. Start anvil with
`--hardfork cancun --gas-price 0 --base-fee 0 --disable-min-priority-fee --gas-limit 30000000
--timestamp 1700000000 --chain-id 31337` (tests/utils/anvil.py does) to match the in-process
backends exactly; transactions are sent with gas 30M and gas price 0.

Block timestamps. The node mines one block per transaction (automine), while perpsim's clock
runs several transactions per block. Anvil accepts a block whose timestamp equals its
parent's, so the logical clock maps onto the node like this:
- at start, `anvil_setBlockTimestampInterval(0)`: each automined block gets its parent's
  timestamp, so consecutive transactions share one timestamp;
- after `mine(seconds)`, `set_timestamp()` or `revert()`, the next transaction is preceded by
  `evm_setNextBlockTimestamp(current logical timestamp)`;
- every receipt's `blockTimestamp` is checked against the logical timestamp, and a mismatch
  raises ChainError instead of silently diverging from revm and pyevm.
Views (`call_raw`) run `eth_call` on the latest state with the block override
`{"time": logical timestamp}`, so they see the same `block.timestamp` as a transaction would.
`block_number` and `Event.block_number` are the logical block numbers, as on the other
backends; contracts running on the node see the node's own `block.number` (one per transaction).

Return values. Receipts do not carry a transaction's return data; it is recovered by replaying
the transaction with `eth_call` on its parent block, and only when someone reads it
(`Receipt.read_output()`, which `Contract.transact` calls for a function whose value is
wanted): most transactions' values are never needed.

Reverts. A transaction that reverts is still mined by the node (status 0); its reason is
recovered by replaying it with `eth_call` on the parent block, and the only state it changed,
the sender's nonce (gas price is 0), is put back with `anvil_setNonce`, so a failed
transaction leaves no trace, as on the other backends.

The node's own block numbers and transaction hashes are kept beside the logical ones: each
`Event` carries `node_block` and `tx_hash`, and `node_block_number` is the node's block of the
last transaction. A URL without a scheme and a node that does not answer raise ChainError
saying so, naming the URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests
from web3 import HTTPProvider, Web3

from sim.chain.base import (
    GAS_LIMIT,
    GENESIS_BLOCK_NUMBER,
    GENESIS_TIMESTAMP,
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

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
_METHOD_NOT_FOUND = -32601
_RECEIPT_TIMEOUT_SECONDS = 30.0


class _RpcError(Exception):
    """An error object returned by the node (not a transport failure)."""

    def __init__(self, method: str, error: dict[str, Any]):
        self.method = method
        self.code = error.get("code")
        self.message = str(error.get("message", ""))
        data = error.get("data")
        self.data = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
        super().__init__(f"{method}: {self.message} (code {self.code})")


@dataclass
class _Snapshot:
    node_id: str  # replaced after each revert: anvil deletes a snapshot it reverts to
    block_number: int
    timestamp: int
    events_length: int


def check_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host, else ChainError saying what is expected."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        hint = f", e.g. http://{url}" if "://" not in url else ""
        raise ChainError(f"{url} is not a node URL: expected http://HOST:PORT or https://...{hint}")
    return url


def _transport_reason(exc: Exception) -> str:
    """A transport failure in a few words, not urllib3's paragraph."""
    text = str(exc)
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused (nothing listens there)"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host"
    if isinstance(exc, requests.Timeout) or "timed out" in text:
        return "timed out"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "Connection reset" in text:
        return "the connection was closed"
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


class RpcChain(Chain):
    """A chain on a JSON-RPC node with anvil's test methods (see module doc)."""

    name = "rpc"

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = check_url(url)
        self.node_block_number: int | None = None  # the node's block of the last transaction
        self._provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.web3 = Web3(self._provider)
        self._sync_send = True  # eth_sendTransactionSync (EIP-7966) until the node says no
        self._block_overrides = True  # eth_call's 4th parameter, until the node says no
        self.event_log = EventLog()
        self._decoder = EventDecoder()
        self._snapshots = SnapshotRegistry()

        try:
            latest = self._rpc("eth_getBlockByNumber", ["latest", False])
        except ChainError as exc:
            reason = _transport_reason(exc.__cause__) if isinstance(exc.__cause__, Exception) else str(exc)
            raise ChainError(f"no JSON-RPC node answers at {url}: {reason}") from exc.__cause__
        except _RpcError as exc:
            raise ChainError(f"the node at {url} does not answer eth_getBlockByNumber: {exc}") from exc
        self._block_number = GENESIS_BLOCK_NUMBER
        # A node that already ran past the genesis time cannot go back: start from its clock.
        self._timestamp = max(GENESIS_TIMESTAMP, int(latest["timestamp"], 16))
        self._time_synced = False
        try:
            self._rpc("anvil_autoImpersonateAccount", [True])
            self._rpc("anvil_setBlockTimestampInterval", [0])
        except _RpcError as exc:
            raise ChainError(
                f"the node at {url} lacks anvil's test methods, which the rpc backend needs: {exc}"
            ) from exc

    # -- transport -----------------------------------------------------------
    def _rpc(self, method: str, params: list[Any] | None = None) -> Any:
        try:
            response = self._provider.make_request(method, params or [])  # type: ignore[arg-type]
        except (requests.RequestException, OSError, ValueError) as exc:
            raise ChainError(f"JSON-RPC node at {self.url} failed on {method}: {_transport_reason(exc)}") from exc
        if "error" in response:
            raise _RpcError(method, dict(response["error"]))
        return response.get("result")

    # -- accounts ------------------------------------------------------------
    def new_account(self, label: str, eth: int = 10**21) -> str:
        address = address_from_label(label)
        self._rpc("anvil_setBalance", [address, hex(eth)])
        return address

    def get_balance(self, address: str) -> int:
        return int(self._rpc("eth_getBalance", [address, "latest"]), 16)

    def get_nonce(self, address: str) -> int:
        return int(self._rpc("eth_getTransactionCount", [address, "latest"]), 16)

    def get_code(self, address: str) -> bytes:
        return bytes.fromhex(self._rpc("eth_getCode", [address, "latest"])[2:])

    # -- contracts -----------------------------------------------------------
    def deploy_raw(self, sender: str, initcode: bytes, abi: list[dict[str, Any]] | None = None) -> tuple[str, int]:
        tx = {"from": sender, "data": "0x" + initcode.hex(), "gas": hex(GAS_LIMIT), "gasPrice": "0x0"}
        receipt = self._send(tx)
        address = checksum_address(receipt["contractAddress"])
        if abi is not None:
            self._decoder.register(address, abi)
        self._record_logs(receipt)
        return address, int(receipt["gasUsed"], 16)

    def call_raw(self, to: str, data: bytes, sender: str | None = None) -> bytes:
        call = {
            "from": sender or ZERO_ADDRESS,
            "to": to,
            "data": "0x" + data.hex(),
            "gas": hex(GAS_LIMIT),
            "gasPrice": "0x0",
        }
        try:
            return bytes.fromhex(self._eth_call(call, "latest")[2:])
        except _RpcError as exc:
            raise self._reverted(exc, gas_used=0) from None

    def transact_raw(self, sender: str, to: str, data: bytes, value: int = 0) -> Receipt:
        tx = {
            "from": sender,
            "to": to,
            "data": "0x" + data.hex(),
            "value": hex(value),
            "gas": hex(GAS_LIMIT),
            "gasPrice": "0x0",
        }
        receipt = self._send(tx)
        events = self._record_logs(receipt)
        return Receipt(gas_used=int(receipt["gasUsed"], 16), output=b"", events=events, block_number=self._block_number,
                       replay=self._output_reader(tx, receipt) if data else None)

    def register_abi(self, address: str, abi: list[dict[str, Any]]) -> None:
        self._decoder.register(address, abi)

    def _output_reader(self, tx: dict[str, Any], receipt: dict[str, Any]) -> Any:
        """Reads a transaction's return data, which receipts do not carry, once, when asked:
        re-run it with eth_call on its parent block (the node mines one transaction per block,
        so that is the state it ran on) at the timestamp it ran at."""
        mined_in = int(receipt["blockNumber"], 16)
        timestamp = self._timestamp
        output: list[bytes] = []

        def read() -> bytes:
            if not output:
                try:
                    output.append(bytes.fromhex(self._eth_call(tx, hex(mined_in - 1), number=mined_in,
                                                               timestamp=timestamp)[2:]))
                except _RpcError as exc:
                    raise ChainError(f"replaying a mined transaction on {self.url} to read its output failed: {exc}"
                                     ) from exc
            return output[0]

        return read

    def _eth_call(self, call: dict[str, Any], block: str, number: int | None = None,
                  timestamp: int | None = None) -> str:
        """eth_call on the state of `block`, seeing the logical timestamp (or `timestamp`; and
        block `number`, if given) when the node takes block overrides."""
        if self._block_overrides:
            overrides = {"time": hex(self._timestamp if timestamp is None else timestamp)}
            if number is not None:
                overrides["number"] = hex(number)
            try:
                return self._rpc("eth_call", [call, block, {}, overrides])
            except _RpcError as exc:
                if exc.code not in (-32602, _METHOD_NOT_FOUND) or exc.data:
                    raise
                self._block_overrides = False  # the node rejects the 4th parameter
        return self._rpc("eth_call", [call, block])

    def _send(self, tx: dict[str, Any]) -> dict[str, Any]:
        """Mine `tx` at the logical timestamp; on failure undo its nonce bump and raise Reverted."""
        if not self._time_synced:
            self._rpc("evm_setNextBlockTimestamp", [hex(self._timestamp)])
        try:
            receipt = self._send_and_wait(tx)
        except _RpcError as exc:  # rejected before mining (e.g. insufficient funds)
            self._time_synced = False
            raise Reverted(None, exc.data, 0, detail=f"node rejected the transaction: {exc.message}") from None
        mined_at = receipt.get("blockTimestamp")
        if mined_at is not None and int(str(mined_at), 0) != self._timestamp:
            raise ChainError(
                f"the node at {self.url} mined a transaction at timestamp {int(str(mined_at), 0)}, "
                f"expected {self._timestamp}; is something else sending transactions to it?"
            )
        self._time_synced = mined_at is not None
        if int(receipt["status"], 16) == 1:
            return receipt
        raise self._undo_failed(tx, receipt)

    def _send_and_wait(self, tx: dict[str, Any]) -> dict[str, Any]:
        if self._sync_send:
            try:
                return self._rpc("eth_sendTransactionSync", [tx])
            except _RpcError as exc:
                if exc.code != _METHOD_NOT_FOUND:
                    raise
                self._sync_send = False
        tx_hash = self._rpc("eth_sendTransaction", [tx])
        deadline = time.monotonic() + _RECEIPT_TIMEOUT_SECONDS
        while (receipt := self._rpc("eth_getTransactionReceipt", [tx_hash])) is None:
            if time.monotonic() > deadline:
                raise ChainError(f"no receipt for {tx_hash} from {self.url} after {_RECEIPT_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.001)
        return receipt

    def _undo_failed(self, tx: dict[str, Any], receipt: dict[str, Any]) -> Reverted:
        """Recover a mined failure's reason and put the sender's nonce back."""
        gas_used = int(receipt["gasUsed"], 16)
        mined_in = int(receipt["blockNumber"], 16)
        reverted = Reverted(None, b"", gas_used, detail="transaction failed (status 0) and its replay succeeded")
        try:
            self._eth_call(tx, hex(mined_in - 1), number=mined_in)
        except _RpcError as exc:
            reverted = self._reverted(exc, gas_used)
        nonce = int(self._rpc("eth_getTransactionCount", [tx["from"], "latest"]), 16)
        self._rpc("anvil_setNonce", [tx["from"], hex(nonce - 1)])
        return reverted

    @staticmethod
    def _reverted(exc: _RpcError, gas_used: int) -> Reverted:
        reason = decode_revert_reason(exc.data)
        detail = None if exc.data else exc.message
        return Reverted(reason, exc.data, gas_used, detail=detail)

    # -- events --------------------------------------------------------------
    def _record_logs(self, receipt: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        node_block = int(receipt["blockNumber"], 16)
        self.node_block_number = node_block
        tx_hash = receipt.get("transactionHash")
        for log in receipt.get("logs", []):
            topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
            decoded = self._decoder.decode(log["address"], topics, bytes.fromhex(log["data"][2:]))
            if decoded is None:
                continue  # a contract whose ABI this chain was not given
            event = Event(
                decoded[0], checksum_address(log["address"]), decoded[1], self._block_number, len(self.event_log),
                node_block=node_block, tx_hash=tx_hash,
            )
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
        self._time_synced = False

    def set_timestamp(self, timestamp: int) -> None:
        check_new_timestamp(self._timestamp, timestamp)
        self._timestamp = timestamp
        self._time_synced = False

    # -- state ---------------------------------------------------------------
    def snapshot(self) -> Any:
        handle = _Snapshot(self._rpc("evm_snapshot"), self._block_number, self._timestamp, len(self.event_log))
        return self._snapshots.add(handle)

    def revert(self, snapshot: Any) -> None:
        self._snapshots.reverting_to(snapshot)
        if not self._rpc("evm_revert", [snapshot.node_id]):
            raise ChainError(f"the node at {self.url} refused evm_revert({snapshot.node_id})")
        snapshot.node_id = self._rpc("evm_snapshot")  # so the same handle can be reverted to again
        self._block_number, self._timestamp = snapshot.block_number, snapshot.timestamp
        self._time_synced = False
        self.event_log.truncate(snapshot.events_length)

    def close(self) -> None:
        """Nothing to release: web3's HTTP session is shared and closed at exit."""
