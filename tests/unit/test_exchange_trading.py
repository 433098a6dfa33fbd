"""Exchange: trades that open, increase, reduce, flip and close; the fill-price formula;
fees; limit prices; open-interest caps; mark modes; reduce-only and paused markets."""

from __future__ import annotations

import pytest

from sim.protocol import ROLES, Protocol
from sim.units import WAD, to_wad
from tests.utils.asserts import reverts
from tests.utils.constants import LN2, PRECISION, USDC


def test_fill_price_formula_hand_worked(protocol: Protocol, fund, alice, bob):
    """SIP-279: fill = index * (1 + (premium_before + premium_after) / 2), premium = skew / skew_scale.

    ETH: index 2000, skew_scale 10,000.
    - alice buys 10 from skew 0: premiums 0 and 0.001, fill = 2000 * 1.0005 = 2001.
    - bob sells 4 from skew 10: premiums 0.001 and 0.0006, fill = 2000 * 1.0008 = 2001.6
      (selling into a long skew earns the premium).
    """
    fund(alice)
    fund(bob)
    assert protocol.lens.call("fill_price", 0, to_wad(10)) == 2001 * WAD
    assert protocol.trade(alice, "ETH", 10) == 2001.0
    assert protocol.lens.call("fill_price", 0, -to_wad(4)) == 20016 * WAD // 10
    assert protocol.trade(bob, "ETH", -4) == 2001.6


def test_fill_price_rounds_against_the_trader(protocol: Protocol):
    """index * (2 * skew + size) / (2 * skew_scale) with a remainder: a buy rounds up, a sell down.
    size = 1 wei: 2000e18 * 1 / 2e22 = 0.1 wei -> a buy pays index + 1 wei, a sell gets index - 1 wei."""
    ex = protocol.exchange
    assert protocol.lens.call("fill_price", 0, 1) == 2000 * WAD + 1
    assert protocol.lens.call("fill_price", 0, -1) == 2000 * WAD - 1


def test_taker_fee_split_between_vault_and_insurance(protocol: Protocol, fund, alice):
    """Fee = 0.05% of notional = 10 * 2001 * 0.0005 = 10.005 USD; 20% (2.001) to the fund, 8.004 to the Vault."""
    fund(alice)
    vault_before = protocol.usdc.call("balanceOf", protocol.vault.address)
    fund_before = protocol.usdc.call("balanceOf", protocol.insurance_fund.address)
    receipt = protocol.exchange.transact("trade", 0, 0, to_wad(10), to_wad(2100), sender=alice)
    trade = [e for e in receipt.events if e.name == "Trade"][0]
    assert trade.args["fee"] == 10_005_000
    assert protocol.usdc.call("balanceOf", protocol.insurance_fund.address) - fund_before == 2_001_000
    assert protocol.usdc.call("balanceOf", protocol.vault.address) - vault_before == 8_004_000
    assert protocol.collateral(alice) == pytest.approx(10_000 - 10.005)


def test_open_increase_reduce_flip_close(protocol: Protocol, fund, alice, set_price):
    """Cost basis and realised PnL through a position's life, at a constant index of 2000
    (skew impact only): the entry price is the size-weighted average fill."""
    fund(alice, 50_000)
    ex = protocol.exchange
    f1 = protocol.trade(alice, "ETH", 10)  # open: 2001
    f2 = protocol.trade(alice, "ETH", 10)  # increase from skew 10: 2000 * (1 + 0.0015) = 2003
    assert (f1, f2) == (2001.0, 2003.0)
    pos = protocol.position(alice, "ETH")
    assert pos.size == 20 and pos.entry_price == pytest.approx(2002.0)

    # reduce 5 from skew 20: 2000 * (1 + (0.002 + 0.0015)/2) = 2003.5; realised = 5 * (2003.5 - 2002) = 7.5
    receipt = ex.transact("trade", 0, 0, -to_wad(5), 0, sender=alice)
    trade = [e for e in receipt.events if e.name == "Trade"][0]
    assert trade.args["fill_price"] == 20035 * WAD // 10
    assert trade.args["realized_pnl"] == 75 * WAD // 10
    assert protocol.position(alice, "ETH").size == 15
    assert protocol.position(alice, "ETH").entry_price == pytest.approx(2002.0)

    # flip: sell 25 from skew 15 -> skew -10: premiums 0.0015 and -0.001, fill = 2000 * 1.00025 = 2000.5
    # closes 15 (realised 15 * (2000.5 - 2002) = -22.5) and opens 10 short at 2000.5
    receipt = ex.transact("trade", 0, 0, -to_wad(25), 0, sender=alice)
    trade = [e for e in receipt.events if e.name == "Trade"][0]
    assert trade.args["fill_price"] == 20005 * WAD // 10
    assert trade.args["realized_pnl"] == -225 * WAD // 10
    pos = protocol.position(alice, "ETH")
    assert pos.size == -10 and pos.entry_price == pytest.approx(2000.5)
    assert protocol.account_markets(alice) == [0]

    # close: buy 10 from skew -10: premiums -0.001 and 0, fill = 1999; realised 10 * (2000.5 - 1999) = 15
    assert protocol.close_position(alice, "ETH") == 1999.0
    assert protocol.position(alice, "ETH").size == 0
    assert protocol.account_markets(alice) == []
    assert protocol.open_interest("ETH") == (0.0, 0.0)


def test_limit_price(protocol: Protocol, fund, alice):
    fund(alice)
    with reverts("exchange: price above limit"):
        protocol.exchange.transact("trade", 0, 0, to_wad(10), 2001 * WAD - 1, sender=alice)
    protocol.exchange.transact("trade", 0, 0, to_wad(10), 2001 * WAD, sender=alice)
    with reverts("exchange: price below limit"):
        protocol.exchange.transact("trade", 0, 0, -to_wad(10), 2001 * WAD + 1, sender=alice)


def test_zero_size_and_unknown_market(protocol: Protocol, fund, alice):
    fund(alice)
    with reverts("exchange: zero size"):
        protocol.exchange.transact("trade", 0, 0, 0, 0, sender=alice)
    with reverts("exchange: unknown market"):
        protocol.exchange.transact("trade", 0, 7, to_wad(1), to_wad(3000), sender=alice)


def test_initial_margin_on_risk_increase(protocol: Protocol, fund, alice):
    """10,000 USD at imf 10% carries about 100,000 USD of notional: 45 ETH at ~2004.5 does, 60 does not."""
    fund(alice, 10_000)
    with reverts("exchange: below initial margin"):
        protocol.trade(alice, "ETH", 60)
    protocol.trade(alice, "ETH", 45)
    h = protocol.health(alice)
    assert h.equity >= h.initial_margin


def test_reduction_allowed_below_initial_margin(protocol: Protocol, fund, alice, set_price):
    """A trade that only reduces risk is allowed even when the account is under initial margin."""
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 45)
    set_price("ETH", 1900)
    h = protocol.health(alice)
    assert h.equity < h.initial_margin
    with reverts("exchange: below initial margin"):
        protocol.trade(alice, "ETH", 1)
    protocol.trade(alice, "ETH", -5)
    assert protocol.position(alice, "ETH").size == 40


def test_open_interest_cap(protocol: Protocol, fund, alice, bob):
    """max_oi is 500 ETH per side; reductions are never blocked by the cap."""
    fund(alice, 1_000_000)
    protocol.trade(alice, "ETH", 500)
    fund(bob, 100_000)
    with reverts("exchange: open interest cap"):
        protocol.trade(bob, "ETH", 1)
    protocol.trade(bob, "ETH", -1)
    protocol.trade(alice, "ETH", -10)


def test_isolated_subaccount_holds_one_position(protocol: Protocol, fund, alice):
    fund(alice, 20_000, subaccount=1)
    protocol.set_isolated(alice, 1)
    protocol.trade(alice, "ETH", 1, subaccount=1)
    with reverts("exchange: too many positions"):
        protocol.trade(alice, "BTC", 0.1, subaccount=1)
    with reverts("exchange: close positions first"):
        protocol.set_isolated(alice, 1, False)
    # subaccount 0 is unaffected and cross-margined
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 1)
    protocol.trade(alice, "BTC", 0.1)
    assert protocol.account_markets(alice) == [0, 1]


def test_cross_margin_sums_positions(protocol: Protocol, fund, alice, set_price):
    """Equity and margin of a cross-margined subaccount are the sums over its positions."""
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 10)
    protocol.trade(alice, "BTC", -0.5)
    h = protocol.health(alice)
    ex = protocol.exchange
    pnl = sum(protocol.lens.call("position_pnl", alice, 0, m) for m in (0, 1))
    assert ex.call("health", alice, 0)[0] == ex.call("accounts", alice, 0)[0] + pnl
    marks = [protocol.mark_price(m) for m in ("ETH", "BTC")]
    assert h.notional == pytest.approx(10 * marks[0] + 0.5 * marks[1])
    assert h.initial_margin == pytest.approx(0.1 * h.notional)
    assert h.maintenance_margin == pytest.approx(0.0625 * h.notional)


def test_too_many_positions(protocol: Protocol, deployed, fund, alice):
    """An isolated subaccount holds one position. The cross-margined cap, MAX_POSITIONS, needs
    nine markets: tests/unit/test_position_cap.py."""
    fund(alice, 20_000, subaccount=2)
    protocol.set_isolated(alice, 2)
    protocol.trade(alice, "BTC", 0.1, subaccount=2)
    with reverts("exchange: too many positions"):
        protocol.trade(alice, "ETH", 1, subaccount=2)


def test_paused_and_reduce_only_markets(protocol: Protocol, fund, alice, owner, bob):
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 5)
    with reverts("exchange: caller is not the guardian"):
        protocol.set_market_status("ETH", True, False, sender=bob)
    protocol.set_market_status("ETH", False, True)
    with reverts("exchange: market reduce-only"):
        protocol.trade(alice, "ETH", 1)
    protocol.trade(alice, "ETH", -1)
    protocol.set_market_status("ETH", True, False)
    with reverts("exchange: market paused"):
        protocol.trade(alice, "ETH", -1)
    protocol.set_market_status("ETH", False, False)
    protocol.trade(alice, "ETH", 1)


def test_invalid_feed_blocks_new_risk_not_reductions(protocol: Protocol, fund, alice, chain):
    """DESIGN §5.8: while the feed is invalid (here stale: no report for longer than max_age),
    trades that add risk revert and trades that reduce it go through on the last price."""
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 5)
    chain.mine(protocol.config.oracle.max_age + 1)
    assert protocol.index_price("ETH") == (2000.0, False)
    with reverts("exchange: oracle invalid"):
        protocol.trade(alice, "ETH", 1)
    with reverts("exchange: oracle invalid"):
        protocol.trade(alice, "ETH", -6)  # a flip adds risk on the other side
    protocol.trade(alice, "ETH", -2)
    assert protocol.position(alice, "ETH").size == 3


def test_mark_modes(protocol: Protocol, fund, alice, owner, chain, set_price):
    """oracle: mark = index. premium: index * (1 + skew / skew_scale), with the skew as it
    stood when the block began: 2000 in the trade's block, 2000 * 1.001 = 2002 at skew 10 from
    the next. median: middle of index, index * (1 + premium EMA) and the oracle TWAP."""
    fund(alice, 50_000)
    protocol.trade(alice, "ETH", 10)
    assert protocol.mark_price("ETH") == 2000.0
    eth = protocol.config.markets[0]
    protocol.set_market_params(eth.model_copy(update={"mark_mode": "premium"}))
    assert protocol.exchange.call("mark_price", 0) == 2000 * WAD  # no trade moves it inside its block
    chain.mine(1)
    assert protocol.exchange.call("mark_price", 0) == 2002 * WAD

    protocol.set_market_params(eth.model_copy(update={"mark_mode": "median"}))
    chain.mine(100)
    set_price("ETH", 2100)
    chain.mine(60)  # the TWAP sees 2100 only as time passes
    set_price("ETH", 2100)
    ex = protocol.exchange
    ex.transact("accrue", 0, sender=alice)  # brings the premium EMA to now
    index = ex.call("index_price", 0)[0]
    ema = ex.call("market_states", 0)[6]
    twap = protocol.oracle.call("twap", 0, eth.twap_window)
    # One accrual over the 160 s since the mode changed, towards the premium 10 / 10,000 =
    # 0.001, with the Exchange's documented approximation alpha = dt / (dt + tau), tau =
    # half-life / ln 2 in whole seconds (216 s): 0.001 x 160 / 376 = 0.000426. (The exact
    # exponential, 1 - 2 ** (-160 / 150), would give 0.000523.)
    tau = eth.premium_half_life * WAD // LN2
    assert tau == 216
    # (the second the premium mark's block-start check waited for is accrued first: 1 s)
    premium = 10 * WAD // 10_000
    first = premium * 1 // (1 + tau)
    assert ema == first + (premium - first) * 160 // (160 + tau)
    candidates = sorted([index, index * (WAD + ema) // WAD, twap])
    assert ex.call("mark_price", 0) == candidates[1]
    assert 2000 * WAD < twap < 2100 * WAD


def test_admin_is_owner_only(protocol: Protocol, bob):
    eth = protocol.config.markets[0]
    with reverts("ownable: caller is not the owner"):
        protocol.exchange.transact("add_market", eth.exchange_params(0), sender=bob)
    with reverts("ownable: caller is not the owner"):
        protocol.exchange.transact("set_market_params", 0, eth.exchange_params(0), sender=bob)
    with reverts("ownable: caller is not the owner"):
        protocol.exchange.transact("set_role", ROLES["guardian"], bob, sender=bob)


def test_bad_market_params_rejected(protocol: Protocol, owner):
    eth = protocol.config.markets[0]
    bad = list(eth.exchange_params(0))
    bad[2] = bad[1]  # mmf == imf
    with reverts("exchange: bad margin fractions"):
        protocol.exchange.transact("add_market", tuple(bad), sender=owner)
    bad = list(eth.exchange_params(0))
    bad[5] = 0
    with reverts("exchange: zero skew scale"):
        protocol.exchange.transact("add_market", tuple(bad), sender=owner)
    bad = list(eth.exchange_params(0))
    bad[10] = 3
    with reverts("exchange: unknown mark mode"):
        protocol.exchange.transact("add_market", tuple(bad), sender=owner)
    for not_one_role in (0, ROLES["guardian"] | ROLES["oracle"]):
        with reverts("exchange: unknown role"):
            protocol.exchange.transact("set_role", not_one_role, owner, sender=owner)


def test_hooks_are_restricted(protocol: Protocol, alice):
    ex = protocol.exchange
    with reverts("exchange: caller is not the liquidator"):
        ex.transact("liquidation_fill", alice, 0, 0, to_wad(1), 2000 * WAD, alice, 0, 0, 0, sender=alice)
    with reverts("exchange: caller is not the liquidator"):
        ex.transact("declare_bankrupt", alice, 0, 0, 1, sender=alice)
    with reverts("exchange: caller is not the liquidator"):
        ex.transact("discharge", alice, 0, 0, sender=alice)
    with reverts("exchange: caller is not the liquidator"):
        ex.transact("deleverage_fill", alice, 0, alice, 1, 0, 1, 1, 0, sender=alice)
    with reverts("exchange: caller is not trigger orders"):
        ex.transact("trade_for", alice, 0, 0, 1, 0, sender=alice)
    with reverts("exchange: caller is not trigger orders"):
        ex.transact("charge_fee", alice, 0, alice, 1, sender=alice)
