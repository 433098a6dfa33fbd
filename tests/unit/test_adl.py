"""Bad debt the InsuranceFund cannot pay: bankruptcy, the market deficit, and ADL clearing it
(DESIGN §4 ADL, §5.6). A deployment of its own with a thin fund (1,000 USD)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.chain import Chain
from sim.protocol import Protocol
from sim.units import WAD, from_wad, to_wad
from tests.unit.conftest import CONFIG
from tests.utils.asserts import reverts
from tests.utils.constants import MAX_UINT, PRECISION


@pytest.fixture(scope="module")
def deployed(chain: Chain) -> Protocol:
    return Protocol.deploy(chain, CONFIG.model_copy(update={"insurance_fund": 1_000.0}))


@pytest.fixture
def crashed(protocol: Protocol, fund, alice, bob, carol, set_price) -> Protocol:
    """alice long 40 ETH on 10k (fill 2004); bob and carol short 30 each, so the Vault is
    long 20. A gap to 1500 leaves alice about 10.2k under water, more than the fund holds."""
    fund(alice, 10_000)
    fund(bob, 100_000)
    fund(carol, 100_000)
    protocol.trade(alice, "ETH", 40)
    protocol.trade(bob, "ETH", -30)
    protocol.trade(carol, "ETH", -30)
    set_price("ETH", 1500)
    return protocol


def _bankrupt(protocol: Protocol, alice: str, keeper: str):
    receipt = protocol.liquidator.transact("liquidate", alice, 0, 0, MAX_UINT, sender=keeper)
    assert receipt.return_value == 0
    return receipt


def test_bankruptcy_records_deficit(crashed: Protocol, alice, keeper):
    """Insurance paid plus recorded deficit equals the negative equity the close would leave
    (DESIGN §5.6): equity at mark plus what the close's fill (its SIP-279 impact: the Vault is
    short-skewed, so selling fills below index) realises against mark."""
    protocol = crashed
    equity = protocol.exchange.call("health", alice, 0)[0]
    fill = protocol.lens.call("fill_price", 0, -40 * WAD)
    equity_at_fill = equity + 40 * (fill - 1500 * WAD)
    assert equity_at_fill < equity < 0
    fund_before = protocol.usdc.call("balanceOf", protocol.insurance_fund.address)
    assert -equity > fund_before * PRECISION
    receipt = _bankrupt(protocol, alice, keeper)
    bad = [e for e in receipt.events if e.name == "BadDebt"][0].args
    assert bad["insurance_paid"] == fund_before * PRECISION  # the fund gave all it had
    assert bad["insurance_paid"] + bad["deficit"] == bad["amount"]
    assert 0 <= bad["amount"] - (-equity_at_fill) < PRECISION  # the shortfall, rounded up to a token unit
    assert protocol.insurance_balance() == 0
    assert protocol.exchange.call("market_states", 0)[8] == bad["deficit"]
    acct = protocol.exchange.call("accounts", alice, 0)
    assert acct[3] is True and acct[4] == bad["deficit"]  # bankrupt, with its share of the deficit
    assert protocol.position(alice, "ETH").size == 40  # left open for ADL
    # a bankrupt account can do nothing else until it is deleveraged
    with reverts("liquidator: account bankrupt"):
        protocol.liquidate(keeper, alice, "ETH")
    with reverts("exchange: account bankrupt"):
        protocol.trade(alice, "ETH", -1)
    with reverts("exchange: account bankrupt"):
        protocol.exchange.transact("withdraw", 0, 1, sender=alice)
    assert not protocol.is_liquidatable(alice)


def test_adl_clears_deficit(crashed: Protocol, alice, bob, carol, keeper):
    """ADL closes the bankrupt long against profitable shorts at the bankruptcy price: the
    deficit falls pro rata to the size closed, and is gone when the position is."""
    protocol = crashed
    _bankrupt(protocol, alice, keeper)
    deficit = protocol.exchange.call("market_states", 0)[8]
    bk_price = protocol.liquidator.call("bankruptcy_price", alice, 0, 0)
    assert bk_price > 1500 * WAD  # the shorts buy back above mark: that is who pays

    ranking = protocol.adl_ranking("ETH", against_size=40)
    assert {(c.owner, c.subaccount) for c in ranking} == {(bob, 0), (carol, 0)}
    assert ranking[0].score >= ranking[1].score

    first = ranking[0]
    receipt = protocol.liquidator.transact("deleverage", alice, 0, first.owner, 0, 0, to_wad(10), sender=keeper)
    ev = [e for e in receipt.events if e.name == "Deleverage"][0].args
    assert ev["size"] == -to_wad(10) and ev["deficit_covered"] == deficit * 10 // 40
    assert protocol.exchange.call("market_states", 0)[8] == deficit - ev["deficit_covered"]

    # the rest, against both shorts
    protocol.deleverage(keeper, (alice, 0), (bob, 0), "ETH", 20)
    protocol.deleverage(keeper, (alice, 0), (carol, 0), "ETH")
    assert protocol.position(alice, "ETH").size == 0
    assert protocol.exchange.call("market_states", 0)[8] == 0
    acct = protocol.exchange.call("accounts", alice, 0)
    assert acct[3] is False and acct[4] == 0
    assert abs(acct[0]) <= 2 * PRECISION  # the bankruptcy price left alice at zero, to a token unit


def test_adl_target_rules(crashed: Protocol, alice, bob, carol, keeper, fund, chain):
    protocol = crashed
    with reverts("liquidator: not bankrupt"):
        protocol.deleverage(keeper, (bob, 0), (carol, 0), "ETH")
    _bankrupt(protocol, alice, keeper)
    dave = chain.new_account("dave")
    fund(dave, 10_000)
    protocol.trade(dave, "ETH", 1)
    with reverts("liquidator: target not opposite"):
        protocol.deleverage(keeper, (alice, 0), (dave, 0), "ETH")
    erin = chain.new_account("erin")
    fund(erin, 10_000)
    protocol.trade(erin, "ETH", -1)  # short at ~1500: not in profit
    with reverts("liquidator: target not profitable"):
        protocol.deleverage(keeper, (alice, 0), (erin, 0), "ETH")
    with reverts("liquidator: zero size"):
        protocol.deleverage(keeper, (alice, 0), (bob, 0), "ETH", 0)
    with reverts("exchange: caller is not the liquidator"):
        protocol.exchange.transact("deleverage_fill", alice, 0, bob, 0, 0, 1, 1, 0, sender=keeper)


def test_a_bankrupt_position_is_never_an_adl_target(protocol: Protocol, fund, alice, bob, keeper, set_price, chain):
    """§5.6, found by the fuzz campaign (ProtocolFuzz, seed 3006; hypothesis' shrinker gave up,
    this is the path cut down by hand). Two opposite positions in one market both went
    bankrupt, at different prices. When the price came back, the bankrupt short was in profit,
    and `deleverage` took it as the ADL target of the bankrupt long: its position closed at
    the long's bankruptcy price while its own share of the deficit stayed on the books with no
    position left to deleverage, so the market's deficit no longer matched the bankrupt
    subaccounts' shares. Fix (Liquidator.deleverage): a bankrupt target reverts; a bankrupt
    position leaves only as the bankrupt side. The keepers' ranking skips them too."""
    dave = chain.new_account("dave")
    fund(alice, 10_000)
    fund(bob, 10_000)
    fund(dave, 100_000)
    protocol.trade(bob, "ETH", -40)      # bob short at ~2000, 8x
    set_price("ETH", 2400)               # bob about 6k under water, the fund holds 1k
    protocol.liquidate(keeper, bob, "ETH")
    protocol.trade(alice, "ETH", 40)     # alice long at ~2400, 10x
    protocol.trade(dave, "ETH", -10)     # dave short at ~2400: a healthy target later
    set_price("ETH", 1900)               # alice under water; bob's and dave's shorts in profit
    protocol.liquidate(keeper, alice, "ETH")
    for who in (alice, bob):
        assert protocol.exchange.call("accounts", who, 0)[3], f"{who} should be bankrupt"
    assert protocol.position_pnl(bob, "ETH") > 0

    ranking = protocol.adl_ranking("ETH", against_size=40)
    assert [(c.owner, c.subaccount) for c in ranking] == [(dave, 0)]
    with reverts("liquidator: target bankrupt"):
        protocol.deleverage(keeper, (alice, 0), (bob, 0), "ETH")
    protocol.deleverage(keeper, (alice, 0), (dave, 0), "ETH")
    shares = sum(protocol.exchange.call("accounts", who, 0)[4] for who in (alice, bob))
    assert protocol.exchange.call("market_states", 0)[8] == shares > 0
