"""A fast path for ABI-encoding and decoding tuples of static value types.

Almost every call the simulator makes takes and returns only `uintN`, `intN`, `address`,
`bool` and structs of them: 32 bytes a value, no offsets. eth_abi handles them through
layers of generic machinery (about 20 µs a value); this module compiles each such tuple type
once into a plain function (about 1 µs a value).

It is a fast path, never a second opinion: whenever a value is not one it handles exactly
(a wrong type, out of range, an address whose checksum must be checked, data too short or
with dirty padding), it gives up with `NotStatic`, and the caller uses eth_abi, which then
encodes, decodes or raises its usual error. So the results, and the errors, are eth_abi's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from eth_utils import is_address

from sim.chain.base import ChainError

_UINT = re.compile(r"^uint(\d*)$")
_INT = re.compile(r"^int(\d*)$")
_ZERO_12 = bytes(12)
_TRUE = (1).to_bytes(32, "big")
_FALSE = bytes(32)

Encode = Callable[[Any], bytes]
Decode = Callable[[bytes, int], Any]  # (data, offset) -> value


class NotStatic(Exception):
    """This value (or this data) is not one the fast path handles; use eth_abi."""


def _bits(match: re.Match[str]) -> int:
    bits = int(match[1] or 256)
    if not 8 <= bits <= 256 or bits % 8:
        raise ChainError(f"not an ABI integer width: {match[0]}")
    return bits


@lru_cache(maxsize=4096)
def _address_word(address: str | bytes) -> bytes:
    """The 32-byte word of an address that eth_abi would accept without complaint."""
    if isinstance(address, bytes) and len(address) == 20:
        return _ZERO_12 + address
    if isinstance(address, str) and is_address(address):
        return _ZERO_12 + bytes.fromhex(address[2:])
    raise NotStatic


def _split_components(inner: str) -> list[str]:
    """`a,(b,c),d` -> ["a", "(b,c)", "d"]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def _codec(typ: str, checksum: Callable[[bytes], str]) -> tuple[Encode, Decode, int] | None:
    """(encode, decode, size in bytes) of one static type, or None if the fast path does not
    cover it (dynamic types, arrays, fixed-point, bytesN)."""
    if typ.startswith("(") and typ.endswith(")"):
        return _tuple_codec(_split_components(typ[1:-1]) if typ != "()" else [], checksum)
    if typ == "bool":
        def encode_bool(v: Any) -> bytes:
            if type(v) is not bool:
                raise NotStatic
            return _TRUE if v else _FALSE

        def decode_bool(data: bytes, at: int) -> bool:
            value = int.from_bytes(data[at:at + 32], "big")
            if value > 1:
                raise NotStatic
            return value == 1

        return encode_bool, decode_bool, 32
    if typ == "address":
        def encode_address(v: Any) -> bytes:
            try:
                return _address_word(v)
            except TypeError:  # unhashable: not a str or bytes
                raise NotStatic from None

        def decode_address(data: bytes, at: int) -> str:
            if data[at:at + 12] != _ZERO_12:
                raise NotStatic
            return checksum(data[at + 12:at + 32])

        return encode_address, decode_address, 32
    if match := _UINT.match(typ):
        bound = 1 << _bits(match)

        def encode_uint(v: Any) -> bytes:
            if type(v) is not int or not 0 <= v < bound:
                raise NotStatic
            return v.to_bytes(32, "big")

        def decode_uint(data: bytes, at: int) -> int:
            value = int.from_bytes(data[at:at + 32], "big")
            if value >= bound:
                raise NotStatic
            return value

        return encode_uint, decode_uint, 32
    if match := _INT.match(typ):
        half = 1 << (_bits(match) - 1)

        def encode_int(v: Any) -> bytes:
            if type(v) is not int or not -half <= v < half:
                raise NotStatic
            return v.to_bytes(32, "big", signed=True)

        def decode_int(data: bytes, at: int) -> int:
            value = int.from_bytes(data[at:at + 32], "big", signed=True)
            if not -half <= value < half:
                raise NotStatic
            return value

        return encode_int, decode_int, 32
    return None


def _tuple_codec(types: list[str] | tuple[str, ...], checksum: Callable[[bytes], str]) -> tuple[Encode, Decode, int] | None:
    parts = [_codec(t, checksum) for t in types]
    if any(p is None for p in parts):
        return None
    encoders = [p[0] for p in parts]  # type: ignore[index]
    decoders = [p[1] for p in parts]  # type: ignore[index]
    offsets, size = [], 0
    for p in parts:
        offsets.append(size)
        size += p[2]  # type: ignore[index]
    count = len(parts)
    pairs = list(zip(decoders, offsets))

    def encode_tuple(values: Any) -> bytes:
        if not isinstance(values, (tuple, list)) or len(values) != count:
            raise NotStatic
        return b"".join([enc(v) for enc, v in zip(encoders, values)])

    def decode_tuple(data: bytes, at: int) -> tuple[Any, ...]:
        return tuple([dec(data, at + offset) for dec, offset in pairs])

    return encode_tuple, decode_tuple, size


def tuple_encoder(types: tuple[str, ...], fallback: Callable[[tuple[Any, ...]], bytes],
                  checksum: Callable[[bytes], str]) -> Callable[[tuple[Any, ...]], bytes]:
    """An encoder of the tuple `types` that takes the fast path when it can and `fallback`
    (eth_abi) otherwise."""
    codec = _tuple_codec(types, checksum)
    if codec is None:
        return fallback
    fast = codec[0]

    def encode(values: tuple[Any, ...]) -> bytes:
        try:
            return fast(values)
        except NotStatic:
            return fallback(values)

    return encode


def tuple_decoder(types: tuple[str, ...], fallback: Callable[[bytes], tuple[Any, ...]],
                  checksum: Callable[[bytes], str]) -> Callable[[bytes], tuple[Any, ...]]:
    """A decoder of the tuple `types` from bytes, fast when it can be, else `fallback`."""
    codec = _tuple_codec(types, checksum)
    if codec is None:
        return fallback
    fast, size = codec[1], codec[2]

    def decode(data: bytes) -> tuple[Any, ...]:
        if len(data) < size:
            return fallback(data)  # eth_abi says what is missing
        try:
            return fast(bytes(data), 0)
        except NotStatic:
            return fallback(data)

    return decode


def static_tuple_decoder(types: tuple[str, ...], checksum: Callable[[bytes], str]) -> tuple[Decode, int] | None:
    """The fast decoder `(data, offset) -> tuple` of a tuple of static value types and its size
    in bytes, with no fallback (it raises NotStatic), or None if the types are not all static."""
    codec = _tuple_codec(types, checksum)
    return None if codec is None else (codec[1], codec[2])


def static_value_decoder(typ: str, checksum: Callable[[bytes], str]) -> Decode | None:
    """The fast decoder `(data, offset) -> value` of one static value type, with no fallback
    (it raises NotStatic), or None if the type is not one the fast path handles."""
    codec = _codec(typ, checksum)
    return None if codec is None or typ.startswith("(") else codec[1]
