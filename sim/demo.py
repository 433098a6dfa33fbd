"""A short scripted session on the in-process EVM: two traders, an LP and a price move.

Prints each account's equity, margin ratio and funding paid, all read from the chain.
Run with `python -m sim.demo [--backend revm|pyevm]`.
"""

from __future__ import annotations

import argparse

from sim.chain import make_chain
from sim.protocol import MarketConfig, Protocol, ProtocolConfig


def run(backend: str = "revm") -> list[dict[str, float | str]]:
    chain = make_chain(backend)
    protocol = Protocol.deploy(chain, ProtocolConfig(markets=(MarketConfig(name="ETH", initial_price=2000.0, skew_scale=1_000.0),)))
    lp, alice, bob = (chain.new_account(n) for n in ("lp", "alice", "bob"))
    for account, usd in ((lp, 1_000_000), (alice, 10_000), (bob, 10_000)):
        protocol.mint(account, usd)
    protocol.lp_deposit(lp, 500_000)
    protocol.deposit(alice, 5_000)
    protocol.deposit(bob, 5_000)
    print(f"deployed on {chain.name}: " + ", ".join(f"{k}={v}" for k, v in protocol.addresses().items()))

    protocol.trade(alice, "ETH", 10.0)   # long 10 ETH, about 4x
    protocol.trade(bob, "ETH", -4.0)     # short 4 ETH
    print(f"alice long 10 ETH, bob short 4 ETH; skew premium moves the fill: mark {protocol.mark_price('ETH'):.2f}")

    rows = []
    for hour, price in enumerate((2000.0, 2040.0, 2100.0, 1950.0, 1900.0), start=1):
        chain.mine(3600)
        protocol.report_all("ETH", price)
        for name, account in (("alice", alice), ("bob", bob)):
            h = protocol.health(account)
            rows.append({
                "hour": hour, "account": name, "index": price, "equity": h.equity,
                "margin_ratio": h.margin_ratio, "funding_owed": protocol.accrued_funding(account, "ETH"),
            })
    print(f"{'hour':>4} {'account':>7} {'index':>9} {'equity':>11} {'margin':>8} {'funding owed':>13}")
    for r in rows:
        print(f"{r['hour']:>4} {r['account']:>7} {r['index']:>9.2f} {r['equity']:>11.2f} "
              f"{r['margin_ratio']:>8.2%} {r['funding_owed']:>13.4f}")

    protocol.close_position(alice, "ETH")
    protocol.close_position(bob, "ETH")
    print(f"closed; alice collateral {protocol.collateral(alice):.2f}, bob collateral {protocol.collateral(bob):.2f}, "
          f"vault NAV {protocol.vault_nav():.2f}, insurance fund {protocol.insurance_balance():.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="revm", choices=("revm", "pyevm"))
    run(parser.parse_args().backend)


if __name__ == "__main__":
    main()
