"""A SpotPool on its own (MockAsset, 18 decimals, against MockUSDC), seeded, for the unit tests."""

from __future__ import annotations

from dataclasses import dataclass

from sim.chain import Chain, Contract, compile_project, deploy
from tests.utils.constants import MAX_UINT, USDC, WAD


@dataclass(frozen=True)
class PoolSet:
    """The pool, its two tokens, and the account that seeded it."""

    pool: Contract
    base: Contract
    quote: Contract
    seeder: str

    def fund(self, account: str, base: int = 0, quote: int = 0) -> str:
        """Mint `base` and `quote` token units to `account` and approve the pool for both."""
        if base:
            self.base.transact("mint", account, base, sender=account)
        if quote:
            self.quote.transact("mint", account, quote, sender=account)
        for token in (self.base, self.quote):
            token.transact("approve", self.pool.address, MAX_UINT, sender=account)
        return account

    def reserves(self) -> tuple[int, int]:
        return self.pool.call("reserve_base"), self.pool.call("reserve_quote")


def deploy_pool(chain: Chain, seeder: str, base_tokens: float = 1_000, quote_usd: float = 2_000_000,
                spacing: int = 60) -> PoolSet:
    """A pool seeded with `base_tokens` whole base tokens and `quote_usd` dollars (price
    quote_usd / base_tokens), observations at least `spacing` seconds apart."""
    artifacts = compile_project()
    base = deploy(chain, artifacts["MockAsset"], sender=seeder)
    quote = deploy(chain, artifacts["MockUSDC"], sender=seeder)
    pool = deploy(chain, artifacts["SpotPool"], base.address, quote.address, spacing, sender=seeder)
    pools = PoolSet(pool, base, quote, seeder)
    b, q = int(base_tokens * WAD), int(quote_usd * USDC)
    pools.fund(seeder, b, q)
    pool.transact("add_liquidity", b, q, 0, sender=seeder)
    return pools
