"""Why an action may be refused: one small predicate per revert reason, computed from views.

The state machine (stateful_base.py) accepts a revert only when the predicate of its reason
holds in the state the action met, so a contract that refuses a valid action fails the run
(tests/fuzz/test_over_strict.py shows it on deliberately over-strict contracts).

A predicate answers from views where the contract's condition is a function of the state
before the action (the open-interest cap, the Vault's balance and debt, the liquidation
window, the skew at the block's start). Where the condition is on the state *after* the
action's fills (a trade's margin, the Vault's reserve), it asks a counterfactual: the same
action again in a snapshot where one input the reason depends on is changed and nothing the
fills depend on is, then reverted.

- More collateral (`with_collateral`): a deposit of D raises equity by exactly D and changes
  neither the fill price, the fee, the realised PnL nor the margin requirement; so the
  action, taken again after it, shows the equity and margin the original would have ended
  with, less D.
- No reserve (`with_reserve_off`): the Vault's reserve factor enters a trade only at the
  Exchange's reserve check, the last check before the margin check; with it at 0 the trade
  makes the same fills, and the state it leaves is the state the reserve check saw. Where
  the margin check would stop it too, the margin fractions of the subaccount's markets go to
  their least as well: set after the markets' funding is brought up to now, they enter no fill.

Margin checks on a user's own action (a trade, a withdrawal, a trigger's fee) price each
position at the end of its feed's disputed band that is worse for it (`worst_health`); the
`health` view prices at the last accepted price. Where the two differ (a breach pending),
the counterfactual has the owner accept that end (`_to_worse_ends`), which makes `health`
read what the Exchange checked.

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
Health = tuple[int, int, int, int]  # (equity, initial margin, maintenance margin, notional), USD 1e18

# Far beyond any equity or payment the suite can build, far below the contracts' input bounds.
AMPLE_COLLATERAL_USD = 10**12
AMPLE_VAULT_TOKENS = 10**24
VIRTUAL = 10**18  # the Vault's virtual shares and assets (Vault.vy VIRTUAL_SHARES, VIRTUAL_ASSETS)
ADL_ROUNDING_UNITS = 2  # token units the Liquidator keeps back from an ADL target's room

# Field positions in the contracts' structs, as their getters return them.
M_ASSET, M_IMF, M_MMF, M_TAKER_FEE, M_SKEW_SCALE, M_MAX_OI, M_ALLOW_PNL = 0, 1, 2, 3, 5, 6, 13  # Exchange.markets
S_OI_LONG, S_OI_SHORT, S_PAUSED, S_REF_BLOCK, S_SKEW_HIGH, S_SKEW_LOW = 0, 1, 9, 12, 13, 14  # Exchange.market_states
F_MIN_REPORTERS = 1  # Oracle.feeds
L_WHEN_INVALID, L_LIMIT_SCALAR = 3, 5  # Liquidator.params


def sip279_fill(index: int, skew: int, skew_scale: int, size_delta: int) -> int:
    """perp_math.fill_price: index x (1 + (premium before + premium after) / 2), a buy
    rounded up and a sell down."""
    numerator, denominator = index * (2 * skew + size_delta), 2 * skew_scale
    adjustment = -(-numerator // denominator) if size_delta > 0 else numerator // denominator
    return max(index + adjustment, 0)


@dataclass(frozen=True)
class Outcome:
    """What an action did in a counterfactual: its revert reason (None when it went
    through), the events it logged, and what `read` found after it."""

    reverted: bool
    reason: str | None
    events: list[Event]
    reading: Any


class Refusals:
    """The predicates, bound to one deployed protocol. `funder` signs the counterfactuals'
    mints and parameter changes (the protocol's owner)."""

    def __init__(self, protocol: Protocol, funder: str) -> None:
        self.protocol = protocol
        self.chain = protocol.chain
        self.exchange = protocol.exchange
        self.funder = funder

    # ================================================================ from views: trades
    def fill_beyond_limit(self, market: int, size_delta: int, limit: int) -> bool:
        """`exchange: price above limit` / `below limit`: the fill now (at the end of a disputed
        band that is worse for the trade) misses the limit."""
        fill = self.protocol.lens.call("fill_price", market, size_delta)
        return fill > limit if size_delta > 0 else fill < limit

    def facade_limit(self, market: int, size_delta: int, slippage: float) -> int:
        """The limit `Protocol.trade_wad` sends: the quote moved by `slippage` against the trader."""
        quote = self.protocol.lens.call("fill_price", market, size_delta)
        worse = WAD + to_wad(slippage) if size_delta > 0 else WAD - to_wad(slippage)
        return quote * worse // WAD

    def open_interest_cap_passed(self, market: int, old: int, new: int) -> bool:
        """`exchange: open interest cap`: after the trade a side's open interest is above the cap."""
        state = self.exchange.call("market_states", market)
        cap = self.exchange.call("markets", market)[M_MAX_OI]
        longs = state[S_OI_LONG] - max(old, 0) + max(new, 0)
        shorts = state[S_OI_SHORT] - max(-old, 0) + max(-new, 0)
        return longs > cap or shorts > cap

    def skew_moved(self, market: int, size_delta: int) -> bool:
        """`exchange: skew moved this block` on a trigger order's fill: something in this block
        moved the skew against the order from a point it has since left, so the skew now is
        not the best for the order that the block has seen (a buy needs the block's lowest
        skew, a sell its highest; nothing has moved if nothing touched the market)."""
        state = self.exchange.call("market_states", market)
        if state[S_REF_BLOCK] != self.chain.block_number:
            return False
        skew = state[S_OI_LONG] - state[S_OI_SHORT]
        return skew > state[S_SKEW_LOW] if size_delta > 0 else skew < state[S_SKEW_HIGH]

    def market_paused(self, market: int) -> bool:
        return self.exchange.call("market_states", market)[S_PAUSED]

    # ================================================================ from views: collateral
    def withdrawal_exceeds_collateral(self, owner: str, sub: int, tokens: int) -> bool:
        """`exchange: withdrawal exceeds collateral`: more than the collateral, where unrealised
        PnL may not leave (some market held disallows it, or nothing is held)."""
        return not self.may_take_unrealised_pnl(owner, sub) and tokens * PRECISION > self._collateral(owner, sub)

    def withdrawal_below_initial_margin(self, owner: str, sub: int, tokens: int) -> bool:
        """`exchange: below initial margin` on a withdrawal: equity, at the worse end of each
        disputed band, falls by exactly the amount."""
        equity, initial_margin, _, _ = self.worst_health(owner, sub)
        return equity - tokens * PRECISION < initial_margin

    def exchange_illiquid(self, owner: str, sub: int, tokens: int) -> bool:
        """`exchange: vault illiquid`: the Exchange holds less than the positive collateral this
        withdrawal takes, and what the Vault pays of its debt does not make it up."""
        held, exchange_tokens, _, collected = self._withdrawal_flows(owner, sub, tokens)
        return exchange_tokens + collected < held

    def vault_cannot_lend(self, owner: str, sub: int, tokens: int) -> bool:
        """`vault: insufficient liquidity` on a withdrawal of unrealised PnL: the Vault lends what
        the positive collateral does not cover, and holds less than that once it has paid
        the Exchange what it collected of its debt."""
        held, _, vault_tokens, collected = self._withdrawal_flows(owner, sub, tokens)
        return self.may_take_unrealised_pnl(owner, sub) and tokens - held > vault_tokens - collected

    def _withdrawal_flows(self, owner: str, sub: int, tokens: int) -> tuple[int, int, int, int]:
        """(tokens the positive collateral gives up, the Exchange's balance, the Vault's balance,
        the Vault's debt the Exchange collects first), as Exchange.withdraw moves them."""
        collateral = self._collateral(owner, sub)
        held = (max(collateral, 0) - max(collateral - tokens * PRECISION, 0)) // PRECISION
        exchange_tokens = self.protocol.usdc.call("balanceOf", self.exchange.address)
        vault_tokens = self._vault_balance()
        debt = self.exchange.call("vault_debt") // PRECISION
        collected = min(held - exchange_tokens, debt, vault_tokens) if debt > 0 and exchange_tokens < held else 0
        return held, exchange_tokens, vault_tokens, collected

    def may_take_unrealised_pnl(self, owner: str, sub: int) -> bool:
        """Every market the subaccount holds allows unrealised PnL out (and it holds one)."""
        markets = self.exchange.call("accounts", owner, sub)[1]
        return bool(markets) and all(self.exchange.call("markets", m)[M_ALLOW_PNL] for m in markets)

    # ================================================================ from views: the Vault
    def lp_payout(self, share_amount: int) -> int:
        """Tokens a Vault withdrawal of `share_amount` pays at the bid NAV, virtual shares included."""
        nav = self.protocol.vault.call("nav")
        total = self.protocol.vault.call("total_shares")
        return (nav + VIRTUAL) * share_amount // (total + VIRTUAL) // PRECISION

    def lp_payout_zero(self, share_amount: int) -> bool:
        """`vault: zero amount` on an LP withdrawal: the shares are worth less than a token unit."""
        return self.lp_payout(share_amount) == 0

    def lp_withdrawal_beyond_balance(self, share_amount: int) -> bool:
        """`vault: insufficient liquidity` on an LP withdrawal: the payout and what the Vault owes
        the Exchange are more than it holds."""
        owed = self.lp_payout(share_amount) * PRECISION + self.exchange.call("vault_debt")
        return owed > self._vault_balance() * PRECISION

    def lp_withdrawal_below_reserve(self, share_amount: int) -> bool:
        """`vault: below reserve`: what stays, less what the Vault owes the Exchange, is less than
        reserve_factor x open-interest notional."""
        reserve = self.protocol.vault.call("reserve_factor") * self.exchange.call("open_interest_notional") // WAD
        left = (self._vault_balance() - self.lp_payout(share_amount)) * PRECISION
        return left < reserve + self.exchange.call("vault_debt")

    def lp_shares_for(self, tokens: int) -> int:
        """Shares an LP deposit of `tokens` mints at the ask NAV, virtual shares included."""
        _, ask = self.protocol.vault.call("nav_bounds")
        total = self.protocol.vault.call("total_shares")
        return tokens * PRECISION * (total + VIRTUAL) // (ask + VIRTUAL) if ask + VIRTUAL > 0 else 0

    def lp_vault_insolvent_at_ask(self) -> bool:
        """`vault: insolvent` on an LP deposit: the ask NAV, with the virtual dollar, is not positive."""
        return self.protocol.vault.call("nav_bounds")[1] + VIRTUAL <= 0

    # ================================================================ from views: keepers
    def liquidations_paused(self, market: int) -> bool:
        """`liquidator: liquidations paused`: the feed is invalid and the market does not
        liquidate on the last valid price."""
        return not self.exchange.call("index_price", market)[1] and not self.protocol.liquidator.call(
            "params", market)[L_WHEN_INVALID]

    def liquidation_limit_reached(self, market: int) -> bool:
        """`liquidator: limit reached`: the market has a per-block liquidation limit
        (scalar x taker fee x skew scale base units) and this block has used all of it."""
        scalar = self.protocol.liquidator.call("params", market)[L_LIMIT_SCALAR]
        params = self.exchange.call("markets", market)
        limit = scalar * params[M_TAKER_FEE] // WAD * params[M_SKEW_SCALE] // WAD
        block, closed = self.protocol.liquidator.call("windows", market)
        return limit > 0 and block == self.chain.block_number and closed >= limit

    def bankrupt_recovered(self, owner: str, sub: int) -> bool:
        """`liquidator: bankrupt recovered`: the bankrupt subaccount's equity is back at zero or more."""
        return self.exchange.call("health", owner, sub)[0] >= 0

    def adl_target_equity_too_low(self, bankrupt: tuple[str, int], target: tuple[str, int], market: int,
                                  size: int) -> bool:
        """`liquidator: target equity too low`: each unit closed at the bankruptcy price costs the
        target more (against mark) than the maintenance margin it frees, and its equity above
        maintenance margin (less the Liquidator's rounding allowance) pays for not one base unit."""
        mark = self.exchange.call("mark_price", market)
        price = self.protocol.liquidator.call("bankruptcy_price", *bankrupt, market)
        adverse = abs(price - mark)
        freed = mark * self.exchange.call("markets", market)[M_MMF] // WAD
        amount = min(size, abs(self._size(*bankrupt, market)), abs(self._size(*target, market)))
        if amount == 0 or adverse <= freed:
            return False
        equity, _, maintenance, _ = self.exchange.call("health", *target)
        room = equity - maintenance - ADL_ROUNDING_UNITS * PRECISION
        return max(room, 0) * WAD // (adverse - freed) == 0

    # ================================================================ counterfactuals
    def below_initial_margin_after(self, owner: str, sub: int, action: Action) -> bool:
        """`exchange: below initial margin` on a trade: the action, taken with more collateral,
        ends with worst-case equity less that collateral below initial margin."""
        outcome = self.with_collateral(owner, sub, action)
        assert not outcome.reverted, f"with ample collateral the trade still reverts: {outcome.reason!r}"
        equity, initial_margin, _, _ = outcome.reading
        return equity - AMPLE_COLLATERAL_USD * WAD < initial_margin

    def negative_equity_after(self, owner: str, sub: int, action: Action) -> bool:
        """`exchange: negative equity, liquidate instead`: the reducing trade, taken with more
        collateral, ends with worst-case equity less that collateral below zero. A trigger
        order's keeper fee, charged after the trade's check, is added back."""
        outcome = self.with_collateral(owner, sub, action)
        assert not outcome.reverted, f"with ample collateral the trade still reverts: {outcome.reason!r}"
        fees = sum(e.args["amount"] for e in outcome.events if e.name == "FeeCharged"
                   and (e.args["owner"], e.args["subaccount"]) == (owner, sub)) * PRECISION
        return outcome.reading[0] + fees - AMPLE_COLLATERAL_USD * WAD < 0

    def vault_reserve_exceeded_after(self, owner: str, sub: int, market: int, action: Action) -> bool:
        """`exchange: vault reserve exceeded`: with the reserve off, the trade leaves the Vault
        holding less, net of its debt to the Exchange, than reserve_factor x the open-interest
        notional it leaves. A trade that would also fail its margin is taken with the margin
        fractions of the subaccount's markets at their least as well (they enter no fill);
        one that would leave negative equity even so must be refused whatever the reserve."""
        reserve_factor = self.protocol.vault.call("reserve_factor")
        outcome = self.with_reserve_off(action, read=self._vault_cover)
        if outcome.reverted and outcome.reason == "exchange: below initial margin":
            markets = {market, *self.exchange.call("accounts", owner, sub)[1]}
            outcome = self.with_reserve_off(action, read=self._vault_cover, least_margin=markets)
            if outcome.reverted and outcome.reason == "exchange: below initial margin":
                return self.below_initial_margin_after(owner, sub, action)
        assert not outcome.reverted, f"with the reserve off the trade reverts with {outcome.reason!r}"
        free, open_interest = outcome.reading
        return free < reserve_factor * open_interest // WAD

    def attempt(self, action: Action) -> Outcome:
        """`action` in a snapshot, then reverted: whether it would go through now, and its events."""
        return self._counterfactual(lambda: None, action, None)

    def with_collateral(self, owner: str, sub: int, action: Action) -> Outcome:
        """`action` after a deposit of AMPLE_COLLATERAL_USD into owner/sub and a topped-up Vault
        (so that neither the Vault's liquidity nor its reserve stops it); read: the worst-case
        health of owner/sub after it."""

        def prepare() -> None:
            self.protocol.mint(owner, AMPLE_COLLATERAL_USD)
            self.protocol.deposit(owner, AMPLE_COLLATERAL_USD, sub)
            self._top_up_vault()

        def read() -> Health:
            self._to_worse_ends(owner, sub)
            return self.exchange.call("health", owner, sub)

        return self._counterfactual(prepare, action, read)

    def with_reserve_off(self, action: Action, read: Callable[[], Any],
                         least_margin: set[int] = frozenset()) -> Outcome:
        """`action` with the Vault's reserve factor at 0 (the Exchange then skips its reserve
        check) and, in the markets `least_margin`, margin fractions of 2 and 1 wei: changed
        after the market's funding is brought up to now at the old ones, they enter no fill."""

        def prepare() -> None:
            self.protocol.vault.transact("set_reserve_factor", 0, sender=self.funder)
            for m in sorted(least_margin):
                params = list(self.exchange.call("markets", m))
                params[M_IMF], params[M_MMF] = 2, 1
                self.exchange.transact("set_market_params", m, tuple(params), sender=self.funder)

        return self._counterfactual(prepare, action, read)

    def worst_health(self, owner: str, sub: int) -> Health:
        """The health the Exchange checks a user's own action at: each position at the end of
        its feed's disputed band that is worse for it (the `health` view where no band is open)."""
        if not self._worse_ends(owner, sub):
            return self.exchange.call("health", owner, sub)
        return self._counterfactual(lambda: self._to_worse_ends(owner, sub), lambda: None,
                                    lambda: self.exchange.call("health", owner, sub)).reading

    def _worse_ends(self, owner: str, sub: int) -> list[int]:
        """The assets whose disputed band's worse end (for the subaccount's position there) is
        not the feed's last accepted price."""
        assets = []
        for m in self.exchange.call("accounts", owner, sub)[1]:
            price, low, high, _ = self._band(m)
            if (low if self._size(owner, sub, m) > 0 else high) != price:
                assets.append(self.exchange.call("markets", m)[M_ASSET])
        return assets

    def _to_worse_ends(self, owner: str, sub: int) -> None:
        """The owner makes each feed whose worse end is the fresh median accept it (lowering the
        reporters it needs to those it has): `health` then prices every position where the
        Exchange's worst case does. The TWAP is unchanged: accepting at the current second adds
        nothing to its integral, and the ring of observations covers far more than the window."""
        oracle = self.protocol.oracle
        for asset in self._worse_ends(owner, sub):
            feed = list(oracle.call("feeds", asset))
            _, count = oracle.call("median", asset)
            if count < feed[F_MIN_REPORTERS]:
                feed[F_MIN_REPORTERS] = count
                oracle.transact("set_feed", asset, tuple(feed), sender=self.funder)
            oracle.transact("clear_breach", asset, sender=self.funder)

    def _counterfactual(self, prepare: Action, action: Action, read: Callable[[], Any] | None) -> Outcome:
        snapshot = self.protocol.snapshot()
        try:
            prepare()
            cursor = self._event_count()
            try:
                action()
            except Reverted as exc:
                return Outcome(True, exc.reason, [], None)
            events, _ = self.chain.events_since(cursor)
            return Outcome(False, None, events, read() if read else None)
        finally:
            self.protocol.revert(snapshot)

    # ================================================================ reading
    def _vault_cover(self) -> tuple[int, int]:
        """(the Vault's tokens less its debt to the Exchange, USD 1e18; open-interest notional)."""
        free = self._vault_balance() * PRECISION - self.exchange.call("vault_debt")
        return free, self.exchange.call("open_interest_notional")

    def _band(self, market: int) -> tuple[int, int, int, bool]:
        asset = self.exchange.call("markets", market)[M_ASSET]
        return self.protocol.oracle.call("price_band", asset)

    def _size(self, owner: str, sub: int, market: int) -> int:
        return self.exchange.call("positions", owner, sub, market)[0]

    def _top_up_vault(self) -> None:
        self.protocol.usdc.transact("mint", self.protocol.vault.address, AMPLE_VAULT_TOKENS, sender=self.funder)

    def _vault_balance(self) -> int:
        return self.protocol.usdc.call("balanceOf", self.protocol.vault.address)

    def _collateral(self, owner: str, sub: int) -> int:
        return self.exchange.call("accounts", owner, sub)[0]

    def _event_count(self) -> int:
        return self.chain.events_since(2**62)[1]
