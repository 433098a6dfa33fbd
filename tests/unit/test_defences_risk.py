"""The Liquidator- and Oracle-side defences of issue 11, on the real contracts: ADL by PnL factor
(GMX v2), the feed's minimum price (a breach, never a clamp), and the liquidation limit over a
trailing window of seconds (Synthetix v3). Each test shows the defence binding, and the
behaviour without it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sim.agents.base import DeleverageByPnl
from sim.agents.keepers import AdlKeeper
from sim.chain import Chain, compile_project, deploy
from sim.protocol import Protocol
from sim.units import WAD, from_wad, to_wad
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT


def _set_liquidation(protocol: Protocol, **changes: object) -> None:
    """Change the ETH market's parameters (the Exchange's and the Liquidator's)."""
    protocol.set_market_params(protocol.config.markets[0].model_copy(update=changes))


# ---------------------------------------------------------------- ADL by PnL factor (GMX v2)

@pytest.fixture
def in_profit(protocol: Protocol, fund, alice, bob, carol, set_price) -> Protocol:
    """alice long 40 ETH and bob long 10 (carol short 5) at about 2000; ETH to 2500 leaves the
    longs about 25k in profit against a Vault of about 2M: a PnL factor a little above 1%."""
    fund(alice, 10_000)
    fund(bob, 10_000)
    fund(carol, 10_000)
    protocol.trade(alice, "ETH", 40)
    protocol.trade(bob, "ETH", 10)
    protocol.trade(carol, "ETH", -5)
    set_price("ETH", 2500)
    return protocol


def _factor(protocol: Protocol) -> float:
    return protocol.pnl_factor("ETH")


def test_adl_by_pnl_off_by_default(in_profit: Protocol, alice, keeper):
    """With adl_pnl_factor 0 (the default) nothing changes: a profitable position cannot be
    closed by anyone but its owner, however high the factor."""
    assert _factor(in_profit) > 0.01
    with reverts("liquidator: adl by pnl off"):
        in_profit.deleverage_by_pnl(keeper, alice, "ETH")
    assert in_profit.position_size(alice, "ETH") == pytest.approx(40)


def test_adl_by_pnl_needs_the_factor_exceeded(in_profit: Protocol, alice, keeper):
    """Below adl_pnl_factor, with no round under way, ADL by PnL refuses."""
    _set_liquidation(in_profit, adl_pnl_factor=0.5, adl_pnl_factor_after=0.2)
    with reverts("liquidator: pnl factor below adl"):
        in_profit.deleverage_by_pnl(keeper, alice, "ETH")


def test_adl_by_pnl_sheds_down_to_the_after_factor(in_profit: Protocol, alice, bob, keeper):
    """Above adl_pnl_factor, one close of the most profitable position takes the factor down to
    adl_pnl_factor_after and no further: the PnL above after x pool, at alice's PnL per unit,
    is what closes, against the Vault, at the close's fill price and with no fee. The round ends
    there: bob's position is not touched."""
    protocol = in_profit
    _set_liquidation(protocol, adl_pnl_factor=0.01, adl_pnl_factor_after=0.005)
    before = _factor(protocol)
    assert before > 0.01
    pnl, pool = (from_wad(v) for v in protocol.vault.call("market_pnl", 0))
    per_unit = protocol.position_pnl(alice, "ETH") / 40
    expected = (pnl - 0.005 * pool) / per_unit
    collateral = protocol.collateral(alice)
    receipt = protocol.liquidator.transact("deleverage_by_pnl", alice, 0, 0, MAX_UINT, sender=keeper)
    [event] = [e.args for e in receipt.events if e.name == "PnlDeleverage"]
    closed = from_wad(receipt.return_value)
    assert closed == pytest.approx(expected, rel=1e-6)
    assert protocol.position_size(alice, "ETH") == pytest.approx(40 - closed)
    after = _factor(protocol)
    assert from_wad(event["pnl_factor"]) == pytest.approx(before)
    assert from_wad(event["pnl_factor_after"]) == pytest.approx(after)
    # sized at the position's PnL per unit at mark: the close's impact takes it a little lower
    assert 0.0048 < after <= 0.005
    assert protocol.collateral(alice) > collateral + 0.9 * per_unit * closed  # the profit was realised
    assert not protocol.liquidator.call("adl_active", 0)
    with reverts("liquidator: pnl factor below adl"):
        protocol.deleverage_by_pnl(keeper, bob, "ETH")
    assert protocol.position_size(bob, "ETH") == pytest.approx(10)


def test_adl_by_pnl_round_continues_below_the_start_factor(in_profit: Protocol, alice, bob, carol, keeper):
    """GMX's isAdlEnabled: once a round has started it goes on while the factor is above the
    after-factor, even below the factor that started it; a losing position is never a target;
    the call that finds the factor down to the after-factor returns 0 and ends the round."""
    protocol = in_profit
    _set_liquidation(protocol, adl_pnl_factor=0.01, adl_pnl_factor_after=0.002)
    assert protocol.deleverage_by_pnl(keeper, alice, "ETH", max_size=20) == pytest.approx(20)
    middle = _factor(protocol)
    assert 0.002 < middle < 0.01 and protocol.liquidator.call("adl_active", 0)
    with reverts("liquidator: target not profitable"):
        protocol.deleverage_by_pnl(keeper, carol, "ETH")
    assert protocol.deleverage_by_pnl(keeper, bob, "ETH") == pytest.approx(10)  # all of bob's
    assert _factor(protocol) < middle
    assert protocol.deleverage_by_pnl(keeper, alice, "ETH") > 0
    assert _factor(protocol) <= 0.002
    assert not protocol.liquidator.call("adl_active", 0)  # the close that got there ended the round
    with reverts("liquidator: pnl factor below adl"):
        protocol.deleverage_by_pnl(keeper, alice, "ETH")


def test_adl_by_pnl_round_ends_when_the_price_does_it(in_profit: Protocol, alice, keeper, set_price):
    """A round under way whose factor the market itself brings down to the after-factor ends
    at the next call, which closes nothing."""
    protocol = in_profit
    _set_liquidation(protocol, adl_pnl_factor=0.01, adl_pnl_factor_after=0.002)
    protocol.deleverage_by_pnl(keeper, alice, "ETH", max_size=5)
    assert protocol.liquidator.call("adl_active", 0)
    set_price("ETH", 2010)
    assert _factor(protocol) <= 0.002
    assert protocol.deleverage_by_pnl(keeper, alice, "ETH") == 0
    assert not protocol.liquidator.call("adl_active", 0)
    assert protocol.position_size(alice, "ETH") == pytest.approx(35)


def test_adl_keeper_closes_the_most_profitable_first(in_profit: Protocol, alice, bob, keeper):
    """The ADL keeper agent, where ADL by PnL is on, queues the most profitable positions
    first, as many as cover the PnL to shed; executed, they bring the factor to the
    after-factor. Off, it queues nothing."""
    protocol = in_profit
    ctx = SimpleNamespace(protocol=protocol)
    assert AdlKeeper._by_pnl(ctx, "ETH", 10) == []
    _set_liquidation(protocol, adl_pnl_factor=0.01, adl_pnl_factor_after=0.001)
    actions = AdlKeeper._by_pnl(ctx, "ETH", 10)
    assert actions == [DeleverageByPnl((alice, 0), "ETH"), DeleverageByPnl((bob, 0), "ETH")]
    for action in actions:
        action.execute(protocol, keeper)
    assert _factor(protocol) <= 0.001 + 1e-12
    assert protocol.position_size(alice, "ETH") == 0
    assert 0 < protocol.position_size(bob, "ETH") < 10


# ---------------------------------------------------------------- the feed's minimum price

@pytest.fixture
def feed(chain: Chain):
    """An Oracle of its own: one reporter, no deviation guard, a 300 s breach timeout."""
    snap = chain.snapshot()
    owner = chain.new_account("floor-owner")
    reporter = chain.new_account("floor-reporter")
    oracle = deploy(chain, compile_project()["Oracle"], sender=owner)
    oracle.transact("set_reporter", reporter, True, sender=owner)
    yield SimpleNamespace(oracle=oracle, owner=owner, reporter=reporter,
                          configure=lambda floor: oracle.transact("set_feed", 7, (60, 1, 0, 300, 30, True, floor * WAD),
                                                                  sender=owner),
                          report=lambda price: oracle.transact("report", 7, to_wad(price), sender=reporter))
    chain.revert(snap)


def test_min_price_off_accepts_any_price(feed, chain: Chain):
    """min_price 0: a collapse to $0.05 is accepted, and the feed stays valid."""
    feed.configure(0)
    feed.report(80)
    feed.report(0.05)
    assert feed.oracle.call("latest", 7)[::2] == (to_wad(0.05), True)


def test_min_price_breaches_and_never_clamps(feed, chain: Chain):
    """A median below the floor makes the feed invalid: the price stays the last accepted one
    (not the floor, as Chainlink's minAnswer would clamp it, nor the median), no breach timeout
    accepts it, and the owner cannot force it through. A median back at or above the floor is
    accepted again."""
    feed.configure(1)
    feed.report(80)
    receipt = feed.report(0.05)
    [event] = [e.args for e in receipt.events if e.name == "MinPriceBreach"]
    assert (event["median"], event["min_price"]) == (to_wad(0.05), WAD)
    assert feed.oracle.call("latest", 7)[::2] == (80 * WAD, False)
    band = feed.oracle.call("price_band", 7)
    assert band == (80 * WAD, to_wad(0.05), 80 * WAD, False)  # value leaves at the worse end, not at $1
    chain.mine(301)
    feed.report(0.05)
    chain.mine(301)
    feed.report(0.05)
    assert feed.oracle.call("latest", 7)[::2] == (80 * WAD, False)  # the timeout does not accept it
    with reverts("oracle: below min price"):
        feed.oracle.transact("clear_breach", 7, sender=feed.owner)
    feed.report(1.5)
    assert feed.oracle.call("latest", 7)[::2] == (to_wad(1.5), True)


def test_min_price_guard_stops_trading_on_the_market(chain: Chain, alice, bob):
    """Deployed through the facade (min_price_fraction of the first price), the guard makes a
    crash below the floor invalidate the market: no new risk at a price the feed will not
    vouch for. Without it, the crash price is traded."""
    from tests.unit.conftest import CONFIG

    for fraction, tradable in ((0.0, True), (0.01, False)):
        snap = chain.snapshot()
        eth = CONFIG.markets[0].model_copy(update={"min_price_fraction": fraction, "max_oi": 1_000_000.0})
        protocol = Protocol.deploy(chain, CONFIG.model_copy(update={"markets": (eth,)}))
        assert protocol.oracle.call("feeds", 0)[-1] == to_wad(fraction * 2000)
        protocol.mint(alice, 10_000)
        protocol.deposit(alice, 10_000)
        protocol.report_all("ETH", 10)  # -99.5%, below a 1% floor ($20)
        assert protocol.exchange.call("index_price", 0)[1] is tradable
        if tradable:
            protocol.trade(alice, "ETH", 100)
            assert protocol.position_size(alice, "ETH") == pytest.approx(100)
        else:
            with reverts("exchange: oracle invalid"):
                protocol.trade(alice, "ETH", 100)
        chain.revert(snap)


# ---------------------------------------------------------------- the liquidation limit's window

@pytest.mark.parametrize("window, after_one_block", [(0, True), (12, True), (60, False)])
def test_liquidation_limit_window(chain: Chain, protocol: Protocol, fund, alice, bob, keeper, set_price,
                                  window: int, after_one_block: bool):
    """The liquidation limit (after Synthetix's): a market closes at most scalar x taker_fee x
    skew_scale base units by liquidation (here 2 x 0.05% x 10,000 = 10 ETH), so a keeper trading
    around a liquidation cannot earn more from the skew it moves than its round trip's fees; the
    rest waits. The limit holds over a trailing window of
    liquidation_window seconds, as Synthetix v3 sums the last maxSecondsInLiquidationWindow:
    0 (today's per-block limit) or one block's 12 s frees it in the next block; 60 s keeps it
    spent until 60 s have passed."""
    _set_liquidation(protocol, liquidation_limit_scalar=2.0, liquidation_window=window)
    fund(alice, 10_000)
    fund(bob, 10_000)
    protocol.trade(alice, "ETH", 45)
    protocol.trade(bob, "ETH", 45)
    set_price("ETH", 1850)
    assert protocol.liquidate(keeper, alice, "ETH") == pytest.approx(10)
    with reverts("liquidator: limit reached"):
        protocol.liquidate(keeper, bob, "ETH")
    chain.mine(12)
    set_price("ETH", 1850)
    if after_one_block:
        assert protocol.liquidate(keeper, bob, "ETH") == pytest.approx(10)
        return
    with reverts("liquidator: limit reached"):
        protocol.liquidate(keeper, bob, "ETH")
    chain.mine(48)
    set_price("ETH", 1850)
    assert protocol.liquidate(keeper, bob, "ETH") == pytest.approx(10)


def test_liquidation_window_counts_each_block(chain: Chain, protocol: Protocol, fund, alice, keeper, set_price):
    """Within a 60 s window the limit is shared by the blocks in it: 4 ETH in one block leaves
    6 for the next, and the first block's 4 come back once it is 60 s old."""
    _set_liquidation(protocol, liquidation_limit_scalar=2.0, liquidation_window=60)
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1850)
    assert protocol.liquidate(keeper, alice, "ETH", max_size=4) == pytest.approx(4)
    chain.mine(30)
    set_price("ETH", 1850)
    assert protocol.liquidate(keeper, alice, "ETH") == pytest.approx(6)
    chain.mine(30)  # the first block is now 60 s old: its 4 are free again, the 6 are not
    set_price("ETH", 1850)
    assert protocol.liquidate(keeper, alice, "ETH") == pytest.approx(4)


def test_liquidation_window_errs_strict_when_its_ring_is_full(chain: Chain, protocol: Protocol, fund, alice, keeper,
                                                              set_price):
    """The Liquidator remembers 16 blocks per market: a 17th block with liquidations inside the
    window carries the oldest block's count into its own instead of forgetting it, so the
    window's capacity is never overstated (10 ETH less the 17 x 0.1 closed, not less 16 x 0.1)."""
    _set_liquidation(protocol, liquidation_limit_scalar=2.0, liquidation_window=1_000)
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    for _ in range(17):
        chain.mine(1)
        set_price("ETH", 1850)
        assert protocol.liquidate(keeper, alice, "ETH", max_size=0.1) == pytest.approx(0.1)
    chain.mine(1)
    set_price("ETH", 1850)
    assert protocol.liquidate(keeper, alice, "ETH") == pytest.approx(10 - 1.7)
