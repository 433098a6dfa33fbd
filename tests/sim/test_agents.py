"""Each agent's decision on a small fixed state: a fresh protocol on revm, a hand-set price,
and the agent's actions checked against what its rules say it should do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from typing import Any

import numpy as np
import pytest

from sim.agents import World
from sim.agents.base import (
    Action,
    Agent,
    AgentIdentity,
    BribeReporters,
    CancelTrigger,
    ClosePosition,
    Deleverage,
    ExecuteTrigger,
    Liquidate,
    LpDeposit,
    LpWithdraw,
    MarketView,
    Outcome,
    PlaceTrigger,
    ReportPrice,
    StepContext,
    Trade,
    Withdraw,
)
from sim.agents.keepers import AdlKeeper, LiquidationKeeper, TriggerOrderKeeper
from sim.agents.lp import LiquidityProvider
from sim.agents.manipulator import Manipulator
from sim.agents.reporters import OracleReporter
from sim.agents.traders import Arbitrageur, BasisTrader, LeveragedWhale, MomentumTrader, NoiseTrader
from sim.agents.zoo import ZOO, describe
from sim.chain import Reverted, make_chain
from sim.engine import AGENT_STREAM, stream
from sim.protocol import MarketConfig, Protocol, ProtocolConfig

ETH = MarketConfig(name="ETH", initial_price=2000.0, skew_scale=100_000.0, max_oi=10_000.0)
BTC = MarketConfig(name="BTC", initial_price=30_000.0, skew_scale=10_000.0, max_oi=1_000.0)
PRICES = {"ETH": 2000.0, "BTC": 30_000.0}


@pytest.fixture(scope="module")
def deployed() -> Iterator[Protocol]:
    chain = make_chain("revm")
    yield Protocol.deploy(chain, ProtocolConfig(markets=(ETH, BTC), vault_liquidity=5_000_000.0, reporters=1))
    chain.close()


@pytest.fixture
def protocol(deployed: Protocol) -> Iterator[Protocol]:
    snap = deployed.snapshot()
    yield deployed
    deployed.revert(snap)


_counter = iter(range(10**6))


def make(cls: type[Agent], protocol: Protocol, seed: int = 1, **params: Any) -> Agent:
    """An agent of `cls` with its own account and its engine-style seeded RNG."""
    index = next(_counter)
    label = f"test-{cls.kind}-{index}"
    identity = AgentIdentity(index=index, group=0, label=label, account=protocol.chain.new_account(label))
    extra = {"reporter_index": 0} if cls is OracleReporter else {}
    if cls is OracleReporter:
        identity.account = protocol.reporters[0]
    return cls(cls.Config(**params), stream(seed, AGENT_STREAM, index), identity, **extra)


def context(protocol: Protocol, step: int = 0, prices: dict[str, float] | None = None, world: World | None = None,
            history: list[dict[str, float]] | None = None) -> StepContext:
    """A context at `step`, after `history` (earlier steps' true prices) and then `prices`."""
    ctx = StepContext(protocol, world or World(), 12)
    for i, past in enumerate(history or []):
        ctx.begin_step(i, past)
    ctx.begin_step(step, prices or PRICES)
    return ctx


def run(agent: Agent, protocol: Protocol, actions: list[Action]) -> list[Outcome]:
    """Execute actions as the engine would, and report each outcome to the agent."""
    outcomes = []
    for action in actions:
        try:
            outcome = Outcome(True, action.execute(protocol, agent.account))
        except Reverted as exc:
            outcome = Outcome(False, reason=exc.reason)
        agent.on_result(action, outcome)
        outcomes.append(outcome)
    return outcomes


def fund(agent: Agent, protocol: Protocol) -> None:
    assert all(o.ok for o in run(agent, protocol, agent.setup(context(protocol))))


def set_price(protocol: Protocol, market: str, price: float) -> None:
    protocol.report_all(market, price)


def trades(actions: list[Action]) -> list[Trade]:
    return [a for a in actions if isinstance(a, Trade)]


# ------------------------------------------------------------------------- the zoo


def test_zoo_lists_every_kind_with_documented_config() -> None:
    kinds = {"noise_trader", "momentum_trader", "leveraged_whale", "basis_trader", "arbitrageur", "lp",
             "liquidation_keeper", "trigger_keeper", "adl_keeper", "oracle_reporter", "manipulator"}
    assert kinds <= set(ZOO)
    text = describe()
    for kind, cls in ZOO.items():
        assert kind in text
        for f in cls.Config.__pydantic_fields__.values():
            assert f.description, f"{kind}: a Config field has no description"


def test_agent_refuses_a_missing_rng(protocol: Protocol) -> None:
    identity = AgentIdentity(0, 0, "x", protocol.chain.new_account("x"))
    with pytest.raises(TypeError, match="Generator"):
        NoiseTrader(NoiseTrader.Config(), None, identity)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = NoiseTrader.Config(trade_probability=0.5)
    with pytest.raises(FrozenInstanceError, match="trade_probability"):
        config.trade_probability = 0.9  # type: ignore[misc]


# ------------------------------------------------------------------------- traders


def test_noise_trader_trades_within_its_order_size_and_is_seeded(protocol: Protocol) -> None:
    decisions = []
    for _ in range(2):
        trader = make(NoiseTrader, protocol, seed=42, market="ETH", trade_probability=1.0, order_leverage=1.0)
        trader.identity.index = 7
        trader.rng = stream(42, AGENT_STREAM, 7)
        fund(trader, protocol)
        (trade,) = trades(trader.decide(context(protocol)))
        assert 0.1 * 10_000 <= abs(trade.size) * 2000.0 <= 10_000 + 1e-6
        decisions.append(trade.size)
    assert decisions[0] == decisions[1]
    quiet = make(NoiseTrader, protocol, market="ETH", trade_probability=0.0)
    fund(quiet, protocol)
    assert quiet.decide(context(protocol)) == []


def test_size_cap_layer_limits_notional(protocol: Protocol) -> None:
    capped = make(NoiseTrader, protocol, market="ETH", trade_probability=1.0, order_leverage=8.0, long_bias=1.0,
                  max_leverage=2.0)
    fund(capped, protocol)
    for step in range(4):
        run(capped, protocol, capped.decide(context(protocol, step)))
    h = protocol.health(capped.account)
    assert h.notional <= 2.0 * h.equity * 1.01


def test_margin_buffer_layer_cuts_the_position(protocol: Protocol) -> None:
    trader = make(NoiseTrader, protocol, market="ETH", trade_probability=0.0, buffer=2.0, cut_fraction=0.5)
    fund(trader, protocol)
    protocol.trade(trader.account, "ETH", 40.0)  # 8x: equity close to 1.3x maintenance after a 2% fall
    trader.holding = True
    set_price(protocol, "ETH", 1960.0)
    (cut,) = trades(trader.decide(context(protocol, 1, {"ETH": 1960.0, "BTC": 30_000.0})))
    assert cut.size == pytest.approx(-20.0)
    assert trader.layer_trips == 1


def test_stop_loss_layer_places_and_replaces_a_stop(protocol: Protocol) -> None:
    trader = make(NoiseTrader, protocol, market="ETH", trade_probability=1.0, long_bias=1.0, close_probability=0.0,
                  stop_loss=True, stop_distance=0.05)
    fund(trader, protocol)
    actions = trader.decide(context(protocol))
    (trade,) = trades(actions)
    (stop,) = [a for a in actions if isinstance(a, PlaceTrigger)]
    assert stop.size == pytest.approx(-trade.size) and stop.trigger_price == pytest.approx(1900.0)
    run(trader, protocol, actions)
    first = trader.stop_order
    assert first is not None
    again = trader.decide(context(protocol, 1))  # it adds to the position: the stop is replaced
    assert CancelTrigger(first) in again and any(isinstance(a, PlaceTrigger) for a in again)


def test_hedge_layer_holds_the_other_way_in_the_hedge_market(protocol: Protocol) -> None:
    trader = make(NoiseTrader, protocol, market="ETH", trade_probability=1.0, long_bias=1.0, close_probability=0.0,
                  hedge=True, hedge_market="BTC", hedge_ratio=0.5)
    fund(trader, protocol)
    main, hedge = trades(trader.decide(context(protocol)))
    assert main.market == "ETH" and hedge.market == "BTC"
    assert hedge.size < 0 < main.size
    assert abs(hedge.size) * 30_000 == pytest.approx(0.5 * main.size * 2000, rel=1e-9)


def test_hedge_needs_another_market() -> None:
    problems = NoiseTrader.check_config(NoiseTrader.Config(market="ETH", hedge=True, hedge_market="ETH"), ("ETH", "BTC"))
    assert problems and problems[0][0] == "hedge_market"


def test_momentum_trader_follows_the_trend(protocol: Protocol) -> None:
    trader = make(MomentumTrader, protocol, market="ETH", lookback_blocks=3, entry_threshold=0.01, leverage=2.0)
    fund(trader, protocol)
    acted = []
    for step, price in enumerate((2000.0, 2010.0, 2020.0, 2040.0)):
        set_price(protocol, "ETH", price)
        acted = trader.decide(context(protocol, step, {"ETH": price, "BTC": 30_000.0}))
    (trade,) = trades(acted)
    assert trade.size == pytest.approx(2.0 * 10_000 / 2040.0, rel=1e-3)


def test_leveraged_whale_opens_once_then_holds(protocol: Protocol) -> None:
    whale = make(LeveragedWhale, protocol, market="ETH", collateral=100_000.0, leverage=8.0, side="short")
    fund(whale, protocol)
    (trade,) = trades(whale.decide(context(protocol)))
    assert trade.size == pytest.approx(-8.0 * 100_000 / 2000.0)
    run(whale, protocol, [trade])
    assert whale.decide(context(protocol, 1)) == []


class FixedContext(StepContext):
    """A context whose market views are given, not read: for strategies that react to
    funding or skew, which take many trades to produce on chain."""

    def __init__(self, protocol: Protocol, views: dict[str, MarketView], prices: dict[str, float]) -> None:
        super().__init__(protocol, World(), 12)
        self.views = views
        self.begin_step(0, prices)

    def market(self, name: str) -> MarketView:
        return self.views[name]


def view(name: str = "ETH", index: float = 2000.0, funding: float = 0.0, oi_long: float = 0.0,
         oi_short: float = 0.0) -> MarketView:
    config = ETH if name == "ETH" else BTC
    return MarketView(name, index, True, index, funding, oi_long, oi_short, 0.0, config)


def test_basis_trader_shorts_on_high_funding_and_closes_when_it_fades(protocol: Protocol) -> None:
    trader = make(BasisTrader, protocol, market="ETH", leverage=2.0, entry_funding=0.001, exit_funding=0.0)
    fund(trader, protocol)
    assert trader.decide(FixedContext(protocol, {"ETH": view(funding=0.0005)}, PRICES)) == []
    (short,) = trades(trader.decide(FixedContext(protocol, {"ETH": view(funding=0.002)}, PRICES)))
    assert short.size == pytest.approx(-2.0 * 10_000 / 2000.0)
    run(trader, protocol, [short])
    assert trader.spot_units == pytest.approx(-short.size)
    (close,) = trades(trader.decide(FixedContext(protocol, {"ETH": view(funding=-0.0001)}, PRICES)))
    assert close.size == pytest.approx(-short.size)


def test_arbitrageur_takes_the_spot_side_of_a_lagging_index(protocol: Protocol) -> None:
    arb = make(Arbitrageur, protocol, market="ETH", spot_threshold=0.005, leverage=2.0)
    fund(arb, protocol)
    (trade,) = trades(arb.decide(FixedContext(protocol, {"ETH": view()}, {"ETH": 2030.0, "BTC": 30_000.0})))
    assert trade.size == pytest.approx(2.0 * 100_000 / 2000.0)  # spot above the index: buy


def test_arbitrageur_offsets_the_skew(protocol: Protocol) -> None:
    arb = make(Arbitrageur, protocol, market="ETH", premium_threshold=0.001, take_fraction=0.5, max_leverage=10.0)
    fund(arb, protocol)
    (trade,) = trades(arb.decide(FixedContext(protocol, {"ETH": view(oi_long=500.0)}, PRICES)))
    assert trade.size == pytest.approx(-250.0)  # premium 0.5% > 0.1%: sell half the others' skew


# ------------------------------------------------------------------------- LPs


def test_lp_deposits_runs_and_leaves_on_drawdown(protocol: Protocol) -> None:
    lp = make(LiquidityProvider, protocol, deposit=100_000.0, check_every=1, drawdown_exit=0.05)
    setup = lp.setup(context(protocol))
    assert isinstance(setup[-1], LpDeposit) and setup[-1].amount == 100_000.0
    fund(lp, protocol)
    assert lp.invested
    running = World(lp_run=0.25)
    (withdraw,) = lp.decide(context(protocol, 1, world=running))
    assert isinstance(withdraw, LpWithdraw) and withdraw.shares == pytest.approx(0.25 * protocol.vault.call("shares", lp.account) / 1e18)
    lp.peak = 2.0  # as if the share price had been twice what it is
    (leave,) = lp.decide(context(protocol, 2))
    assert leave == LpWithdraw(None)


# ------------------------------------------------------------------------- keepers


def _underwater_long(protocol: Protocol, label: str, leverage: float = 9.0) -> str:
    trader = protocol.chain.new_account(label)
    protocol.mint(trader, 10_000.0)
    protocol.deposit(trader, 10_000.0)
    protocol.trade(trader, "ETH", leverage * 10_000.0 / 2000.0)
    return trader


def test_liquidation_keeper_waits_its_reaction_delay(protocol: Protocol) -> None:
    victim = _underwater_long(protocol, "victim-delay")
    set_price(protocol, "ETH", 1880.0)  # 9x long, -6%: below maintenance
    keeper = make(LiquidationKeeper, protocol, reaction_delay=2)
    assert keeper.decide(context(protocol, 0, {"ETH": 1880.0, "BTC": 30_000.0})) == []
    assert keeper.decide(context(protocol, 1, {"ETH": 1880.0, "BTC": 30_000.0})) == []
    (action,) = keeper.decide(context(protocol, 2, {"ETH": 1880.0, "BTC": 30_000.0}))
    assert action == Liquidate(victim, 0, "ETH")
    assert run(keeper, protocol, [action])[0].ok


def test_liquidation_keeper_respects_its_gas_budget(protocol: Protocol) -> None:
    for i in range(3):
        _underwater_long(protocol, f"victim-budget-{i}")
    set_price(protocol, "ETH", 1880.0)
    keeper = make(LiquidationKeeper, protocol, gas_budget=900_000, gas_estimate=400_000)
    assert len(keeper.decide(context(protocol, 0, {"ETH": 1880.0, "BTC": 30_000.0}))) == 2


def test_the_index_finds_what_a_full_scan_finds(protocol: Protocol) -> None:
    for i in range(4):
        _underwater_long(protocol, f"scan-{i}", leverage=3.0 + 2 * i)
    for price in (2000.0, 1880.0, 1800.0, 1700.0, 1500.0):
        set_price(protocol, "ETH", price)
        found = protocol.liquidatable_accounts()
        assert found == protocol.scan_liquidatable()
    assert found  # the crash left someone liquidatable


def test_trigger_keeper_executes_crossed_orders(protocol: Protocol) -> None:
    trader = protocol.chain.new_account("stopped")
    protocol.mint(trader, 10_000.0)
    protocol.deposit(trader, 10_000.0)
    protocol.trade(trader, "ETH", 5.0)
    order = protocol.place_trigger(trader, "ETH", -5.0, 1950.0)
    keeper = make(TriggerOrderKeeper, protocol)
    assert keeper.decide(context(protocol)) == []
    set_price(protocol, "ETH", 1940.0)
    (action,) = keeper.decide(context(protocol, 1, {"ETH": 1940.0, "BTC": 30_000.0}))
    assert action == ExecuteTrigger(order)
    assert run(keeper, protocol, [action])[0].value is True
    assert keeper.decide(context(protocol, 2, {"ETH": 1940.0, "BTC": 30_000.0})) == []


def test_adl_keeper_deleverages_a_bankrupt_position(deployed: Protocol) -> None:
    chain = make_chain("revm")
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=(ETH,), vault_liquidity=5_000_000.0, reporters=1))
    victim = _underwater_long(protocol, "bankrupt", leverage=9.0)
    winner = protocol.chain.new_account("winner")
    protocol.mint(winner, 50_000.0)
    protocol.deposit(winner, 50_000.0)
    protocol.trade(winner, "ETH", -20.0)
    set_price(protocol, "ETH", 1700.0)  # -15%: the 9x long is deep under water; no insurance fund
    assert protocol.liquidate(chain.new_account("k"), victim, "ETH") == 0.0  # declared bankrupt
    keeper = make(AdlKeeper, protocol)
    (action,) = keeper.decide(context(protocol, 0, {"ETH": 1700.0}))
    assert isinstance(action, Deleverage) and action.bankrupt == (victim, 0) and action.target == (winner, 0)
    assert run(keeper, protocol, [action])[0].ok
    chain.close()


# ------------------------------------------------------------------------- reporters


def _history(n: int) -> list[dict[str, float]]:
    return [{"ETH": 2000.0 + 10 * i, "BTC": 30_000.0} for i in range(n)]


def test_honest_reporter_reports_the_true_price(protocol: Protocol) -> None:
    reporter = make(OracleReporter, protocol)
    actions = reporter.decide(context(protocol, 5, {"ETH": 2050.0, "BTC": 30_100.0}, history=_history(5)))
    assert actions == [ReportPrice("ETH", 2050.0), ReportPrice("BTC", 30_100.0)]


def test_lagging_reporter_reports_an_old_price(protocol: Protocol) -> None:
    reporter = make(OracleReporter, protocol, mode="lagging", lag_blocks=3, markets=("ETH",))
    (action,) = reporter.decide(context(protocol, 5, {"ETH": 2050.0, "BTC": 30_000.0}, history=_history(5)))
    assert action.price == 2020.0  # step 2's price


def test_stale_and_malicious_reporters(protocol: Protocol) -> None:
    stale = make(OracleReporter, protocol, mode="stale", stale_from_step=3)
    assert stale.decide(context(protocol, 3)) == []
    liar = make(OracleReporter, protocol, mode="malicious", factor=1.5, markets=("ETH",))
    assert liar.decide(context(protocol, 0))[0].price == 3000.0


def test_reporter_obeys_the_world(protocol: Protocol) -> None:
    reporter = make(OracleReporter, protocol, markets=("ETH",))
    assert reporter.decide(context(protocol, world=World(frozen_markets={"ETH"}))) == []
    assert reporter.decide(context(protocol, world=World(compromised={0: 0.5})))[0].price == 1000.0
    lagged = reporter.decide(context(protocol, 5, {"ETH": 2050.0, "BTC": 30_000.0}, World(oracle_lag=2), _history(5)))
    assert lagged[0].price == 2030.0


def test_reporter_heartbeat(protocol: Protocol) -> None:
    reporter = make(OracleReporter, protocol, heartbeat_blocks=3, markets=("ETH",))
    run(reporter, protocol, reporter.decide(context(protocol, 0)))
    assert reporter.decide(context(protocol, 1)) == []
    assert len(reporter.decide(context(protocol, 3))) == 1


# ------------------------------------------------------------------------- manipulator


def test_manipulator_opens_bribes_and_withdraws(protocol: Protocol) -> None:
    m = make(Manipulator, protocol, market="ETH", collateral=100_000.0, leverage=5.0, bribe_after=2, factor=1.3,
             take_profit=0.2, exit="withdraw_unrealized")
    fund(m, protocol)
    (open_,) = m.decide(context(protocol, 0))
    assert isinstance(open_, Trade) and open_.size == pytest.approx(5.0 * 100_000 / 2000.0)
    run(m, protocol, [open_])
    assert m.decide(context(protocol, 1)) == []
    (bribe,) = m.decide(context(protocol, 2))
    assert bribe == BribeReporters(2, 1.3, 10)
    m.on_result(bribe, Outcome(True))
    set_price(protocol, "ETH", 2600.0)
    (withdraw,) = m.decide(context(protocol, 4, {"ETH": 2000.0, "BTC": 30_000.0}))
    assert isinstance(withdraw, Withdraw) and withdraw.amount > 100_000.0  # more than it put in: paper profit


def test_manipulator_gives_up_when_the_price_does_not_move(protocol: Protocol) -> None:
    m = make(Manipulator, protocol, market="ETH", bribe_after=0, bribe_blocks=3)
    fund(m, protocol)
    run(m, protocol, m.decide(context(protocol, 0)))
    m.on_result(m.decide(context(protocol, 0))[0], Outcome(True))
    assert m.decide(context(protocol, 2)) == []
    assert m.decide(context(protocol, 5)) == [ClosePosition("ETH", slippage=0.05)]


def test_manipulator_side_and_factor_must_agree() -> None:
    problems = Manipulator.check_config(Manipulator.Config(side="long", factor=0.8), ("ETH",))
    assert problems and problems[0][0] == "factor"


def test_rng_streams_differ_by_agent_index() -> None:
    a, b = stream(1, AGENT_STREAM, 0).random(4), stream(1, AGENT_STREAM, 1).random(4)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, stream(1, AGENT_STREAM, 0).random(4))
