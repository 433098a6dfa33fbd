"""A portfolio trader: one book over several markets, cross-margined or isolated (DESIGN §4).

Cross margin is one subaccount holding every leg, so a leg's gains carry another's losses,
and the whole book is margined (and liquidated) as one. Isolated margin is dYdX v4's design:
each leg in a subaccount of its own with its share of the collateral, so a leg can only lose
what it was given. The `correlation-spike` scenario runs the same book both ways.
"""

from __future__ import annotations

from pydantic import Field

from sim.bounds import MAX_LEVERAGE, MAX_STEPS, MAX_USD, MIN_USD, Flag, Integer, Number
from sim.agents.base import Action, Agent, AgentConfig, Deposit, Mint, StepContext, Trade, config_dataclass


class PortfolioTrader(Agent):
    """Holds a book over several markets: `weights` give each leg's side and its share of the
    notional, `leverage` the book's notional over its equity. It sizes the book at
    `start_step` and holds it, topping a leg back up only when it has drifted by more than
    `rebalance_drift` of its target. Cross-margined by default (one subaccount for the whole
    book); with `isolated`, each leg trades from a subaccount of its own holding the leg's
    share of the collateral, sized on that subaccount's equity."""

    kind = "portfolio_trader"
    role = "trader"
    phase = "trader"

    @config_dataclass
    class Config(AgentConfig):
        collateral: Number = Field(100_000.0, ge=MIN_USD, le=MAX_USD, description="USD deposited before step 0")
        weights: dict[str, float] = Field(
            default_factory=lambda: {"ETH": 1.0}, min_length=1,
            description="market -> signed weight (1: long, -1: short); a leg's notional is its |weight| share of "
            "the book's")
        leverage: Number = Field(3.0, gt=0, le=MAX_LEVERAGE, description="book notional / equity")
        isolated: Flag = Field(False, description="each leg in its own subaccount with its share of the collateral "
                               "(isolated margin); false: one cross-margined subaccount")
        rebalance_drift: Number = Field(0.5, gt=0, le=MAX_LEVERAGE,
                                        description="a leg is resized when it is this fraction off its target")
        check_blocks: Integer = Field(10, ge=1, le=MAX_STEPS, description="blocks between looks at the book")
        slippage: Number = Field(0.03, gt=0, lt=1, description="limit price distance from the index (fraction)")

    config: Config

    @classmethod
    def check_config(cls, config: Config, markets: tuple[str, ...]) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        unknown = [m for m in config.weights if m not in markets]
        if unknown:
            problems.append(("weights", unknown, f"markets of the scenario {list(markets)}"))
        if not any(config.weights.values()):
            problems.append(("weights", config.weights, "at least one non-zero weight"))
        return problems

    @property
    def legs(self) -> tuple[str, ...]:
        return tuple(m for m, w in self.config.weights.items() if w)

    @property
    def subaccounts(self) -> tuple[int, ...]:
        return tuple(range(len(self.legs))) if self.config.isolated else (0,)

    def _share(self, market: str) -> float:
        total = sum(abs(w) for w in self.config.weights.values())
        return abs(self.config.weights[market]) / total

    def _subaccount(self, market: str) -> int:
        return self.legs.index(market) if self.config.isolated else 0

    def setup(self, ctx: StepContext) -> list[Action]:
        cfg = self.config
        if not cfg.isolated:
            return [Mint(cfg.collateral), Deposit(cfg.collateral)]
        return [Mint(cfg.collateral)] + [Deposit(cfg.collateral * self._share(m), self._subaccount(m))
                                         for m in self.legs]

    def decide(self, ctx: StepContext) -> list[Action]:
        cfg = self.config
        if not self.active(ctx) or (ctx.step - cfg.start_step) % cfg.check_blocks:
            return []
        actions: list[Action] = []
        equity = {sub: ctx.protocol.health(self.account, sub).equity for sub in self.subaccounts}
        for market in self.legs:
            view = ctx.market(market)
            sub = self._subaccount(market)
            if not view.valid or equity[sub] <= 0:
                continue
            notional = cfg.leverage * equity[sub] * (1.0 if cfg.isolated else self._share(market))
            target = notional / view.index_price * (1 if cfg.weights[market] > 0 else -1)
            have = ctx.protocol.position_size(self.account, market, sub)
            if have and abs(target - have) <= cfg.rebalance_drift * abs(target):
                continue
            if have and target * have > 0 and abs(target) < abs(have):
                continue  # it never cuts: a leg grown large against shrunk equity is left to its margin
            size = target - have
            limit = view.index_price * (1 + cfg.slippage if size > 0 else 1 - cfg.slippage)
            actions.append(Trade(market, float(f"{size:.12g}"), limit, sub))
        return actions
