"""Oracle: reporter median of fresh reports, max_age, min_reporters, the deviation guard with
its cool-down, the TWAP accumulator, and access control (DESIGN §4 Oracle)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.chain import Chain, Contract, compile_project, deploy
from sim.units import WAD
from tests.utils.asserts import reverts

FEED = (60, 2, WAD // 10, 300, 30)  # max_age 60 s, 2 reporters, 10% deviation, 300 s cool-down, 30 s spacing


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
    with reverts("oracle: caller is not the owner"):
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
    o.transact("set_feed", 7, (60, 1, 0, 0, 0), sender=owner)
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
    with reverts("oracle: caller is not the owner"):
        o.transact("set_reporter", stranger, True, sender=stranger)
    with reverts("oracle: caller is not the owner"):
        o.transact("set_feed", 7, FEED, sender=stranger)
    with reverts("oracle: zero max_age"):
        o.transact("set_feed", 7, (0, 1, 0, 0, 0), sender=owner)
    with reverts("oracle: bad min_reporters"):
        o.transact("set_feed", 7, (60, 17, 0, 0, 0), sender=owner)
    o.transact("set_reporter", reps[0], False, sender=owner)
    assert o.call("is_reporter", reps[0]) is False
    with reverts("oracle: not a reporter"):
        o.transact("report", 7, WAD, sender=reps[0])
