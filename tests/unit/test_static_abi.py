"""The static-tuple fast path (sim/chain/static_abi.py) against eth_abi: for any tuple of static
value types, the same bytes out, the same values back, and eth_abi's own error where eth_abi
refuses. Rule guarded: the fast path changes speed, never results."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.decoding import ContextFramesBytesIO, TupleDecoder
from eth_abi.encoding import TupleEncoder
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.chain import static_abi
from sim.chain.contract import _registry, checksum_address, decode_abi, encode_abi

ADDRESSES = [checksum_address(bytes([i]) * 20) for i in (1, 0xAB, 0xFE)]


def _slow(types: tuple[str, ...]):
    enc = TupleEncoder(encoders=[_registry.get_encoder(t) for t in types])
    dec = TupleDecoder(decoders=[_registry.get_decoder(t) for t in types])
    return enc, lambda data: dec(ContextFramesBytesIO(data))


def assert_same_outcome(slow: Any, fast: Any, arg: Any) -> None:
    """`fast(arg)` returns what `slow(arg)` returns, or raises what it raises. (Whether eth_abi
    refuses some inputs depends on its registry's strictness, which other libraries loaded in
    the same process may change; the fast path must follow it either way.)"""
    try:
        expected = slow(arg)
    except Exception as exc:  # noqa: BLE001 - whatever eth_abi raises, the fast path must too
        with pytest.raises(type(exc)):
            fast(arg)
        return
    assert fast(arg) == expected


@st.composite
def static_type(draw: Any, depth: int = 0) -> str:
    kinds = ["uint", "int", "address", "bool"] + (["tuple"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind in ("uint", "int"):
        return f"{kind}{draw(st.sampled_from([8, 64, 128, 256]))}"
    if kind == "tuple":
        return "(" + ",".join(draw(st.lists(static_type(depth + 1), min_size=1, max_size=3))) + ")"
    return kind


def value_of(typ: str) -> st.SearchStrategy[Any]:
    if typ.startswith("("):
        return st.tuples(*[value_of(t) for t in static_abi._split_components(typ[1:-1])])
    if typ == "bool":
        return st.booleans()
    if typ == "address":
        return st.sampled_from(ADDRESSES + [a.lower() for a in ADDRESSES])
    bits = int(typ.lstrip("uint") or 256)
    if typ.startswith("u"):
        return st.integers(0, 2**bits - 1)
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@st.composite
def typed_values(draw: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    types = tuple(draw(st.lists(static_type(), min_size=0, max_size=5)))
    return types, tuple(draw(value_of(t)) for t in types)


@settings(max_examples=300, deadline=None)
@given(typed_values())
def test_fast_path_encodes_and_decodes_like_eth_abi(case: tuple[tuple[str, ...], tuple[Any, ...]]) -> None:
    types, values = case
    slow_encode, slow_decode = _slow(types)
    data = encode_abi(types, values)
    assert data == slow_encode(values)
    assert decode_abi(types, data) == slow_decode(data)


@pytest.mark.parametrize("types, values", [
    (("uint8",), (256,)),
    (("uint256",), (-1,)),
    (("int8",), (128,)),
    (("uint256",), (True,)),
    (("bool",), (1,)),
    (("uint256",), (1.0,)),
    (("address",), ("0x" + "ab" * 19 + "AB",)),  # mixed case, not a valid checksum
    (("address",), ("0x1234",)),
    (("address",), (b"\x01" * 19,)),
    (("(uint256,bool)",), ((1,),)),
])
def test_values_the_fast_path_refuses_get_eth_abi_s_answer(types: tuple[str, ...], values: tuple[Any, ...]) -> None:
    slow_encode, _ = _slow(types)
    assert_same_outcome(slow_encode, lambda v: encode_abi(types, v), values)


@pytest.mark.parametrize("types, data", [
    (("uint8",), (256).to_bytes(32, "big")),  # dirty padding
    (("bool",), (2).to_bytes(32, "big")),
    (("address",), b"\x01" * 32),
    (("uint256", "uint256"), bytes(40)),  # too short
])
def test_data_the_fast_path_refuses_gets_eth_abi_s_answer(types: tuple[str, ...], data: bytes) -> None:
    _, slow_decode = _slow(types)
    assert_same_outcome(slow_decode, lambda d: decode_abi(types, d), data)


def test_addresses_decode_checksummed() -> None:
    word = bytes(12) + bytes([0xAB]) * 20
    assert decode_abi(("address",), word) == (checksum_address(bytes([0xAB]) * 20),)


def test_dynamic_types_are_left_to_eth_abi() -> None:
    assert static_abi._tuple_codec(("uint256", "string"), checksum_address) is None
    assert static_abi._tuple_codec(("uint256[]",), checksum_address) is None
    assert decode_abi(("uint256[]",), encode_abi(("uint256[]",), ([1, 2, 3],))) == ((1, 2, 3),)
