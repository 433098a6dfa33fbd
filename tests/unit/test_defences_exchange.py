"""Issue 11's Exchange-side defences, on the real contracts: each binds when it is on, and with
it off (its default, 0) the old behaviour holds.

- initial margin that rises with open interest (dYdX v4: from the base IMF at `oi_imf_lower`
  to 100% at `oi_imf_upper`, linearly, on the larger side's notional at the index);
- open-interest caps in USD tied to the Vault (GMX v2 maxOpenInterest: a side at most
  `max_oi_usd`, and at most `max_oi_vault_factor` x the Vault's token balance);
- a maximum leverage (Hyperliquid: each position's initial margin at least notional / L);
- delisting: a settlement price makes the market reduce-only for good, prices it at the
  settlement price, and lets anyone `settle` each position there, with no fee.

The conftest's ETH market: index 2,000, skew_scale 10,000 ETH, max_oi 500 ETH a side, IMF 10%.
"""

from __future__ import annotations

import pytest

from sim.protocol import MarketConfig, Protocol, ProtocolConfig, deployment_plan
from sim.units import WAD, to_wad
from tests.unit.conftest import CONFIG, ETH
from tests.utils.asserts import reverts

OFF = (0, 0, 0, 0, 0, 0)


def _limits(protocol: Protocol, **changes: float) -> None:
    """Set ETH's limits (human units) through the facade, as a scenario's market table would."""
    protocol.set_market_params(ETH.model_copy(update=changes))


def _imf(base: float, lower: float, upper: float, oi_usd: float) -> float:
    """dYdX v4's formula, as the README states it."""
    if upper == 0 or oi_usd <= lower:
        return base
    return 1.0 if oi_usd >= upper else base + (1 - base) * (oi_usd - lower) / (upper - lower)


# ---------------------------------------------------------------- defaults
def test_limits_default_to_off_and_the_deployment_sets_none(protocol: Protocol):
    assert protocol.exchange.call("market_limits", 0) == OFF
    assert not any(getattr(step, "function", "") == "set_market_limits" for step in deployment_plan(CONFIG))
    assert protocol.initial_margin_fraction("ETH") == pytest.approx(0.10)
    assert protocol.settlement_price("ETH") == 0


def test_a_market_with_limits_is_deployed_with_them(chain):
    market = ETH.model_copy(update={"oi_imf_lower": 1e5, "oi_imf_upper": 5e5, "max_oi_usd": 2e5,
                                    "max_oi_vault_factor": 0.5, "max_leverage": 5.0})
    deployed = Protocol.deploy(chain, ProtocolConfig(markets=(market,), vault_liquidity=1e6))
    assert deployed.exchange.call("market_limits", 0) == market.market_limits() == (
        to_wad(1e5), to_wad(5e5), to_wad(2e5), to_wad(0.5), to_wad(5.0), 0)


# ---------------------------------------------------------------- IMF rising with open interest
def test_initial_margin_rises_with_open_interest(protocol: Protocol, fund, alice, bob, carol):
    """Caps at $200k and $600k of open interest. Bob's 150 ETH long ($300k) lifts ETH's IMF to
    32.5%; alice's 40 ETH on $10k, fine at 10%, needs 50.5% of it then and is refused."""
    _limits(protocol, oi_imf_lower=200_000.0, oi_imf_upper=600_000.0)
    fund(bob, 200_000)
    fund(alice, 10_000)
    assert protocol.initial_margin_fraction("ETH") == pytest.approx(0.10)  # no open interest yet
    protocol.trade(bob, "ETH", 150)
    assert protocol.initial_margin_fraction("ETH") == pytest.approx(_imf(0.1, 2e5, 6e5, 150 * 2000), rel=1e-9)
    assert protocol.health(bob).initial_margin == pytest.approx(0.325 * 150 * 2000, rel=1e-9)
    with reverts("exchange: below initial margin"):
        protocol.trade(alice, "ETH", 40)
    protocol.trade(alice, "ETH", -5)  # the short side is smaller: the larger side's OI is unchanged
    assert protocol.initial_margin_fraction("ETH") == pytest.approx(0.325, rel=1e-9)
    fund(carol, 1_000_000)
    protocol.trade(carol, "ETH", 200)  # 350 ETH = $700k, past the upper cap: 100%
    assert protocol.initial_margin_fraction("ETH") == 1.0
    assert protocol.health(carol).initial_margin == pytest.approx(protocol.health(carol).notional)


def test_without_open_interest_caps_the_imf_stays_flat(protocol: Protocol, fund, alice, bob):
    fund(bob, 200_000)
    fund(alice, 10_000)
    protocol.trade(bob, "ETH", 150)
    assert protocol.initial_margin_fraction("ETH") == pytest.approx(0.10)
    protocol.trade(alice, "ETH", 40)
    assert protocol.health(alice).initial_margin == pytest.approx(0.10 * 40 * 2000, rel=1e-9)


# ---------------------------------------------------------------- USD caps tied to the Vault
def test_usd_cap_refuses_growing_a_side_past_it(protocol: Protocol, fund, alice, bob):
    _limits(protocol, max_oi_usd=200_000.0)
    fund(bob, 100_000)
    fund(alice, 100_000)
    protocol.trade(bob, "ETH", 90)  # $180k long
    with reverts("exchange: open interest USD cap"):
        protocol.trade(alice, "ETH", 15)  # $210k long
    protocol.trade(alice, "ETH", -15)  # the short side is $30k: allowed
    protocol.trade(bob, "ETH", -40)  # shrinking the long side is always allowed
    protocol.trade(alice, "ETH", 30)  # alice flat, then 15 long: $130k
    assert protocol.open_interest("ETH") == (pytest.approx(65.0), pytest.approx(0.0))


def test_vault_factor_cap_follows_the_vaults_size(protocol: Protocol, fund, alice, bob, lp):
    """5% of a $2M Vault: $100k a side. 55 ETH ($110k) is refused until an LP doubles the Vault."""
    _limits(protocol, max_oi_vault_factor=0.05)
    fund(bob, 100_000)
    protocol.trade(bob, "ETH", 40)
    fund(alice, 100_000)
    with reverts("exchange: open interest USD cap"):
        protocol.trade(alice, "ETH", 15)
    protocol.mint(lp, 2_000_000)
    protocol.lp_deposit(lp, 2_000_000)
    protocol.trade(alice, "ETH", 15)
    assert protocol.open_interest("ETH")[0] == pytest.approx(55.0)


def test_without_usd_caps_only_the_base_cap_binds(protocol: Protocol, fund, alice, bob):
    fund(bob, 100_000)
    fund(alice, 100_000)
    protocol.trade(bob, "ETH", 90)
    protocol.trade(alice, "ETH", 15)
    assert protocol.open_interest("ETH")[0] == pytest.approx(105.0)


# ---------------------------------------------------------------- maximum leverage
def test_max_leverage_refuses_an_order_beyond_it(protocol: Protocol, fund, alice):
    """Max 3x on $10k: 14 ETH ($28k) is fine, 16 ETH ($32k) is not, though 10% IMF allows 10x."""
    _limits(protocol, max_leverage=3.0)
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 14)
    assert protocol.initial_margin_fraction("ETH") == pytest.approx(1 / 3)
    with reverts("exchange: below initial margin"):
        protocol.trade(alice, "ETH", 2)
    h = protocol.health(alice)
    assert h.notional / h.equity <= 3.0
    with reverts("exchange: below initial margin"):  # nor can a withdrawal take it past 3x
        protocol.withdraw(alice, 1_000)


def test_without_max_leverage_the_imf_allows_more(protocol: Protocol, fund, alice):
    fund(alice, 10_000)
    protocol.trade(alice, "ETH", 40)  # 8x
    h = protocol.health(alice)
    assert h.notional / h.equity > 3.0


# ---------------------------------------------------------------- delisting
def test_delisting_settles_every_position_at_its_price(protocol: Protocol, fund, alice, bob, keeper, set_price):
    fund(alice, 20_000)
    fund(bob, 20_000)
    protocol.trade(alice, "ETH", 10)
    protocol.trade(bob, "ETH", -4)
    protocol.delist("ETH", 1_800)
    assert protocol.settlement_price("ETH") == 1_800
    assert protocol.market_state("ETH")["reduce_only"]
    set_price("ETH", 2_500)  # the oracle moves on; the delisted market does not
    assert protocol.index_price("ETH") == (1_800, True)
    assert protocol.mark_price("ETH") == 1_800
    assert protocol.fill_price("ETH", 1) == pytest.approx(1_800 * (1 + 6.5 / 10_000))  # skew 6: impact on 1,800
    with reverts("exchange: market reduce-only"):
        protocol.trade(alice, "ETH", 1)
    with reverts("exchange: market delisted"):
        protocol.set_market_status("ETH", False, False)
    with reverts("exchange: market delisted"):
        protocol.delist("ETH", 2_000)

    for owner in (alice, bob):
        size, cost, _ = protocol.exchange.call("positions", owner, 0, 0)
        collateral = protocol.exchange.call("accounts", owner, 0)[0]
        receipt = protocol.exchange.transact("settle", owner, 0, 0, sender=keeper)
        (trade,) = [e for e in receipt.events if e.name == "Trade"]
        assert trade.args["fill_price"] == 1_800 * WAD and trade.args["fee"] == 0
        assert trade.args["size_delta"] == -size and trade.args["new_size"] == 0
        assert trade.args["realized_pnl"] == size * 1_800 - cost  # exact: size x price is whole wei here
        delta = protocol.exchange.call("accounts", owner, 0)[0] - collateral
        assert abs(delta - (trade.args["realized_pnl"] - trade.args["funding_paid"])) < 10**12  # token rounding
    assert protocol.open_interest("ETH") == (0.0, 0.0)
    with reverts("exchange: no position"):
        protocol.settle(keeper, alice, "ETH")


def test_a_listed_market_cannot_be_settled(protocol: Protocol, fund, alice, keeper, set_price):
    fund(alice, 20_000)
    protocol.trade(alice, "ETH", 10)
    with reverts("exchange: market not delisted"):
        protocol.settle(keeper, alice, "ETH")
    set_price("ETH", 2_500)
    assert protocol.index_price("ETH") == (2_500, True)
    protocol.set_market_status("ETH", False, True)
    protocol.set_market_status("ETH", False, False)  # a listed market's reduce-only can be lifted


def test_limits_survive_a_parameter_change_and_delisting_survives_new_limits(protocol: Protocol):
    protocol.delist("ETH", 1_900)
    _limits(protocol, max_leverage=4.0)
    assert protocol.exchange.call("market_limits", 0) == (0, 0, 0, 0, to_wad(4.0), to_wad(1_900))


def test_market_config_rejects_inconsistent_limits():
    with pytest.raises(ValueError, match="oi_imf_upper"):
        MarketConfig(oi_imf_lower=2e5, oi_imf_upper=1e5)
    with pytest.raises(ValueError, match="oi_imf_upper"):
        MarketConfig(oi_imf_lower=2e5)
    with pytest.raises(ValueError, match="max_leverage"):
        MarketConfig(max_leverage=0.5)
