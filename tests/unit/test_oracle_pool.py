"""Oracle with a SpotPool: the pool as a feed's source (spot or TWAP) and as its fallback when
reporters go stale; the deviation guard, the breach and the disputed band on pool prices
(DESIGN §4 Oracle, SpotPool). Feeds without a pool are tests/unit/test_oracle.py's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sim.chain import Chain, Contract, compile_project, deploy
from tests.utils.asserts import reverts
from tests.utils.constants import USDC, WAD
from tests.utils.pools import PoolSet, deploy_pool

ASSET = 7
# max_age 60 s, 2 reporters, 10% deviation, 300 s cool-down, 30 s spacing, the disputed band while invalid
FEED = (60, 2, WAD // 10, 300, 30, True, 0)
ZERO = "0x" + "00" * 20


@dataclass(frozen=True)
class Env:
    oracle: Contract
    owner: str
    reporters: list[str]
    pools: PoolSet
    trader: str

    def source(self, window: int = 0, primary: bool = True) -> None:
        self.oracle.transact("set_source", ASSET, (self.pools.pool.address, window, primary), sender=self.owner)

    def report(self, *prices: float) -> None:
        for r, p in zip(self.reporters, prices):
            self.oracle.transact("report", ASSET, int(p * WAD), sender=r)

    def buy(self, usd: float) -> None:
        """Buy base on the pool with `usd` dollars (raises the spot price)."""
        self.pools.pool.transact("swap", False, int(usd * USDC), 0, sender=self.trader)

    def spot(self) -> int:
        return self.pools.pool.call("spot_price")


@pytest.fixture(scope="module")
def env(chain: Chain) -> Env:
    owner = chain.new_account("pool-oracle-owner")
    reporters = [chain.new_account(f"pool-oracle-reporter-{i}") for i in range(2)]
    oracle = deploy(chain, compile_project()["Oracle"], sender=owner)
    for r in reporters:
        oracle.transact("set_reporter", r, True, sender=owner)
    oracle.transact("set_feed", ASSET, FEED, sender=owner)
    pools = deploy_pool(chain, owner, 1_000, 2_000_000, spacing=60)  # spot 2,000
    trader = pools.fund(chain.new_account("pool-oracle-trader"), 0, 50_000_000 * USDC)
    chain.mine(12)
    return Env(oracle, owner, reporters, pools, trader)


@pytest.fixture
def e(env: Env, chain: Chain) -> Iterator[Env]:
    snap = chain.snapshot()
    yield env
    chain.revert(snap)


def test_a_feed_names_no_pool_by_default(e: Env):
    assert e.oracle.call("sources", ASSET) == (ZERO, 0, False)
    with reverts("oracle: no pool source"):
        e.oracle.transact("refresh", ASSET, sender=e.trader)
    e.report(2_000, 2_000)
    assert e.oracle.call("candidate", ASSET) == (2_000 * WAD, 2, True)


def test_pool_spot_as_the_source(e: Env, chain: Chain):
    """The pool replaces the reporters: reports are refused, anyone refreshes the feed from
    the pool's spot price, and the price goes stale without refreshes."""
    e.report(1_900, 1_900)
    e.source(primary=True)
    assert e.oracle.call("median", ASSET) == (0, 0)  # the reports are gone
    with reverts("oracle: priced by its pool"):
        e.report(2_000)
    receipt = e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert receipt.return_value is True
    accepted = [ev.args for ev in receipt.events if ev.name == "PriceAccepted"]
    assert accepted == [{"asset": ASSET, "price": 2_000 * WAD, "reporters": 0}]
    assert e.oracle.call("latest", ASSET) == (2_000 * WAD, chain.timestamp, True)
    chain.mine(12)
    e.buy(40_000)  # about +4%: within the guard
    moved = e.spot()
    assert e.oracle.call("latest", ASSET)[0] == 2_000 * WAD  # until someone refreshes
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert e.oracle.call("price_band", ASSET) == (moved, moved, moved, True)
    chain.mine(61)
    assert e.oracle.call("latest", ASSET)[2] is False  # nobody refreshed within max_age
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert e.oracle.call("latest", ASSET)[::2] == (moved, True)


def test_a_pump_on_the_pool_meets_the_deviation_guard(e: Env, chain: Chain):
    """Spot doubled in one block is a breach: the feed stays on its last price, invalid, and
    publishes the band up to the pumped price; a level held for the cool-down is accepted."""
    e.source(primary=True)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    chain.mine(12)
    e.buy(830_000)  # (2.83M / 2M)^2: about x2
    pumped = e.spot()
    assert pumped > 1.9 * 2_000 * WAD
    receipt = e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert [ev.name for ev in receipt.events] == ["DeviationBreach"]
    assert e.oracle.call("price_band", ASSET) == (2_000 * WAD, 2_000 * WAD, pumped, False)
    chain.mine(300)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert e.oracle.call("latest", ASSET)[::2] == (pumped, True)


def test_the_owner_can_clear_a_breach_at_the_pool_price(e: Env, chain: Chain):
    e.source(primary=True)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    chain.mine(12)
    e.buy(830_000)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert e.oracle.call("latest", ASSET)[2] is False
    e.oracle.transact("clear_breach", ASSET, sender=e.owner)
    assert e.oracle.call("latest", ASSET)[::2] == (e.spot(), True)


def test_a_twap_source_shrugs_off_a_short_pump(e: Env, chain: Chain):
    """The same x2 pump against a 30-minute TWAP source: held for one block, it moves the
    feed well inside the guard, so the feed stays valid near the true price."""
    e.source(window=1_800, primary=True)
    chain.mine(1_800)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert e.oracle.call("latest", ASSET)[::2] == (2_000 * WAD, True)
    e.buy(830_000)
    chain.mine(12)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    price, _, valid = e.oracle.call("latest", ASSET)
    assert valid and 2_000 * WAD < price < 2_000 * WAD * 1.02  # the pump's 12 s of 1,800
    assert e.spot() > 1.9 * 2_000 * WAD


def test_window_must_fit_the_pool_buffer(e: Env):
    capacity = e.pools.pool.call("twap_capacity")
    with reverts("oracle: window too long"):
        e.source(window=capacity + 1)
    e.source(window=capacity)
    assert e.oracle.call("sources", ASSET) == (e.pools.pool.address, capacity, True)
    e.oracle.transact("set_source", ASSET, (ZERO, 0, False), sender=e.owner)
    assert e.oracle.call("sources", ASSET) == (ZERO, 0, False)


def test_pool_as_fallback_when_reporters_go_stale(e: Env, chain: Chain):
    """Reporters rule while enough of them are fresh; once they are stale, the pool's price
    stands in (and is what the band shows); when they are back, their median rules again."""
    e.source(primary=False)
    e.report(2_000, 2_000)
    chain.mine(12)
    e.buy(60_000)  # the pool drifts to about 2,120
    drifted = e.spot()
    assert e.oracle.call("candidate", ASSET) == (2_000 * WAD, 2, True)
    assert e.oracle.transact("refresh", ASSET, sender=e.trader).return_value is False  # reporters fresh
    assert e.oracle.call("latest", ASSET)[::2] == (2_000 * WAD, True)
    chain.mine(61)  # the reporters go quiet
    assert e.oracle.call("candidate", ASSET) == (drifted, 0, True)
    assert e.oracle.call("price_band", ASSET) == (2_000 * WAD, 2_000 * WAD, drifted, False)
    receipt = e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert receipt.return_value is True
    assert [ev.args["reporters"] for ev in receipt.events if ev.name == "PriceAccepted"] == [0]
    assert e.oracle.call("latest", ASSET)[::2] == (drifted, True)
    # one reporter back is still too few: its report submits the pool's price
    chain.mine(12)
    e.report(2_050)
    assert e.oracle.call("latest", ASSET)[::2] == (drifted, True)
    e.oracle.transact("report", ASSET, 2_050 * WAD, sender=e.reporters[1])
    assert e.oracle.call("latest", ASSET)[::2] == (2_050 * WAD, True)


def test_without_a_fallback_stale_reporters_leave_the_feed_invalid(e: Env, chain: Chain):
    """The default, for contrast with the fallback: the same silence makes the feed invalid."""
    e.report(2_000, 2_000)
    chain.mine(61)
    assert e.oracle.call("candidate", ASSET) == (0, 0, False)
    assert e.oracle.call("latest", ASSET)[::2] == (2_000 * WAD, False)


def test_an_empty_pool_gives_no_price(e: Env, chain: Chain):
    """A fallback pool with no liquidity is as good as none: the feed stays invalid."""
    artifacts = compile_project()
    pool = deploy(chain, artifacts["SpotPool"], e.pools.base.address, e.pools.quote.address, 60, sender=e.owner)
    e.oracle.transact("set_source", ASSET, (pool.address, 0, False), sender=e.owner)
    e.report(2_000, 2_000)
    chain.mine(61)
    assert e.oracle.call("candidate", ASSET) == (0, 0, False)
    assert e.oracle.transact("refresh", ASSET, sender=e.trader).return_value is False
    assert e.oracle.call("price_band", ASSET) == (2_000 * WAD, 2_000 * WAD, 2_000 * WAD, False)


def test_a_twap_pumps_echo_is_never_accepted_as_a_breach_level(e: Env, chain: Chain):
    """Regression (the young-pool TWAP fix exposed it in mango-pump's defended side: $155k of
    bad debt): spot pumped elevenfold for one block and sold back leaves the 600-s TWAP level,
    about 20% up (beyond the 10% guard), for the rest of the window. With a 300-s breach
    timeout that level was accepted as the market's while spot had long come back. A breach
    at a TWAP's level is now accepted only after the window, by when the pump has left it:
    the feed never takes the echo and comes back valid at the true price. (In a pool with no
    trades at all the echo lasts longer: README, Security model.)"""
    e.source(window=600, primary=True)
    chain.mine(600)
    e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert e.oracle.call("latest", ASSET)[::2] == (2_000 * WAD, True)
    bought = e.pools.pool.transact("swap", False, 4_700_000 * USDC, 0, sender=e.trader).return_value
    assert e.spot() > 11 * 2_000 * WAD
    chain.mine(12)
    receipt = e.oracle.transact("refresh", ASSET, sender=e.trader)
    assert [ev.name for ev in receipt.events] == ["DeviationBreach"]  # 12 s of 600 at x11: +20%
    e.pools.pool.transact("swap", True, bought, 0, sender=e.trader)  # sold back in the same block
    for block in range(60):  # the echo: 600 s of a level TWAP, then the pump leaves the window
        chain.mine(12)
        e.buy(100)  # routine flow: the pool writes its observations
        receipt = e.oracle.transact("refresh", ASSET, sender=e.trader)
        assert "BreachCleared" not in [ev.name for ev in receipt.events], f"block {block}: the echo accepted"
        assert e.oracle.call("latest", ASSET)[0] < 2_000 * WAD * 1.01
    price, _, valid = e.oracle.call("latest", ASSET)
    assert valid and 2_000 * WAD <= price < 2_000 * WAD * 1.01  # the round trip's fees only
