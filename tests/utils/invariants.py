"""DESIGN §5 invariants as small named checks against the chain's own views and balances.

Each takes the deployed `Protocol` and the subaccounts the caller knows of, and raises
AssertionError with the numbers when it does not hold. The unit tests, the scripted crash
test and the fuzz suite share them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sim.protocol import Protocol
from tests.utils.constants import PRECISION

Subaccount = tuple[str, int]


def token_conservation(protocol: Protocol, subaccounts: Iterable[Subaccount], holders: Iterable[str] = ()) -> None:
    """§5.1: the Exchange holds exactly the positive collateral its books say, less the profit
    the Vault has not paid yet (`vault_debt`); the negative collateral is exactly what it says
    the Vault is owed (`vault_receivable`); the Vault and the fund hold their own balances by
    construction, and no token is created or lost."""
    ex = protocol.exchange
    collateral = [ex.call("accounts", o, s)[0] for o, s in set(subaccounts)]
    positive = sum(c for c in collateral if c > 0)
    negative = -sum(c for c in collateral if c < 0)
    held = protocol.usdc.call("balanceOf", ex.address) * PRECISION
    debt = ex.call("vault_debt")
    assert held == positive - debt, (
        f"exchange holds {held}, positive collateral {positive} less the Vault's debt {debt} is "
        f"{positive - debt} (diff {held - positive + debt})")
    receivable = ex.call("vault_receivable")
    assert receivable == negative, f"vault_receivable {receivable} != negative collateral {negative}"
    holders = set(holders) | {ex.address, protocol.vault.address, protocol.insurance_fund.address}
    total = sum(protocol.usdc.call("balanceOf", h) for h in holders)
    supply = protocol.usdc.call("totalSupply")
    assert total == supply, f"balances {total} != supply {supply}: tokens created or lost"


def traders_pnl(protocol: Protocol) -> int:
    """The traders' net unrealised PnL at mark, net of funding, from each market's aggregates
    (skew, cost sum, funding-entry sum), USD 1e18: what the Vault would pay if every position
    closed at mark. The funding index is brought up to now in a snapshot that is rolled back,
    so reading it changes nothing."""
    ex = protocol.exchange
    snap = protocol.chain.snapshot()
    try:
        total = 0
        for m in range(ex.call("market_count")):
            ex.transact("accrue", m, sender=protocol.deployer)
            state = ex.call("market_states", m)
            skew = state[0] - state[1]
            mark = ex.call("mark_price", m)
            total += _mul_down(skew, mark) - state[2] - _mul_down(skew, state[4]) + state[3]
        return total
    finally:
        protocol.chain.revert(snap)


def _mul_down(a: int, b: int) -> int:
    return (a * b) // 10**18


def vault_nav_model(protocol: Protocol) -> int:
    """The Vault's NAV (contracts/Vault.vy) rebuilt from views, for feeds that are valid and
    no bankrupt position: balance + receivable - debt - for each market, the close value
    skew * price * (1 + skew / (2 skew_scale)) less the cost sum and the funding owed."""
    ex = protocol.exchange
    snap = protocol.chain.snapshot()
    try:
        nav = protocol.usdc.call("balanceOf", protocol.vault.address) * PRECISION
        nav += ex.call("vault_receivable") - ex.call("vault_debt")
        for m in range(ex.call("market_count")):
            ex.transact("accrue", m, sender=protocol.deployer)
            state = ex.call("market_states", m)
            skew_scale = ex.call("markets", m)[5]
            skew = state[0] - state[1]
            price, valid = ex.call("index_price", m)
            assert valid, "the model covers valid feeds only"
            value = _mul_down(skew, price)
            half_premium = abs(skew) * 10**18 // (2 * skew_scale)
            closing = value + abs(value) * half_premium // 10**18
            nav -= closing - state[2] - _mul_down(skew, state[4]) + state[3]
        return nav
    finally:
        protocol.chain.revert(snap)


def zero_sum(protocol: Protocol, subaccounts: Iterable[Subaccount]) -> None:
    """§5.2: traders' unrealised PnL and funding, summed position by position, equal the
    Vault's liability computed from the markets' aggregates (`traders_pnl`), within a few wei
    per position."""
    ex = protocol.exchange
    n_markets = ex.call("market_count")
    per_position = 0
    positions = 0
    for o, s in set(subaccounts):
        for m in protocol.account_markets(o, s):
            per_position += protocol.lens.call("position_pnl", o, s, m)
            positions += 1
    aggregate = traders_pnl(protocol)
    bound = 4 * positions + 4 * n_markets
    assert abs(aggregate - per_position) <= bound, (
        f"traders_pnl {aggregate} vs sum of positions {per_position}: off by {aggregate - per_position} > {bound}")


def open_interest(protocol: Protocol, subaccounts: Iterable[Subaccount]) -> None:
    """§5.3: each side's open interest (and the cost sum) equals the sum over positions; the
    Vault's position is minus the traders' net by construction."""
    ex = protocol.exchange
    subaccounts = set(subaccounts)
    for m in range(ex.call("market_count")):
        longs = shorts = cost = 0
        for o, s in subaccounts:
            size, c, _ = ex.call("positions", o, s, m)
            longs += max(size, 0)
            shorts += max(-size, 0)
            cost += c
        state = ex.call("market_states", m)
        assert (state[0], state[1]) == (longs, shorts), f"market {m}: oi {state[:2]} != positions {(longs, shorts)}"
        assert state[2] == cost, f"market {m}: sum_cost {state[2]} != {cost}"


def bad_debt_accounting(protocol: Protocol, events) -> None:
    """§5.6: for every bad debt, insurance paid plus recorded deficit plus what the Vault wrote
    off equals the negative equity closed; each market's deficit equals what bankruptcies
    recorded minus what ADL covered and what recovered bankrupts took with them."""
    recorded: dict[int, int] = {}
    for ev in events:
        if ev.name == "BadDebt":
            a = ev.args
            assert a["insurance_paid"] + a["deficit"] + a["written_off"] == a["amount"], f"BadDebt does not add up: {a}"
            recorded[a["market"]] = recorded.get(a["market"], 0) + a["deficit"]
        elif ev.name == "Deleverage":
            recorded[ev.args["market"]] = recorded.get(ev.args["market"], 0) - ev.args["deficit_covered"]
        elif ev.name == "Discharge":
            recorded[ev.args["market"]] = recorded.get(ev.args["market"], 0) - ev.args["deficit"]
    ex = protocol.exchange
    for m in range(ex.call("market_count")):
        assert ex.call("market_states", m)[8] == recorded.get(m, 0), f"market {m}: deficit off the events"


def all_invariants(protocol: Protocol, subaccounts: Iterable[Subaccount], holders: Iterable[str] = (),
                   events=None) -> None:
    subaccounts = set(subaccounts)
    token_conservation(protocol, subaccounts, holders)
    zero_sum(protocol, subaccounts)
    open_interest(protocol, subaccounts)
    if events is not None:
        bad_debt_accounting(protocol, events)


def insurance_fund_books(protocol: Protocol, events) -> None:
    """§5.1 for the InsuranceFund: its balance is what it was funded, plus the fee shares the
    Vault paid it, minus what it paid out. `events` are all of the protocol's events since
    deployment."""
    fund, vault, exchange = protocol.insurance_fund.address, protocol.vault.address, protocol.exchange.address
    books = 0
    for ev in events:
        if ev.address == fund and ev.name == "Funded":
            books += ev.args["amount"]
        elif ev.address == fund and ev.name == "Paid":
            books -= ev.args["paid"]
        elif ev.address in (vault, exchange) and ev.name == "Paid" and ev.args["receiver"] == fund:
            books += ev.args["amount"]  # fee shares: the Vault's, and the fund's share of a liquidation fee
    held = protocol.usdc.call("balanceOf", fund)
    assert held == books, f"insurance fund holds {held}, its books say {books} (diff {held - books})"


def positions_match(protocol: Protocol, sizes: dict[tuple[str, int, int], int]) -> None:
    """§5.3 against a model: every position is the size its events say (`sizes`, keyed by
    (owner, subaccount, market)), each subaccount lists exactly the markets it holds, and an
    isolated subaccount holds at most one."""
    ex = protocol.exchange
    held: dict[tuple[str, int], set[int]] = {}
    for (owner, sub, market), size in sizes.items():
        chain_size = ex.call("positions", owner, sub, market)[0]
        assert chain_size == size, f"{owner}/{sub} market {market}: size {chain_size}, its events say {size}"
        markets = held.setdefault((owner, sub), set())
        if size != 0:
            markets.add(market)
    for (owner, sub), markets in held.items():
        _, listed, isolated, _, _ = ex.call("accounts", owner, sub)
        assert len(listed) == len(set(listed)) and set(listed) == markets, (
            f"{owner}/{sub} lists markets {list(listed)}, holds {sorted(markets)}")
        assert not isolated or len(markets) <= 1, f"isolated {owner}/{sub} holds {sorted(markets)}"
