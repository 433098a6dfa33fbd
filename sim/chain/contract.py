"""The ABI layer over a `Chain`: `Contract`, `deploy`, `at`, and the decoders backends share.

A backend moves bytes (calldata in, return data and raw logs out); this module turns Python
values into calldata and bytes back into Python values with the artifact's ABI. It is on the
simulator's hot path (thousands of calls a second), so everything that can be worked out once
per ABI (selectors, type strings, eth_abi encoders and decoders) is, and cached, and tuples of
static value types skip eth_abi (sim/chain/static_abi.py).

Conventions, the same on every backend:
- Addresses come back checksummed, wherever they appear (return values, event args).
- A function with one output returns the value itself; several outputs return a tuple; none
  returns None.
- Revert data decodes to a reason: `Error(string)` gives the string, `Panic(uint256)` gives
  `"panic: 0x11"`; anything else (custom errors, empty data) gives None.
- Event args hold every field by name. Indexed fields of value types (uint, int, address,
  bool, bytesN) are decoded from their topic; indexed dynamic fields (string, bytes, arrays,
  structs) keep the 32-byte topic, which is the keccak hash of the value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from eth_abi.decoding import AddressDecoder, ContextFramesBytesIO, TupleDecoder
from eth_abi.encoding import AddressEncoder, TupleEncoder
from eth_abi.exceptions import DecodingError, EncodingError
from eth_abi.registry import BaseEquals
from eth_abi.registry import registry as _default_registry
from eth_utils import keccak, to_checksum_address

from sim.chain import static_abi
from sim.chain.base import Artifact, Chain, ChainError, Receipt

# -- eth_abi with checksummed addresses ------------------------------------------


@lru_cache(maxsize=1 << 16)
def checksum_address(address: bytes | str) -> str:
    """EIP-55 checksummed form of a 20-byte or hex address, cached: a simulation sees the
    same few hundred addresses millions of times, and eth_utils takes ~14 µs per call."""
    return to_checksum_address(address)


class _ChecksumAddressDecoder(AddressDecoder):
    """eth_abi decodes addresses lowercase; perpsim returns them checksummed everywhere."""

    decoder_fn = staticmethod(checksum_address)  # type: ignore[assignment]


_registry = _default_registry.copy()
_registry.unregister("address")
_registry.register(BaseEquals("address"), AddressEncoder, _ChecksumAddressDecoder, label="address")

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
_STATIC_TOPIC_TYPE = re.compile(r"^(u?int\d*|address|bool|bytes([1-9]|[12]\d|3[0-2])|u?fixed\d*x\d+)$")


def abi_type_string(param: dict[str, Any]) -> str:
    """The canonical type string of an ABI parameter: structs become `(t1,t2,...)`."""
    typ = param["type"]
    if typ.startswith("tuple"):
        inner = ",".join(abi_type_string(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def _tuple_encoder(types: tuple[str, ...]) -> Callable[[tuple[Any, ...]], bytes]:
    """An encoder of the tuple `types` (built from the parts: eth_abi rejects the type "()");
    tuples of static value types take static_abi's fast path."""
    slow = TupleEncoder(encoders=[_registry.get_encoder(t) for t in types])
    return static_abi.tuple_encoder(types, slow, checksum_address)


def _tuple_decoder(types: tuple[str, ...]) -> Callable[[bytes], tuple[Any, ...]]:
    """A decoder of the tuple `types`, taking bytes; static tuples take the fast path."""
    decoder = TupleDecoder(decoders=[_registry.get_decoder(t) for t in types])
    return static_abi.tuple_decoder(types, lambda data: decoder(ContextFramesBytesIO(data)), checksum_address)


def encode_abi(types: tuple[str, ...] | list[str], values: tuple[Any, ...] | list[Any]) -> bytes:
    """ABI-encode `values` as the tuple `types` (eth_abi's head/tail encoding)."""
    return _tuple_encoder(tuple(types))(tuple(values))


def decode_abi(types: tuple[str, ...] | list[str], data: bytes) -> tuple[Any, ...]:
    """ABI-decode `data` as the tuple `types`; addresses come back checksummed."""
    return _tuple_decoder(tuple(types))(data)


# -- functions and events ----------------------------------------------------------


class AbiFunction:
    """One callable ABI entry, with its selector, encoder and output decoder built once."""

    __slots__ = ("name", "signature", "selector", "input_types", "output_types", "_encoder", "_decode", "_n_out")

    def __init__(self, entry: dict[str, Any]) -> None:
        self.name: str = entry["name"]
        self.input_types = tuple(abi_type_string(p) for p in entry.get("inputs", []))
        self.output_types = tuple(abi_type_string(p) for p in entry.get("outputs", []))
        self.signature = f"{self.name}({','.join(self.input_types)})"
        self.selector = keccak(text=self.signature)[:4]
        self._encoder = _tuple_encoder(self.input_types)
        self._decode = _tuple_decoder(self.output_types)
        self._n_out = len(self.output_types)

    def encode(self, args: tuple[Any, ...]) -> bytes:
        """Calldata: selector + ABI-encoded args."""
        try:
            return self.selector + self._encoder(args)
        except (EncodingError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"cannot encode arguments {args!r} for {self.signature}: {exc}") from exc

    def decode_output(self, data: bytes) -> Any:
        """Return data as Python: None, the single value, or a tuple of several."""
        if self._n_out == 0:
            return None
        try:
            values = self._decode(data)
        except DecodingError as exc:
            hint = " (no data: is there a contract at that address?)" if not data else ""
            raise ValueError(
                f"cannot decode the return data of {self.signature} as {self.output_types}{hint}: {exc}"
            ) from exc
        return values[0] if self._n_out == 1 else values


def _topic_decoder(typ: str) -> Callable[[bytes], Any]:
    """A decoder of one value-type event field from its 32-byte topic."""
    decode = _tuple_decoder((typ,))
    return lambda topic: decode(topic)[0]


class AbiEvent:
    """One non-anonymous ABI event, decodable from (topics, data)."""

    __slots__ = ("name", "signature", "topic0", "_fields", "_data_decode", "_fast")

    def __init__(self, entry: dict[str, Any]) -> None:
        self.name: str = entry["name"]
        inputs = entry.get("inputs", [])
        types = [abi_type_string(p) for p in inputs]
        self.signature = f"{self.name}({','.join(types)})"
        self.topic0 = keccak(text=self.signature)
        # (name, indexed, topic decoder or None) in declaration order
        fields: list[tuple[str, bool, Callable[[bytes], Any] | None]] = []
        data_types: list[str] = []
        for param, typ in zip(inputs, types, strict=True):
            if param.get("indexed"):
                if _STATIC_TOPIC_TYPE.match(typ):
                    fields.append((param["name"], True, _topic_decoder(typ)))
                else:
                    fields.append((param["name"], True, None))  # hashed: keep the topic
            else:
                fields.append((param["name"], False, None))
                data_types.append(typ)
        self._fields = fields
        self._data_decode = _tuple_decoder(tuple(data_types))
        self._fast = _static_event_decoder(inputs, types)

    def decode(self, topics: list[bytes], data: bytes) -> dict[str, Any]:
        """The event's fields by name; raises ValueError if the log does not fit the ABI."""
        if self._fast is not None:
            try:
                return self._fast(topics, data)
            except static_abi.NotStatic:
                pass  # the general path below decodes it, or says what is wrong
        try:
            data_values = iter(self._data_decode(data))
            topic_values = iter(topics[1:])
            args: dict[str, Any] = {}
            for name, indexed, topic_decoder in self._fields:
                if indexed:
                    topic = next(topic_values)
                    args[name] = topic_decoder(topic) if topic_decoder is not None else topic
                else:
                    args[name] = next(data_values)
            return args
        except (DecodingError, StopIteration) as exc:
            raise ValueError(f"log does not match event {self.signature}: {exc!r}") from exc


def _static_event_decoder(inputs: list[dict[str, Any]], types: list[str]) -> Callable[[list[bytes], bytes], dict[str, Any]] | None:
    """A decoder of an event whose fields are all static value types (almost every event
    perpsim's contracts log), built once: each field read straight from its topic or its
    data word by static_abi's codecs. None when a field needs eth_abi. It raises
    static_abi.NotStatic on anything it does not handle exactly, as static_abi does."""
    plan: list[tuple[str, Callable[[bytes, int], Any], int, int]] = []  # (name, decode, source, offset)
    topic, offset = 0, 0
    for param, typ in zip(inputs, types, strict=True):
        codec = static_abi.static_tuple_decoder((typ,), checksum_address)
        if codec is None or codec[1] != 32:
            return None
        read = static_abi.static_value_decoder(typ, checksum_address)
        if param.get("indexed"):
            topic += 1
            plan.append((param["name"], read, topic, 0))  # source k > 0: topic k
        else:
            plan.append((param["name"], read, 0, offset))  # source 0: the data
            offset += 32
    n_topics, size = topic + 1, offset

    def decode(topics: list[bytes], data: bytes) -> dict[str, Any]:
        if len(topics) != n_topics or len(data) != size:
            raise static_abi.NotStatic
        sources = (data, *topics[1:])  # topics[0] is the event's signature: sources[k] is topics[k]
        return {name: read(sources[source], at) for name, read, source, at in plan}

    return decode


class AbiTable:
    """Everything perpsim needs from one ABI, built once: functions by (name, arg count),
    events by topic0, and the constructor's argument types."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.functions: dict[tuple[str, int], AbiFunction] = {}
        self.events: dict[bytes, AbiEvent] = {}
        self.constructor_types: tuple[str, ...] = ()
        for entry in abi:
            kind = entry.get("type")
            if kind == "function":
                fn = AbiFunction(entry)
                self.functions[(fn.name, len(fn.input_types))] = fn
            elif kind == "event" and not entry.get("anonymous"):
                event = AbiEvent(entry)
                self.events[event.topic0] = event
            elif kind == "constructor":
                self.constructor_types = tuple(abi_type_string(p) for p in entry.get("inputs", []))
        self._constructor_encoder = _tuple_encoder(self.constructor_types)

    def function(self, name: str, n_args: int, contract_name: str = "contract") -> AbiFunction:
        """The entry called `name` taking `n_args` arguments (Vyper default args make overloads)."""
        fn = self.functions.get((name, n_args))
        if fn is not None:
            return fn
        overloads = sorted(f.signature for (n, _), f in self.functions.items() if n == name)
        if overloads:
            raise ValueError(
                f"{contract_name}.{name} takes no {n_args} arguments; its overloads: {', '.join(overloads)}"
            )
        names = sorted({n for n, _ in self.functions})
        raise ValueError(f"{contract_name} has no function {name!r}; it has: {', '.join(names)}")

    def encode_constructor(self, args: tuple[Any, ...], contract_name: str = "contract") -> bytes:
        if len(args) != len(self.constructor_types):
            raise ValueError(
                f"{contract_name} constructor takes {len(self.constructor_types)} arguments "
                f"({', '.join(self.constructor_types) or 'none'}), got {len(args)}"
            )
        try:
            return self._constructor_encoder(args)
        except (EncodingError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"cannot encode constructor arguments {args!r} for {contract_name}: {exc}") from exc


_tables: dict[int, tuple[list[dict[str, Any]], AbiTable]] = {}


def abi_table(abi: list[dict[str, Any]]) -> AbiTable:
    """The cached AbiTable of `abi` (keyed by identity: artifacts share one ABI list)."""
    cached = _tables.get(id(abi))
    if cached is not None and cached[0] is abi:
        return cached[1]
    table = AbiTable(abi)
    _tables[id(abi)] = (abi, table)  # holding `abi` keeps its id from being reused
    return table


def decode_event(abi: list[dict[str, Any]], topics: list[bytes], data: bytes) -> tuple[str, dict[str, Any]] | None:
    """(event name, args) of a log under `abi`, or None if no event of `abi` has its topic0."""
    if not topics:
        return None
    event = abi_table(abi).events.get(bytes(topics[0]))
    if event is None:
        return None
    return event.name, event.decode(topics, data)


class EventDecoder:
    """Per-chain registry of contract ABIs, used by backends to turn raw logs into events."""

    def __init__(self) -> None:
        self._events_by_address: dict[str, dict[bytes, AbiEvent]] = {}
        self._by_spelling: dict[str, dict[bytes, AbiEvent] | None] = {}  # lookups by the address as a backend spells it

    def register(self, address: str, abi: list[dict[str, Any]]) -> None:
        self._events_by_address[address.lower()] = abi_table(abi).events
        self._by_spelling.clear()

    def decode(self, address: str, topics: list[bytes], data: bytes) -> tuple[str, dict[str, Any]] | None:
        """(name, args) of a log from `address`, or None if the address or topic is unknown."""
        try:
            events = self._by_spelling[address]
        except KeyError:
            events = self._by_spelling[address] = self._events_by_address.get(address.lower())
        if events is None or not topics:
            return None
        event = events.get(topics[0])
        if event is None:
            return None
        try:
            return event.name, event.decode(topics, data)
        except ValueError as exc:
            raise ChainError(
                f"a log from {address} does not fit the ABI registered for it ({exc}); "
                "the transaction that emitted it was executed"
            ) from exc


def decode_revert_reason(data: bytes) -> str | None:
    """`Error(string)` → the string; `Panic(uint256)` → "panic: 0x11"; otherwise None."""
    if data[:4] == ERROR_SELECTOR:
        try:
            return decode_abi(("string",), data[4:])[0]
        except DecodingError:
            return None
    if data[:4] == PANIC_SELECTOR and len(data) >= 36:
        return f"panic: {hex(int.from_bytes(data[4:36], 'big'))}"
    return None


# -- contracts ---------------------------------------------------------------------


class Contract:
    """A deployed contract on a chain, called and transacted with by function name."""

    __slots__ = ("chain", "address", "artifact", "deploy_gas_used", "_table")

    def __init__(self, chain: Chain, address: str, artifact: Artifact) -> None:
        self.chain = chain
        self.address = checksum_address(address)
        self.artifact = artifact
        self.deploy_gas_used: int | None = None
        self._table = abi_table(artifact.abi)
        chain.register_abi(self.address, artifact.abi)

    def __repr__(self) -> str:
        return f"<{self.artifact.name} at {self.address} on {self.chain.name}>"

    def _function(self, fn_name: str, n_args: int) -> AbiFunction:
        fn = self._table.functions.get((fn_name, n_args))
        return fn if fn is not None else self._table.function(fn_name, n_args, self.artifact.name)

    def encode(self, fn_name: str, *args: Any) -> bytes:
        """Calldata for `fn_name(*args)`."""
        return self._function(fn_name, len(args)).encode(args)

    def call(self, fn_name: str, *args: Any, sender: str | None = None) -> Any:
        """Run `fn_name(*args)` read-only against the current state; return its decoded output."""
        fn = self._function(fn_name, len(args))
        return fn.decode_output(self.chain.call_raw(self.address, fn.encode(args), sender))

    def transact(self, fn_name: str, *args: Any, sender: str, value: int = 0, decode: bool = True) -> Receipt:
        """Send `fn_name(*args)` from `sender`; the receipt's `return_value` is the decoded output.

        `decode=False` when the caller does not need the return value (or reads it from the
        receipt's events): on a node that saves replaying the transaction to get it."""
        fn = self._function(fn_name, len(args))
        receipt = self.chain.transact_raw(sender, self.address, fn.encode(args), value)
        if not decode or not fn.output_types:
            return receipt
        return dataclasses.replace(receipt, return_value=fn.decode_output(receipt.read_output()))


def deploy(chain: Chain, artifact: Artifact, *ctor_args: Any, sender: str) -> Contract:
    """Deploy `artifact` with constructor arguments `ctor_args` from `sender`."""
    table = abi_table(artifact.abi)
    initcode = artifact.bytecode + table.encode_constructor(ctor_args, artifact.name)
    address, gas_used = chain.deploy_raw(sender, initcode, abi=artifact.abi)
    contract = Contract(chain, address, artifact)
    contract.deploy_gas_used = gas_used
    return contract


def at(chain: Chain, artifact: Artifact, address: str) -> Contract:
    """The contract `artifact` already deployed at `address` (its events get decoded from now on)."""
    return Contract(chain, address, artifact)
