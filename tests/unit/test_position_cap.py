"""MAX_POSITIONS: a cross-margined subaccount holds at most 8 positions, so every health check
(a sum over its positions) has bounded gas (DESIGN §4 Accounts).

Nine markets here, all in median mark mode, the costliest mark (each position's mark reads
the oracle's TWAP): the ninth position reverts with its reason, and at the cap the
costliest actions that check health stay a small part of a block.
"""

from __future__ import annotations

import pytest

from sim.chain import GAS_LIMIT, Chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig
from sim.units import to_usdc
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_POSITIONS, MAX_UINT, WAD

MARKETS = tuple(MarketConfig(name=f"M{i}", initial_price=100.0, skew_scale=1_000_000.0, max_oi=1_000_000.0,
                             mark_mode="median", min_position_notional=0.0) for i in range(MAX_POSITIONS + 1))
UNITS = 100 * WAD  # each position: 100 units at $100, $10,000 of notional
BUDGET = GAS_LIMIT // 20  # 1.5M gas: what one health-checked action may cost at the cap


@pytest.fixture(scope="module")
def deployed(chain: Chain) -> Protocol:
    """This module's deployment (conftest's `protocol` rolls it back after every test)."""
    return Protocol.deploy(chain, ProtocolConfig(markets=MARKETS, insurance_fund=100_000.0,
                                                 vault_liquidity=10_000_000.0))


@pytest.fixture
def alice(protocol: Protocol) -> str:
    """$10,000 of collateral in a cross-margined subaccount (eight positions are 8x), and as
    much left in the wallet (so no withdrawal is the costlier first write to it)."""
    alice = protocol.chain.new_account("alice")
    protocol.mint(alice, 20_000)
    protocol.deposit(alice, 10_000)
    return alice


def _open(protocol: Protocol, alice: str, market: int) -> int:
    """A long of UNITS in `market`; its gas."""
    return protocol.exchange.transact("trade", 0, market, UNITS, MAX_UINT, sender=alice).gas_used


def test_the_ninth_position_reverts(protocol: Protocol, alice: str) -> None:
    for market in range(MAX_POSITIONS):
        _open(protocol, alice, market)
    assert protocol.account_markets(alice) == list(range(MAX_POSITIONS))
    with reverts("exchange: too many positions"):
        _open(protocol, alice, MAX_POSITIONS)
    protocol.exchange.transact("trade", 0, 3, -UNITS, 0, sender=alice)  # closing one frees its slot
    _open(protocol, alice, MAX_POSITIONS)
    assert sorted(protocol.account_markets(alice)) == [0, 1, 2, 4, 5, 6, 7, 8]


def test_health_checks_are_bounded_in_gas(protocol: Protocol, alice: str, chain: Chain) -> None:
    """A withdrawal checks health once: each position adds the same gas to it. At the cap,
    with funding pending in every market, a withdrawal, a trade that adds risk and a
    liquidation (which reads health three times) each cost under 1/20 of a block."""
    withdrawals = []
    for market in range(MAX_POSITIONS):
        _open(protocol, alice, market)
        withdrawals.append(protocol.exchange.transact("withdraw", 0, to_usdc(1), sender=alice).gas_used)
    steps = [b - a for a, b in zip(withdrawals, withdrawals[1:])]
    assert max(steps) - min(steps) <= min(steps) // 100, f"health's gas is not linear in positions: {steps}"

    chain.mine(3_600)  # every market has an hour of funding and EMA to bring up to date
    for market in range(len(MARKETS)):
        protocol.report_all(market, 100.0)
    withdraw = protocol.exchange.transact("withdraw", 0, to_usdc(1), sender=alice).gas_used
    trade = _open(protocol, alice, 0)
    for market in range(MAX_POSITIONS):
        protocol.report_all(market, 90.0)  # 8x long, -10%: below maintenance margin
    keeper = chain.new_account("keeper")
    liquidation = protocol.liquidator.transact("liquidate", alice, 0, 0, MAX_UINT, sender=keeper).gas_used
    assert protocol.exchange.call("positions", alice, 0, 0)[0] < 2 * UNITS  # it did liquidate
    for name, gas in (("withdrawal", withdraw), ("trade", trade), ("liquidation", liquidation)):
        assert gas < BUDGET, f"a {name} at {MAX_POSITIONS} positions costs {gas} gas, over {BUDGET}"
