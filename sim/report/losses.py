"""Who paid the bad debt: the loss waterfall per market, from a run's tables alone.

Bad debt is the negative equity left when a position closes under water (`BadDebt` events).
The InsuranceFund pays what it can (`insurance_paid`); the rest is the market's deficit,
which ADL closes against profitable opposite positions at the bankruptcy price
(`Deleverage.deficit_covered`: the ADL targets pay it by giving up part of their profit).
What is still open at the end is the deficit left, owed to the Vault until ADL closes it.
The Vault's part is what the records leave over: bad debt that no payment and no deficit
accounts for, lost by the Vault's LPs; it is zero when every dollar is accounted for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sim.report.run import RunData

WAD = 1e18


@dataclass(frozen=True)
class MarketLosses:
    """The bad debt of one market (or of all: market "all markets") and who paid it, USD."""

    market: str
    bad_debt: float
    insurance: float
    adl: float
    deficit_left: float

    @property
    def vault(self) -> float:
        """Bad debt no payment or deficit accounts for: the Vault's LPs bore it."""
        rest = self.bad_debt - self.insurance - self.adl - self.deficit_left
        return 0.0 if abs(rest) < 1e-6 * max(self.bad_debt, 1.0) else rest

    def payers(self) -> list[tuple[str, float]]:
        """(who, USD) in the waterfall's order; they add up to `bad_debt`."""
        return [("insurance fund", self.insurance), ("ADL targets", self.adl), ("Vault (LPs)", self.vault),
                ("deficit left", self.deficit_left)]


def loss_waterfall(run: RunData) -> list[MarketLosses]:
    """Per market with any bad debt or deficit, then the total over markets (when more than one)."""
    markets = run.markets
    bad_debt = dict.fromkeys(markets, 0.0)
    insurance = dict.fromkeys(markets, 0.0)
    adl = dict.fromkeys(markets, 0.0)
    events = run.events
    if not events.empty:
        wanted = events[((events["contract"] == "Exchange") & (events["event"] == "BadDebt"))
                        | ((events["contract"] == "Liquidator") & (events["event"] == "Deleverage"))]
        for name, args in zip(wanted["event"], wanted["args"], strict=True):
            data = json.loads(args)
            market = markets[int(data["market"])]
            if name == "BadDebt":
                bad_debt[market] += int(data["amount"]) / WAD
                insurance[market] += int(data["insurance_paid"]) / WAD
            else:
                adl[market] += int(data["deficit_covered"]) / WAD
    left = dict.fromkeys(markets, 0.0)
    if not run.steps.empty:
        last = run.steps[run.steps["step"] == run.steps["step"].max()]
        left.update({str(m): float(d) for m, d in zip(last["market"], last["deficit"], strict=True)})
    rows = [MarketLosses(m, bad_debt[m], insurance[m], adl[m], left[m]) for m in markets
            if bad_debt[m] > 0 or left[m] > 0]
    if len(rows) > 1:
        rows.append(MarketLosses("all markets", *(sum(getattr(r, f) for r in rows)
                                                  for f in ("bad_debt", "insurance", "adl", "deficit_left"))))
    return rows
