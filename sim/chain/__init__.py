"""perpsim's chain layer (DESIGN §3): one `Chain` interface, three EVM backends.

Usage::

    chain = make_chain("revm")  # in-process revm (the default); "pyevm": py-evm, the reference
    devnet = make_chain("rpc", rpc_url="http://127.0.0.1:8545")  # anvil or another dev node
    artifact = compile_project()["Exchange"]  # compiled once, then cached by source hash
    alice = chain.new_account("alice")
    exchange = deploy(chain, artifact, *constructor_args, sender=alice)
    receipt = exchange.transact("deposit", 100, sender=alice)
    health = exchange.call("health", alice, 0)
"""

from __future__ import annotations

from typing import Any

from sim.chain.base import (
    CHAIN_ID,
    GAS_LIMIT,
    GENESIS_BLOCK_NUMBER,
    GENESIS_TIMESTAMP,
    MAX_CODE_SIZE,
    Artifact,
    Chain,
    ChainError,
    Event,
    Receipt,
    Reverted,
    address_from_label,
)
from sim.chain.compiler import CompileError, compile_contract, compile_project
from sim.chain.contract import Contract, at, decode_event, decode_revert_reason, deploy

BACKENDS = ("revm", "pyevm", "rpc")

__all__ = [
    "BACKENDS",
    "CHAIN_ID",
    "GAS_LIMIT",
    "GENESIS_BLOCK_NUMBER",
    "GENESIS_TIMESTAMP",
    "MAX_CODE_SIZE",
    "Artifact",
    "Chain",
    "ChainError",
    "CompileError",
    "Contract",
    "Event",
    "Receipt",
    "Reverted",
    "address_from_label",
    "at",
    "compile_contract",
    "compile_project",
    "decode_event",
    "decode_revert_reason",
    "deploy",
    "make_chain",
]


def make_chain(backend: str = "revm", rpc_url: str | None = None, **kw: Any) -> Chain:
    """A fresh chain on `backend` ("revm", "pyevm" or "rpc"; "rpc" needs `rpc_url`).

    Extra keyword arguments go to the backend's constructor (e.g. `timeout=` for rpc).
    Backends are imported on demand, so using one never loads the others."""
    if backend == "revm":
        from sim.chain.revm import RevmChain

        return RevmChain(**kw)
    if backend == "pyevm":
        from sim.chain.pyevm import PyEvmChain

        return PyEvmChain(**kw)
    if backend == "rpc":
        if not rpc_url:
            raise ValueError('backend "rpc" needs rpc_url, e.g. make_chain("rpc", rpc_url="http://127.0.0.1:8545")')
        from sim.chain.rpc import RpcChain

        return RpcChain(rpc_url, **kw)
    raise ValueError(f"unknown chain backend {backend!r}; expected one of: {', '.join(repr(b) for b in BACKENDS)}")
