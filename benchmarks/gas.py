"""Gas table: what each user and keeper action costs, with one and with four open positions;
then the SpotPool's actions and an oracle refresh from a pool.

Gas is the same on every backend (the chain conformance tests check it), so this runs on revm.
Run with `python -m benchmarks.gas` (part of `make bench`).
"""

from __future__ import annotations

from sim.chain import make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig
from sim.units import to_usdc, to_wad

# ETH's liquidation limit is raised (from 5 to 500 ETH a block at this skew scale) so that
# each liquidation below closes what it would without one, while still paying for the limit's
# bookkeeping.
MARKETS = (
    MarketConfig(name="ETH", initial_price=2000.0, skew_scale=10_000.0, liquidation_limit_scalar=100.0),
    MarketConfig(name="BTC", initial_price=30_000.0, skew_scale=1_000.0),
    MarketConfig(name="SOL", initial_price=100.0, skew_scale=100_000.0),
    MarketConfig(name="ARB", initial_price=1.0, skew_scale=10_000_000.0),
)
SIZES = {"ETH": 5.0, "BTC": 0.3, "SOL": 100.0, "ARB": 10_000.0}


def measure() -> list[tuple[str, int, int]]:
    """Rows of (action, gas with one position, gas with four positions)."""
    chain = make_chain("revm")
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=MARKETS, insurance_fund=1_000.0, vault_liquidity=5_000_000.0))
    ex, liq, trig = protocol.exchange, protocol.liquidator, protocol.trigger_orders
    rows: dict[str, list[int]] = {}

    def record(action: str, gas: int) -> None:
        rows.setdefault(action, []).append(gas)

    for n_positions, label in ((1, "one"), (4, "four")):
        trader = chain.new_account(f"gas-trader-{label}")
        protocol.mint(trader, 200_000)
        protocol.usdc.transact("approve", ex.address, 2**256 - 1, sender=trader)
        record("deposit", ex.transact("deposit", 0, to_usdc(100_000), sender=trader).gas_used)
        for name in [m.name for m in MARKETS][1:n_positions]:
            protocol.trade(trader, name, SIZES[name])
        record("trade: open", ex.transact("trade", 0, 0, to_wad(SIZES["ETH"]), to_wad(2100), sender=trader).gas_used)
        record("trade: increase, same block", ex.transact("trade", 0, 0, to_wad(1), to_wad(2100), sender=trader).gas_used)
        chain.mine(3600)
        for m in MARKETS:
            protocol.report_all(m.name, m.initial_price)
        record("trade: increase, accruing funding", ex.transact("trade", 0, 0, to_wad(1), to_wad(2100), sender=trader).gas_used)
        size = ex.call("positions", trader, 0, 0)[0]
        record("trade: close", ex.transact("trade", 0, 0, -size, 0, sender=trader).gas_used)
        record("withdraw", ex.transact("withdraw", 0, to_usdc(1_000), sender=trader).gas_used)

        # liquidation: a fresh trader, highly levered on ETH, then a 10% drop
        victim = chain.new_account(f"gas-victim-{label}")
        protocol.mint(victim, 20_000)
        protocol.deposit(victim, 20_000)
        for name in [m.name for m in MARKETS][1:n_positions]:
            protocol.trade(victim, name, SIZES[name] / 10)
        protocol.trade(victim, "ETH", 80)
        protocol.report_all("ETH", 1850)
        keeper = chain.new_account("gas-keeper")
        record("liquidate (partial)", liq.transact("liquidate", victim, 0, 0, 2**256 - 1, sender=keeper).gas_used)
        protocol.report_all("ETH", 2000)
        for m in MARKETS:
            protocol.report_all(m.name, m.initial_price)

    # trigger-order execution (one position)
    owner = chain.new_account("gas-trigger-owner")
    protocol.mint(owner, 20_000)
    protocol.deposit(owner, 20_000)
    protocol.trade(owner, "ETH", 2)
    order = protocol.place_trigger(owner, "ETH", -2, 1950)
    chain.mine(12)  # a trigger fills at its block's best skew: this block's trades sold first
    protocol.report_all("ETH", 1940)
    keeper = chain.new_account("gas-keeper")
    record("execute trigger (stop-loss)", trig.transact("execute", order, sender=keeper).gas_used)
    protocol.report_all("ETH", 2000)

    # deleverage: a bankrupt long against a profitable short
    short = chain.new_account("gas-short")
    protocol.mint(short, 200_000)
    protocol.deposit(short, 200_000)
    protocol.trade(short, "ETH", -50)
    bankrupt = chain.new_account("gas-bankrupt")
    protocol.mint(bankrupt, 10_000)
    protocol.deposit(bankrupt, 10_000)
    protocol.trade(bankrupt, "ETH", 45)
    protocol.report_all("ETH", 1500)
    liq.transact("liquidate", bankrupt, 0, 0, 2**256 - 1, sender=keeper)  # fund too small: bankrupt
    record("deleverage", liq.transact("deleverage", bankrupt, 0, short, 0, 0, to_wad(10), sender=keeper).gas_used)

    return [(action, gas[0], gas[1] if len(gas) > 1 else 0) for action, gas in rows.items()]


def measure_pool() -> list[tuple[str, int]]:
    """Rows of (SpotPool or oracle action, gas): swaps by a trader who has swapped before,
    liquidity, and refreshing a feed priced by the pool's spot and by its 10-minute TWAP."""
    chain = make_chain("revm")
    markets = (MarketConfig(name="ETH", spot_pool_liquidity=1_000_000.0, price_source="pool"),
               MarketConfig(name="BTC", initial_price=30_000.0, spot_pool_liquidity=1_000_000.0,
                            price_source="pool", pool_window=600))
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=markets))
    pool, oracle = protocol.pool("ETH"), protocol.oracle
    trader = chain.new_account("gas-pool-trader")
    protocol.mint(trader, 1_000_000)
    protocol.mint_base(trader, "ETH", 100)
    protocol.swap(trader, "ETH", False, 1_000)  # approvals and first balances out of the way
    protocol.swap(trader, "ETH", True, 0.5)
    chain.mine(12)
    protocol.swap(trader, "ETH", False, 1_000)  # the cumulative price's first non-zero write
    rows: list[tuple[str, int]] = []
    chain.mine(12)  # within the 60 s observation spacing: no observation
    rows.append(("swap, first in its block", pool.transact("swap", False, to_usdc(1_000), 0, sender=trader).gas_used))
    rows.append(("swap, after another in its block", pool.transact("swap", True, to_wad(0.5), 0, sender=trader).gas_used))
    chain.mine(60)
    rows.append(("swap, first in its block, new observation slot",
                 pool.transact("swap", False, to_usdc(1_000), 0, sender=trader).gas_used))
    receipt = pool.transact("add_liquidity", to_wad(10), to_usdc(100_000), 0, sender=trader)
    rows.append(("add liquidity", receipt.gas_used))
    shares = receipt.return_value
    rows.append(("remove liquidity", pool.transact("remove_liquidity", shares, 0, 0, sender=trader).gas_used))
    for asset in (0, 1):  # the feeds' first refresh after deployment's
        chain.mine(60)
        oracle.transact("refresh", asset, sender=trader)
    chain.mine(60)
    rows.append(("oracle refresh, pool spot", oracle.transact("refresh", 0, sender=trader).gas_used))
    rows.append(("oracle refresh, pool TWAP (600 s)", oracle.transact("refresh", 1, sender=trader).gas_used))
    return rows


def main() -> None:
    rows = measure()
    print(f"{'action':<36} {'1 position':>12} {'4 positions':>12}")
    for action, one, four in rows:
        print(f"{action:<36} {one:>12,} {(f'{four:,}' if four else '-'):>12}")
    print()
    print(f"{'SpotPool and oracle refresh':<48} {'gas':>8}")
    for action, gas in measure_pool():
        print(f"{action:<48} {gas:>8,}")


if __name__ == "__main__":
    main()
