"""The facade's one index of open positions and trigger orders (`sim.protocol.PositionIndex`):
it must agree with the chain at every step, and an idle account must cost no call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.chain import make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig

# A small skew scale: one long makes a large premium, so longs pay a high funding rate.
ETH = MarketConfig(name="ETH", initial_price=2000.0, skew_scale=1_000.0, max_oi=10_000.0,
                   liquidation_limit_scalar=0.0)  # liquidations in one block, as the index must follow


@pytest.fixture
def protocol() -> Iterator[Protocol]:
    chain = make_chain("revm")
    yield Protocol.deploy(chain, ProtocolConfig(markets=(ETH,), vault_liquidity=5_000_000.0, insurance_fund=100_000.0))
    chain.close()


def trader(protocol: Protocol, label: str, collateral: float = 10_000.0) -> str:
    account = protocol.chain.new_account(label)
    protocol.mint(account, collateral)
    protocol.deposit(account, collateral)
    return account


def count_calls(protocol: Protocol) -> list[int]:
    """A counter of the read-only calls made from now on."""
    chain, counter = protocol.chain, [0]
    call_raw = chain.call_raw

    def counting(to: str, data: bytes, sender: str | None = None) -> bytes:
        counter[0] += 1
        return call_raw(to, data, sender)

    chain.call_raw = counting  # type: ignore[method-assign]
    return counter


@pytest.mark.parametrize("side", [1, -1], ids=["long", "short"])
def test_funding_alone_makes_an_account_liquidatable_and_the_index_sees_it(protocol: Protocol, side: int) -> None:
    """The only position pays funding every hour and nothing else happens to it: no event
    about it invalidates the index's liquidation price, so only the funding bound can catch it."""
    long = trader(protocol, "funding-payer")
    protocol.trade(long, "ETH", side * 40.0)  # 8x; a premium of 4% the other way: it pays about 12% a day
    payer_events = 0
    for step in range(40):
        protocol.chain.mine(3600)
        protocol.report_all("ETH", 2000.0)
        cursor = protocol.chain.events_since(0)[1]
        found = protocol.liquidatable_accounts()
        assert found == protocol.scan_liquidatable(), f"step {step}"
        if found:
            break
        payer_events += sum(1 for e in protocol.chain.events_since(cursor)[0] if e.args.get("owner") == long)
    assert found == [(long, 0)], "funding drained it below maintenance within 40 hours"
    assert step > 3 and payer_events == 0  # it took several steps, and nothing but funding happened to it


def test_an_idle_account_costs_no_call(protocol: Protocol) -> None:
    idle = [trader(protocol, f"idle-{i}", 1_000.0) for i in range(20)]
    for i, account in enumerate(idle):
        protocol.trade(account, "ETH", 0.5 if i % 2 else -0.5)  # 1x, far from liquidation
    protocol.liquidatable_accounts()  # the first look reads each one's liquidation price
    for price in (2000.0, 1990.0, 2015.0, 2005.0, 1985.0):
        protocol.chain.mine(12)
        protocol.report_all("ETH", price)
        readings = {0: protocol.read_market(0)}
        calls = count_calls(protocol)
        assert protocol.liquidatable_accounts(readings) == []
        assert calls[0] == 0
    protocol.mint(idle[0], 10.0)
    protocol.deposit(idle[0], 10.0)  # an event about one account: only that one is read again
    readings = {0: protocol.read_market(0)}
    calls = count_calls(protocol)
    assert protocol.liquidatable_accounts(readings) == []
    assert calls[0] == 1


def test_sizes_and_bankruptcy_follow_liquidations(protocol: Protocol) -> None:
    victims = [trader(protocol, f"victim-{i}", 5_000.0) for i in range(3)]
    for account in victims:
        protocol.trade(account, "ETH", 15.0)  # 6x
    keeper = protocol.chain.new_account("keeper")
    protocol.report_all("ETH", 1700.0)  # -15%: under water
    for account in victims:
        protocol.liquidate(keeper, account, "ETH")
    for account in victims:
        on_chain = protocol.position(account, "ETH")
        assert protocol.position_size_wad(account, "ETH") == on_chain.size_wad
        bankrupt = protocol.exchange.call("accounts", account, 0)[3]
        assert ((account, 0) in protocol.bankrupt_accounts("ETH")) == bankrupt
    assert protocol.accounts_with_positions() == sorted(
        (a, 0) for a in victims if protocol.position(a, "ETH").size_wad != 0)


def test_trigger_orders_follow_the_contract(protocol: Protocol) -> None:
    account = trader(protocol, "stopped")
    protocol.trade(account, "ETH", 2.0)
    kept = protocol.place_trigger(account, "ETH", -1.0, 1900.0)
    cancelled = protocol.place_trigger(account, "ETH", -1.0, 1800.0)
    fired = protocol.place_trigger(account, "ETH", -1.0, 1950.0)
    protocol.cancel_trigger(account, cancelled)
    protocol.report_all("ETH", 1940.0)
    assert protocol.execute_trigger(protocol.chain.new_account("keeper"), fired)
    active = protocol.active_trigger_orders()
    assert sorted(active) == [kept]
    assert active[kept].size == -(10**18) and active[kept].trigger_price == 1900 * 10**18
    for order in (kept, cancelled, fired):
        assert protocol.trigger_order_active(order) == protocol.trigger_orders.call("orders", order)[-1]
