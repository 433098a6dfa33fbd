"""Oracle: reporter median of fresh reports, max_age, min_reporters, the deviation guard with
its cool-down, the TWAP accumulator, and access control (DESIGN §4 Oracle)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.chain import Chain, Contract, compile_project, deploy
from sim.units import WAD
from tests.utils.asserts import reverts

# max_age 60 s, 2 reporters, 10% deviation, 300 s cool-down, 30 s spacing, the disputed band while invalid
FEED = (60, 2, WAD // 10, 300, 30, True, 0)


@pytest.fixture(scope="module")
def env(chain: Chain):
    owner = chain.new_account("oracle-owner")
    reporters = [chain.new_account(f"oracle-reporter-{i}") for i in range(4)]
    oracle = deploy(chain, compile_project()["Oracle"], sender=owner)
    for r in reporters:
        oracle.transact("set_reporter", r, True, sender=owner)
    oracle.transact("set_feed", 7, FEED, sender=owner)
    return oracle, owner, reporters


@pytest.fixture
def oracle(env, chain: Chain) -> Iterator[tuple[Contract, str, list[str]]]:
    snap = chain.snapshot()
    yield env
    chain.revert(snap)


def _report(oracle: Contract, reporters: list[str], prices: list[int]) -> None:
    for r, p in zip(reporters, prices):
        oracle.transact("report", 7, p * WAD, sender=r)


def test_median_needs_min_reporters(oracle, chain):
    o, _, reps = oracle
    _report(o, reps[:1], [100])
    assert o.call("latest", 7) == (0, 0, False)  # one fresh report, two needed
    _report(o, reps[1:2], [102])
    price, at, valid = o.call("latest", 7)
    assert (price, valid) == (101 * WAD, True)  # even count: mean of the middle two
    _report(o, reps[2:3], [200])
    assert o.call("median", 7) == (102 * WAD, 3)  # odd count: the middle one
    assert o.call("latest", 7)[0] == 102 * WAD


def test_stale_reports_drop_out(oracle, chain):
    o, _, reps = oracle
    _report(o, reps[:2], [100, 100])
    accepted_at = chain.timestamp
    chain.mine(61)
    assert o.call("latest", 7) == (100 * WAD, accepted_at, False)  # accepted price older than max_age
    _report(o, reps[:1], [105])
    assert o.call("median", 7) == (105 * WAD, 1)  # only one fresh report
    # too few fresh reports to accept: the last accepted price and its time stay, invalid
    assert o.call("latest", 7) == (100 * WAD, accepted_at, False)


def test_deviation_guard_and_cooldown(oracle, chain):
    """A 30% gap breaches the 10% guard: the feed goes invalid on the old price; if the new
    level persists for the 300 s cool-down it is accepted."""
    o, _, reps = oracle
    _report(o, reps[:2], [100, 100])
    receipt = o.transact("report", 7, 70 * WAD, sender=reps[0])
    o.transact("report", 7, 70 * WAD, sender=reps[1])
    assert [e.name for e in receipt.events] == ["PriceReported", "DeviationBreach"]  # median 85: -15%
    price, _, valid = o.call("latest", 7)
    assert (price, valid) == (100 * WAD, False)
    chain.mine(150)
    _report(o, reps[:2], [70, 70])
    assert o.call("latest", 7)[2] is False
    chain.mine(150)
    _report(o, reps[:2], [70, 70])
    assert o.call("latest", 7)[:3:2] == (70 * WAD, True)


def test_owner_can_clear_breach(oracle, chain):
    o, owner, reps = oracle
    _report(o, reps[:2], [100, 100])
    _report(o, reps[:2], [50, 50])
    assert o.call("latest", 7)[2] is False
    with reverts("ownable: caller is not the owner"):
        o.transact("clear_breach", 7, sender=reps[0])
    o.transact("clear_breach", 7, sender=owner)
    assert o.call("latest", 7)[:3:2] == (50 * WAD, True)


def test_small_moves_pass_the_guard(oracle, chain):
    o, _, reps = oracle
    _report(o, reps[:2], [100, 100])
    _report(o, reps[:2], [109, 109])
    assert o.call("latest", 7)[:3:2] == (109 * WAD, True)


def test_twap(oracle, chain):
    """100 for 300 s then 200 for 100 s: TWAP over 400 s = (100*300 + 200*100) / 400 = 125."""
    o, owner, reps = oracle
    o.transact("set_feed", 7, (60, 1, 0, 0, 0, True, 0), sender=owner)
    _report(o, reps[:1], [100])
    for _ in range(5):
        chain.mine(60)
        _report(o, reps[:1], [100])
    _report(o, reps[:1], [200])
    chain.mine(100)
    assert o.call("twap", 7, 400) == 125 * WAD
    assert o.call("twap", 7, 0) == 200 * WAD  # a zero window: the price since the newest observation


def test_reporter_rules(oracle, chain):
    o, owner, reps = oracle
    stranger = chain.new_account("stranger")
    with reverts("oracle: not a reporter"):
        o.transact("report", 7, WAD, sender=stranger)
    with reverts("oracle: unknown asset"):
        o.transact("report", 8, WAD, sender=reps[0])
    with reverts("oracle: zero price"):
        o.transact("report", 7, 0, sender=reps[0])
    with reverts("ownable: caller is not the owner"):
        o.transact("set_reporter", stranger, True, sender=stranger)
    with reverts("ownable: caller is not the owner"):
        o.transact("set_feed", 7, FEED, sender=stranger)
    with reverts("oracle: zero max_age"):
        o.transact("set_feed", 7, (0, 1, 0, 0, 0, True, 0), sender=owner)
    with reverts("oracle: bad min_reporters"):
        o.transact("set_feed", 7, (60, 17, 0, 0, 0, True, 0), sender=owner)
    o.transact("set_reporter", reps[0], False, sender=owner)
    assert o.call("is_reporter", reps[0]) is False
    with reverts("oracle: not a reporter"):
        o.transact("report", 7, WAD, sender=reps[0])


def test_price_band_while_a_breach_is_pending(oracle, chain):
    """While the feed is invalid, price_band spans the last accepted price and the fresh
    median (what the Exchange and the Vault settle against); valid, it is the price itself.
    With worse_price_when_invalid off it is the last price alone."""
    o, owner, reps = oracle
    _report(o, reps[:2], [100, 100])
    assert o.call("price_band", 7) == (100 * WAD, 100 * WAD, 100 * WAD, True)
    chain.mine(12)
    _report(o, reps[:2], [70, 70])
    assert o.call("price_band", 7) == (100 * WAD, 70 * WAD, 100 * WAD, False)
    o.transact("set_feed", 7, FEED[:5] + (False, 0), sender=owner)
    assert o.call("price_band", 7) == (100 * WAD, 100 * WAD, 100 * WAD, False)


def test_the_guard_compares_with_the_price_before_the_block(oracle, chain):
    """Inside one block, steps each within the guard of the last accepted price cannot walk
    past the guard of the price the block began with; the next block's reference is the new
    accepted price."""
    o, _, reps = oracle
    _report(o, reps[:2], [100, 100])
    chain.mine(12)
    _report(o, reps[:2], [108, 108])  # accepted: 8% from 100
    _report(o, reps[:2], [116, 116])  # 16% from 100, the block's reference: a breach
    price, _, valid = o.call("latest", 7)
    assert (price, valid) == (108 * WAD, False)
    chain.mine(12)
    _report(o, reps[:2], [108, 108])  # back within the guard of 108: accepted, valid again
    assert o.call("latest", 7)[:3:2] == (108 * WAD, True)


def test_a_breach_restarts_when_its_level_moves(oracle, chain):
    """Only a level that persisted for the cool-down is accepted: a median that moves beyond
    the guard from the breach's level starts the cool-down again."""
    o, _, reps = oracle
    _report(o, reps[:2], [100, 100])
    chain.mine(12)
    _report(o, reps[:2], [70, 70])  # breach at 70
    chain.mine(299)
    _report(o, reps[:2], [50, 50])  # a new level: the cool-down starts again
    chain.mine(1)
    _report(o, reps[:2], [50, 50])
    assert o.call("latest", 7)[2] is False  # 70 persisted 300 s, 50 only 1 s
    chain.mine(300)
    _report(o, reps[:2], [50, 50])
    assert o.call("latest", 7)[:3:2] == (50 * WAD, True)

