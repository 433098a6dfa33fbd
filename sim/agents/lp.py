"""The liquidity provider: deposits into the Vault and leaves on losses, risk or a run."""

from __future__ import annotations

from pydantic import Field

from sim.bounds import MAX_RATIO, MAX_STEPS, MAX_USD, MIN_USD, Integer, Number
from sim.agents.base import (
    Action,
    Agent,
    AgentConfig,
    LpDeposit,
    LpWithdraw,
    Mint,
    Outcome,
    StepContext,
    config_dataclass,
)


class LiquidityProvider(Agent):
    """Deposits `deposit` into the Vault before step 0. Every `check_every` blocks it looks at
    the share price and the Vault's risk: it withdraws everything when the share price falls
    `drawdown_exit` below its peak, or open interest passes `utilization_exit` times NAV, and
    comes back `reenter_after` blocks later. During an `lp_run` shock it tries to withdraw
    that fraction of its shares until a withdrawal lands (the reserve may refuse it)."""

    kind = "lp"
    role = "lp"
    phase = "trader"

    @config_dataclass
    class Config(AgentConfig):
        deposit: Number = Field(100_000.0, ge=MIN_USD, le=MAX_USD,
                                description="USD minted and deposited into the Vault before step 0")
        check_every: Integer = Field(10, ge=1, le=MAX_STEPS, description="blocks between looks at NAV and risk")
        drawdown_exit: Number = Field(0.05, gt=0, lt=1,
                                      description="share-price fall from its peak that makes it leave")
        utilization_exit: Number = Field(5.0, gt=0, le=MAX_RATIO,
                                         description="open-interest notional / NAV that makes it leave")
        reenter_after: Integer = Field(200, ge=1, le=MAX_STEPS, description="blocks out before depositing again")

    config: Config

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.invested = False
        self.peak = 0.0
        self.left_at: int | None = None
        self.ran = False  # this lp_run's withdrawal landed
        self.now = -1  # the step being decided, for on_result

    def setup(self, ctx: StepContext) -> list[Action]:
        return [Mint(self.config.deposit), LpDeposit(self.config.deposit)]

    def decide(self, ctx: StepContext) -> list[Action]:
        self.now = ctx.step
        if not self.active(ctx):
            return []
        if ctx.world.lp_run > 0:
            if self.invested and not self.ran:
                shares = ctx.protocol.vault.call("shares", self.account) / 1e18
                return [LpWithdraw(shares * ctx.world.lp_run)] if shares > 0 else []
            return []
        self.ran = False
        if ctx.step % self.config.check_every:
            return []
        if self.invested:
            price = ctx.vault_share_price()
            self.peak = max(self.peak, price)
            nav = ctx.protocol.vault_nav()
            utilization = ctx.open_interest_notional() / nav if nav > 0 else float("inf")
            if price < self.peak * (1 - self.config.drawdown_exit) or utilization > self.config.utilization_exit:
                return [LpWithdraw(None)]
            return []
        if self.left_at is not None and ctx.step - self.left_at >= self.config.reenter_after:
            balance = ctx.protocol.token_balance(self.account)
            return [LpDeposit(balance)] if balance >= 1 else []
        return []

    def on_result(self, action: Action, outcome: Outcome) -> None:
        if not outcome.ok:
            return
        if isinstance(action, LpDeposit):
            self.invested, self.left_at, self.peak = True, None, 0.0
        elif isinstance(action, LpWithdraw):
            if action.shares is None:
                self.invested = False
                self.left_at = self.now
            else:
                self.ran = True
