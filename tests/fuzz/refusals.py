"""Why an action may be refused: one small predicate per revert reason, computed from views.

The state machine (stateful_base.py) accepts a revert only when the predicate of its reason
holds in the state the action met, so a contract that refuses a valid action fails the run
(tests/fuzz/test_over_strict.py shows it on deliberately over-strict contracts).

A predicate answers from views where the contract's condition is a function of the state
before the action (the open-interest cap, a withdrawal's margin, the Vault's reserve). Where
the condition is on the state *after* the action's fills (a trade's margin, the Vault's
balance while it pays), it asks a counterfactual: the same action again in a snapshot where
one input the reason depends on is changed and nothing the fills depend on is, then reverted.

- More collateral (`with_collateral`): a deposit of D raises equity by exactly D and changes
  neither the fill price, the fee, the realised PnL nor the margin requirement; so the
  action, taken again after it, shows the equity and margin the original would have ended
  with, less D.
- More Vault tokens (`with_vault_tokens`): the Vault's balance enters the protocol's control
  flow only at its liquidity check, so the action taken again with a topped-up Vault makes
  the same transfers, and walking them from the real balance shows whether the Vault would
  have run dry.

A new refusal reason in a contract gets its predicate here, and its line in the helper that
may meet it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.chain import Event, Reverted
from sim.protocol import Protocol
from sim.units import WAD, to_wad
from tests.utils.constants import PRECISION

Action = Callable[[], Any]

# Far beyond any equity or payment the suite can build, far below the contracts' input bounds.
AMPLE_COLLATERAL_USD = 10**12
AMPLE_VAULT_TOKENS = 10**24
UNCAPPED_OI = 10**15  # base units

# Checks the Exchange makes after a trade's fills, that is after every payment the Vault makes.
CHECKS_AFTER_PAYMENTS = ("exchange: open interest cap", "exchange: below initial margin",
                         "exchange: negative equity, liquidate instead")


@dataclass(frozen=True)
class Outcome:
    """What an action did in a counterfactual: its revert reason (None when it went
    through), the events it logged, and the health of the subaccount it was asked about."""

    reverted: bool
    reason: str | None
    events: list[Event]
    health: tuple[int, int, int, int] | None  # (equity, initial margin, maintenance margin, notional)


class Refusals:
    """The predicates, bound to one deployed protocol. `funder` signs the counterfactuals'
    mints and parameter changes (the protocol's owner)."""

    def __init__(self, protocol: Protocol, funder: str) -> None:
        self.protocol = protocol
        self.chain = protocol.chain
        self.funder = funder

    # ================================================================ from views
    def fill_beyond_limit(self, market: int, size_delta: int, limit: int) -> bool:
        """`exchange: price above limit` / `below limit`: the fill now misses the limit."""
        fill = self.protocol.exchange.call("fill_price", market, size_delta)
        return fill > limit if size_delta > 0 else fill < limit

    def facade_limit(self, market: int, size_delta: int, slippage: float) -> int:
        """The limit `Protocol.trade_wad` sends: the quote moved by `slippage` against the trader."""
        quote = self.protocol.exchange.call("fill_price", market, size_delta)
        worse = WAD + to_wad(slippage) if size_delta > 0 else WAD - to_wad(slippage)
        return quote * worse // WAD

    def open_interest_cap_passed(self, market: int, old: int, new: int) -> bool:
        """`exchange: open interest cap`: after the trade a side's open interest is above the cap."""
        state = self.protocol.exchange.call("market_states", market)
        cap = self.protocol.exchange.call("markets", market)[6]
        longs = state[0] - max(old, 0) + max(new, 0)
        shorts = state[1] - max(-old, 0) + max(-new, 0)
        return longs > cap or shorts > cap

    def withdrawal_exceeds_collateral(self, owner: str, sub: int, tokens: int) -> bool:
        """`exchange: withdrawal exceeds collateral`: more than the collateral, where unrealised
        PnL may not leave (some market held disallows it, or nothing is held)."""
        return not self.may_take_unrealised_pnl(owner, sub) and tokens * PRECISION > self._collateral(owner, sub)

    def withdrawal_below_initial_margin(self, owner: str, sub: int, tokens: int) -> bool:
        """`exchange: below initial margin` on a withdrawal: equity falls by exactly the amount."""
        equity, initial_margin, _, _ = self.protocol.exchange.call("health", owner, sub)
        return equity - tokens * PRECISION < initial_margin

    def vault_cannot_lend(self, owner: str, sub: int, tokens: int) -> bool:
        """`vault: insufficient liquidity` on a withdrawal of unrealised PnL: the Vault pays what
        the positive collateral does not cover, and holds less than that."""
        collateral = self._collateral(owner, sub)
        held = (max(collateral, 0) - max(collateral - tokens * PRECISION, 0)) // PRECISION
        return self.may_take_unrealised_pnl(owner, sub) and tokens - held > self._vault_balance()

    def may_take_unrealised_pnl(self, owner: str, sub: int) -> bool:
        """Every market the subaccount holds allows unrealised PnL out (and it holds one)."""
        markets = self.protocol.exchange.call("accounts", owner, sub)[1]
        return bool(markets) and all(self.protocol.exchange.call("markets", m)[13] for m in markets)

    def lp_payout(self, share_amount: int) -> int:
        """Tokens a Vault withdrawal of `share_amount` pays at the current NAV."""
        nav = self.protocol.vault.call("nav")
        return max(nav, 0) * share_amount // self.protocol.vault.call("total_shares") // PRECISION

    def lp_withdrawal_beyond_balance(self, share_amount: int) -> bool:
        """`vault: insufficient liquidity` on an LP withdrawal: the payout is more than the Vault holds."""
        return self.lp_payout(share_amount) > self._vault_balance()

    def lp_withdrawal_below_reserve(self, share_amount: int) -> bool:
        """`vault: below reserve`: what stays is less than reserve_factor x open-interest notional."""
        balance = self._vault_balance()
        reserve = self.protocol.vault.call("reserve_factor") * self.protocol.exchange.call("open_interest_notional") // WAD
        return (balance - self.lp_payout(share_amount)) * PRECISION < reserve

    def liquidations_paused(self, market: int) -> bool:
        """`liquidator: liquidations paused`: the feed is invalid and the market does not
        liquidate on the last valid price."""
        return not self.protocol.exchange.call("index_price", market)[1] and not self.protocol.liquidator.call(
            "params", market)[3]

    def market_paused(self, market: int) -> bool:
        return self.protocol.exchange.call("market_states", market)[9]

    # ================================================================ counterfactuals
    def below_initial_margin_after(self, owner: str, sub: int, action: Action) -> bool:
        """`exchange: below initial margin` on a trade: the action, taken with more collateral,
        ends with equity less that collateral below initial margin."""
        outcome = self.with_collateral(owner, sub, action)
        assert not outcome.reverted, f"with ample collateral the trade still reverts: {outcome.reason!r}"
        equity, initial_margin, _, _ = outcome.health
        return equity - AMPLE_COLLATERAL_USD * WAD < initial_margin

    def negative_equity_after(self, owner: str, sub: int, action: Action) -> bool:
        """`exchange: negative equity, liquidate instead`: the reducing trade, taken with more
        collateral, ends with equity less that collateral below zero."""
        outcome = self.with_collateral(owner, sub, action)
        assert not outcome.reverted, f"with ample collateral the trade still reverts: {outcome.reason!r}"
        return outcome.health[0] - AMPLE_COLLATERAL_USD * WAD < 0

    def vault_runs_dry(self, action: Action, market: int | None = None) -> bool:
        """`vault: insufficient liquidity` on a trade, liquidation, ADL or trigger: the action,
        taken with a topped-up Vault (and, for a trade, no open-interest cap), makes
        transfers that the real balance could not pay.

        When the retry is refused by a check the Exchange makes only after every payment
        (margin, equity), its transfers are not visible; then it is enough that the Vault's
        balance was what stopped the action: with more tokens it got past the payments."""
        outcome = self.with_vault_tokens(action, uncap_market=market)
        if outcome.reverted:
            return outcome.reason in CHECKS_AFTER_PAYMENTS
        balance = self._vault_balance()
        vault, token = self.protocol.vault.address, self.protocol.usdc.address
        for e in outcome.events:
            if e.name != "Transfer" or e.address != token:
                continue
            if e.args["sender"] == vault:
                balance -= e.args["value"]
                if balance < 0:
                    return True
            if e.args["receiver"] == vault:
                balance += e.args["value"]
        return False

    def with_collateral(self, owner: str, sub: int, action: Action) -> Outcome:
        """`action` after a deposit of AMPLE_COLLATERAL_USD into owner/sub and a topped-up
        Vault (a subaccount with more collateral settles more of its profit in tokens)."""

        def prepare() -> None:
            self.protocol.mint(owner, AMPLE_COLLATERAL_USD)
            self.protocol.deposit(owner, AMPLE_COLLATERAL_USD, sub)
            self._top_up_vault()

        return self._counterfactual(prepare, action, (owner, sub))

    def with_vault_tokens(self, action: Action, uncap_market: int | None = None) -> Outcome:
        """`action` with AMPLE_VAULT_TOKENS more in the Vault and, if `uncap_market` is given,
        that market's open-interest cap lifted."""

        def prepare() -> None:
            self._top_up_vault()
            if uncap_market is not None:
                params = list(self.protocol.exchange.call("markets", uncap_market))
                params[6] = UNCAPPED_OI * WAD
                self.protocol.exchange.transact("set_market_params", uncap_market, tuple(params), sender=self.funder)

        return self._counterfactual(prepare, action, None)

    def _counterfactual(self, prepare: Action, action: Action, who: tuple[str, int] | None) -> Outcome:
        snapshot = self.protocol.snapshot()
        try:
            prepare()
            cursor = self._event_count()
            try:
                action()
            except Reverted as exc:
                return Outcome(True, exc.reason, [], None)
            events, _ = self.chain.events_since(cursor)
            health = self.protocol.exchange.call("health", *who) if who else None
            return Outcome(False, None, events, health)
        finally:
            self.protocol.revert(snapshot)

    # ================================================================ reading
    def _top_up_vault(self) -> None:
        self.protocol.usdc.transact("mint", self.protocol.vault.address, AMPLE_VAULT_TOKENS, sender=self.funder)

    def _vault_balance(self) -> int:
        return self.protocol.usdc.call("balanceOf", self.protocol.vault.address)

    def _collateral(self, owner: str, sub: int) -> int:
        return self.protocol.exchange.call("accounts", owner, sub)[0]

    def _event_count(self) -> int:
        return self.chain.events_since(2**62)[1]
