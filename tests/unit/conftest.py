"""Fixtures for the contract unit tests: one deployment per module on revm, rolled back
after every test, named accounts, and a factory for funded traders."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sim.chain import Chain, make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig

# A market with visible price impact (skew_scale 10,000 ETH) and round numbers, so that
# hand-worked examples stay short; BTC is the second market for cross-margin tests. The
# liquidation limit is off here (with this skew scale it would allow 5 ETH a block):
# tests/unit/test_liquidation.py tests it on its own.
ETH = MarketConfig(name="ETH", initial_price=2000.0, skew_scale=10_000.0, max_oi=500.0, taker_fee=0.0005,
                   insurance_fee_share=0.2, min_position_notional=10.0, liquidation_limit_scalar=0.0)
BTC = MarketConfig(name="BTC", initial_price=30_000.0, skew_scale=100.0, max_oi=50.0, liquidation_limit_scalar=0.0)
CONFIG = ProtocolConfig(markets=(ETH, BTC), insurance_fund=10_000.0, vault_liquidity=2_000_000.0, reporters=1)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    c = make_chain("revm")
    yield c
    c.close()


@pytest.fixture(scope="module")
def deployed(chain: Chain) -> Protocol:
    return Protocol.deploy(chain, CONFIG)


@pytest.fixture
def protocol(deployed: Protocol) -> Iterator[Protocol]:
    snap = deployed.snapshot()
    yield deployed
    deployed.revert(snap)


@pytest.fixture(scope="module")
def alice(chain: Chain) -> str:
    return chain.new_account("alice")


@pytest.fixture(scope="module")
def bob(chain: Chain) -> str:
    return chain.new_account("bob")


@pytest.fixture(scope="module")
def carol(chain: Chain) -> str:
    return chain.new_account("carol")


@pytest.fixture(scope="module")
def keeper(chain: Chain) -> str:
    return chain.new_account("keeper")


@pytest.fixture(scope="module")
def lp(chain: Chain) -> str:
    return chain.new_account("lp")


@pytest.fixture(scope="module")
def owner(deployed: Protocol) -> str:
    return deployed.deployer


@pytest.fixture
def fund(protocol: Protocol) -> Callable[..., str]:
    """fund(account, collateral=10_000, subaccount=0): mint and deposit collateral."""

    def _fund(account: str, collateral: float = 10_000.0, subaccount: int = 0) -> str:
        protocol.mint(account, collateral)
        protocol.deposit(account, collateral, subaccount)
        return account

    return _fund


@pytest.fixture
def set_price(protocol: Protocol, chain: Chain) -> Callable[..., None]:
    """set_price(market, price): every reporter reports it now."""

    def _set(market: str, price: float) -> None:
        protocol.report_all(market, price)

    return _set
