"""SpotPool: constant-product swaps against x*y=k, the 0.3% fee, liquidity shares, and the
cumulative-price TWAP, including a pump that moves spot a lot but a long TWAP little
(DESIGN §4 SpotPool). Bad inputs are in tests/unit/test_bad_inputs.py's catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from math import isqrt

import pytest

from sim.chain import Chain, compile_project, deploy
from tests.utils.asserts import reverts
from tests.utils.constants import PRECISION, USDC, WAD
from tests.utils.pools import PoolSet, deploy_pool

FEE_BPS, BPS = 30, 10_000
ETH = WAD  # one whole base token
BLOCK = 12  # seconds


@pytest.fixture(scope="module")
def env(chain: Chain) -> tuple[PoolSet, str]:
    """1,000 base tokens against 2,000,000 USD: spot 2,000; a trader with plenty of both."""
    pools = deploy_pool(chain, chain.new_account("pool-seeder"), 1_000, 2_000_000, spacing=60)
    trader = pools.fund(chain.new_account("pool-trader"), 10_000 * ETH, 100_000_000 * USDC)
    chain.mine(BLOCK)
    return pools, trader


@pytest.fixture
def world(env, chain: Chain) -> Iterator[tuple[PoolSet, str]]:
    snap = chain.snapshot()
    yield env
    chain.revert(snap)


def expected_out(amount_in: int, r_in: int, r_out: int) -> int:
    """x*y=k with the fee taken off the input, rounded down (Uniswap v2's getAmountOut)."""
    in_after_fee = amount_in * (BPS - FEE_BPS)
    return in_after_fee * r_out // (r_in * BPS + in_after_fee)


def spot(pools: PoolSet) -> int:
    rb, rq = pools.reserves()
    return rq * PRECISION * WAD // rb


def test_seeding_sets_the_price_and_locks_minimum_shares(world):
    pools, _ = world
    p = pools.pool
    assert pools.reserves() == (1_000 * ETH, 2_000_000 * USDC)
    assert p.call("spot_price") == 2_000 * WAD
    total = isqrt(1_000 * ETH * 2_000_000 * USDC)
    assert p.call("total_shares") == total
    assert p.call("shares", pools.seeder) == total - p.call("MIN_SHARES")
    assert (p.call("BASE_PRECISION"), p.call("QUOTE_PRECISION")) == (1, PRECISION)


@pytest.mark.parametrize("base_in, amount_in", [(True, 10 * ETH), (False, 50_000 * USDC), (True, 1), (False, 1)])
def test_swap_follows_constant_product_with_fee(world, base_in, amount_in):
    pools, trader = world
    p = pools.pool
    rb, rq = pools.reserves()
    r_in, r_out = (rb, rq) if base_in else (rq, rb)
    want = expected_out(amount_in, r_in, r_out)
    sold, bought = (pools.base, pools.quote) if base_in else (pools.quote, pools.base)
    before = (sold.call("balanceOf", trader), bought.call("balanceOf", trader))
    assert p.call("get_amount_out", base_in, amount_in) == want
    if want == 0:
        with reverts("pool: zero output"):
            p.transact("swap", base_in, amount_in, 0, sender=trader)
        return
    receipt = p.transact("swap", base_in, amount_in, want, sender=trader)
    assert receipt.return_value == want
    assert (sold.call("balanceOf", trader), bought.call("balanceOf", trader)) == (before[0] - amount_in, before[1] + want)
    new_in, new_out = r_in + amount_in, r_out - want
    assert pools.reserves() == ((new_in, new_out) if base_in else (new_out, new_in))
    assert new_in * new_out >= r_in * r_out  # k never falls: the fee and the rounding stay in the pool
    # the token balances are the reserves: nothing is created or lost
    assert (pools.base.call("balanceOf", p.address), pools.quote.call("balanceOf", p.address)) == pools.reserves()
    event = receipt.events[-1]
    assert (event.name, event.args["amount_out"], event.args["price"]) == ("Swap", want, spot(pools))


def test_fee_is_three_tenths_of_a_percent_of_the_input(world):
    """A tiny swap pays the spot price less 0.3%; a round trip of a tenth of the pool loses
    between one and two fees; what the trader loses stays in the pool."""
    pools, trader = world
    p = pools.pool
    rb, rq = pools.reserves()
    small = 10**15  # a thousandth of a token: the curve moves 1e-6, rounding 5e-7
    ratio = p.call("get_amount_out", True, small) / (small * rq / rb)
    assert abs(ratio - 0.997) < 3e-6, ratio
    big = 100 * ETH
    quote_out = p.transact("swap", True, big, 0, sender=trader).return_value
    assert quote_out < big * rq // (rb + big)  # less than the fee-free x*y=k answer
    base_back = p.transact("swap", False, quote_out, 0, sender=trader).return_value
    assert base_back == expected_out(quote_out, rq - quote_out, rb + big)
    loss = 1 - base_back / big
    # between one fee and two: the first fee, kept in the pool, lowers the price it buys back at
    assert 0.003 < loss < 1 - 0.997**2, loss
    rb2, rq2 = pools.reserves()
    assert rb2 == rb + big - base_back and rq2 == rq  # what the trader lost stayed in the pool


def test_liquidity_is_added_at_the_pool_ratio_and_removed_pro_rata(world, chain):
    pools, trader = world
    p = pools.pool
    lp = pools.fund(chain.new_account("pool-lp"), 100 * ETH, 1_000_000 * USDC)
    total = p.call("total_shares")
    rb, rq = pools.reserves()
    # offers 100 ETH and 1M USD at a 2,000 price: the ETH binds, 200,000 USD is taken
    minted = p.transact("add_liquidity", 100 * ETH, 1_000_000 * USDC, 0, sender=lp).return_value
    assert minted == 100 * ETH * total // rb
    taken_quote = 1_000_000 * USDC - pools.quote.call("balanceOf", lp)
    assert taken_quote == -(-minted * rq // total)  # rounded up for the pool
    assert abs(taken_quote - 200_000 * USDC) <= 1
    assert abs(p.call("spot_price") - 2_000 * WAD) <= 2_000 * WAD // 10**12  # the round-up only
    # trading fees accrue to the shares
    for _ in range(5):
        out = p.transact("swap", True, 50 * ETH, 0, sender=trader).return_value
        p.transact("swap", False, out, 0, sender=trader)
    rb, rq = pools.reserves()
    total = p.call("total_shares")
    base, quote = p.transact("remove_liquidity", minted, 0, 0, sender=lp).return_value
    assert (base, quote) == (minted * rb // total, minted * rq // total)
    assert base * quote > 100 * ETH * taken_quote  # more k than put in: the fees
    assert p.call("shares", lp) == 0


def test_twap_weighs_each_price_by_the_time_it_held(world, chain):
    """2,000 for 600 s, then a swap, then its price for 600 s: the 600 s TWAP is the new
    price; the 1,200 s TWAP is the mean of the two."""
    pools, trader = world
    p = pools.pool
    start = p.call("observations", 0)[1]
    chain.set_timestamp(start + 600)
    p.transact("swap", False, 200_000 * USDC, 0, sender=trader)
    moved = p.call("spot_price")
    assert moved > 2_300 * WAD
    chain.mine(600)
    assert p.call("twap", 600) == moved
    assert p.call("twap", 1_200) == (2_000 * WAD * 600 + moved * 600) // 1_200
    # a window longer than the pool's life: the time before its seeding counts at the seeding price
    assert p.call("twap", 10**6) == (2_000 * WAD * 600 + moved * 600 + 2_000 * WAD * (10**6 - 1_200)) // 10**6


def test_a_young_pools_twap_has_the_whole_windows_inertia(world, chain):
    """Regression (found by `perpsim attack` on tests/sim/data/attack-spot.toml): a pool a
    minute old, pumped for one 12-s block, moved its 600-s TWAP by 12/72 of the pump (the
    average ran from the seeding only), 8% on a 3.4M long, paid $221,764 with every defence
    but the open-interest cap on. The time before the seeding now counts at the seeding
    price, so the pump weighs 12/600 of the window, as it would in an old pool."""
    pools, trader = world
    p = pools.pool
    start = p.call("seeded_at")
    assert start == p.call("observations", 0)[1] and p.call("seed_price") == 2_000 * WAD
    chain.set_timestamp(start + 60)
    p.transact("swap", False, 1_000_000 * USDC, 0, sender=trader)
    pumped = p.call("spot_price")
    assert pumped > 2 * 2_000 * WAD
    chain.mine(12)
    twap = p.call("twap", 600)
    assert twap == (2_000 * WAD * 60 + pumped * 12 + 2_000 * WAD * (600 - 72)) // 600
    assert twap < 2_000 * WAD + (pumped - 2_000 * WAD) * 12 // 600 + 1
    unpadded = (2_000 * WAD * 60 + pumped * 12) // 72  # what it read before
    assert unpadded - 2_000 * WAD > 8 * (twap - 2_000 * WAD)  # 600 / 72 times the move


def test_trades_inside_the_current_block_carry_no_weight(world, chain):
    """A pump and its unwind within one block leave the TWAP where it was, and so does a
    pump still open in the block where it happened."""
    pools, trader = world
    p = pools.pool
    chain.mine(600)
    before = p.call("twap", 600)
    out = p.transact("swap", False, 3_000_000 * USDC, 0, sender=trader).return_value
    assert p.call("spot_price") > 5 * 2_000 * WAD
    assert p.call("twap", 600) == before
    p.transact("swap", True, out, 0, sender=trader)
    chain.mine(600)
    assert abs(p.call("twap", 600) - 2_000 * WAD) < 2_000 * WAD // 100  # the round trip's fees only


def test_pump_moves_spot_a_lot_but_a_long_twap_little(world, chain):
    """An hour at 2,000 with routine trades, then a buyer spends 2M USD over five blocks (a
    Mango-style pump) and holds for a minute: spot more than doubles, the hour's TWAP moves
    a few percent."""
    pools, trader = world
    p = pools.pool
    for _ in range(60):  # an hour of small two-way flow, a block every minute
        chain.mine(60)
        out = p.transact("swap", True, ETH // 10, 0, sender=trader).return_value
        p.transact("swap", False, out, 0, sender=trader)
    for _ in range(5):
        chain.mine(BLOCK)
        p.transact("swap", False, 400_000 * USDC, 0, sender=trader)
    chain.mine(60)
    spot_now, hour, five_minutes = p.call("spot_price"), p.call("twap", 3_600), p.call("twap", 300)
    assert spot_now > 3.9 * 2_000 * WAD  # (2M + 2M)^2 / 2M / 1000 = 8,000, less the fees
    assert hour < 2_000 * WAD * 1.10
    assert five_minutes > hour  # the shorter the window, the more of the pump it holds
    assert p.call("twap_capacity") == 63 * 60


def test_observations_are_spaced_and_the_ring_wraps(world, chain):
    pools, trader = world
    p = pools.pool
    for i in range(140):
        chain.mine(30)  # half the spacing: one observation every other block, 70 in all
        p.transact("swap", i % 2 == 0, ETH // 10 if i % 2 == 0 else 200 * USDC, 0, sender=trader)
    stamps = [p.call("observations", i)[1] for i in range(64)]
    assert all(s > 0 for s in stamps)
    ordered = sorted(stamps)
    assert all(b - a >= 60 for a, b in zip(ordered, ordered[1:]))
    newest = p.call("observation_index")
    assert stamps[newest] == max(stamps)
    # the buffer keeps 63 spacings: a longer window falls back to the oldest observation
    assert p.call("twap", 10**6) == p.call("twap", chain.timestamp - min(stamps))


def test_empty_pool_reads_zero_and_refuses_swaps(chain):
    owner = chain.new_account("empty-pool-owner")
    artifacts = compile_project()
    base = deploy(chain, artifacts["MockAsset"], sender=owner)
    quote = deploy(chain, artifacts["MockUSDC"], sender=owner)
    pool = deploy(chain, artifacts["SpotPool"], base.address, quote.address, 60, sender=owner)
    assert (pool.call("spot_price"), pool.call("twap", 600), pool.call("get_amount_out", True, ETH)) == (0, 0, 0)
    with reverts("pool: no liquidity"):
        pool.transact("swap", True, ETH, 0, sender=owner)
    base.transact("mint", owner, ETH, sender=owner)
    quote.transact("mint", owner, USDC, sender=owner)
    with reverts("pool: too little liquidity"):
        pool.transact("add_liquidity", 1_000, 1_000, 0, sender=owner)


def test_constructor_refuses_bad_tokens_and_spacing(chain):
    owner = chain.new_account("pool-deployer")
    artifacts = compile_project()
    quote = deploy(chain, artifacts["MockUSDC"], sender=owner)
    base = deploy(chain, artifacts["MockAsset"], sender=owner)
    zero = "0x" + "00" * 20
    for args, reason in (((zero, quote.address, 60), "pool: zero token"),
                         ((quote.address, quote.address, 60), "pool: same token"),
                         ((base.address, quote.address, 0), "pool: bad spacing"),
                         ((base.address, quote.address, 10**9 + 1), "pool: bad spacing")):
        with reverts(reason):
            deploy(chain, artifacts["SpotPool"], *args, sender=owner)
