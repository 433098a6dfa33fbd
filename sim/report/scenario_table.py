"""The incident scenarios beside the incidents: docs/scenarios.md's table, reproducible.

    python -m sim.report.scenario_table                  # run every listed scenario both ways, full size
    python -m sim.report.scenario_table keeper-outage    # some of them
    python -m sim.report.scenario_table --reuse          # print again from the runs already made

Each row runs one shipped scenario twice with its own seed, `--defences off` and `--defences
on`, into `runs/scenario-table/<name>-<side>/` (`--runs DIR`), and prints the real incident's
figure, ours with the defence off and on (read from each run's summary.json), and the command
that reproduces the row. The figures are the scenario's own: the measures below say which
summary fields stand for the incident's figure. A row whose off figure misses the real one by
more than a factor of ten carries its reason; a scenario not shipped (yet) is listed as
pending. The output is the whole of docs/scenarios.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.metrics import SUMMARY_FILE

Summary = dict[str, Any]
SIDES = ("off", "on")


@dataclass(frozen=True)
class Measure:
    """One figure of a run: a label and how to read it from the summary (None: not recorded)."""

    label: str
    read: Callable[[Summary], float | None]
    unit: str = "usd"  # usd | pct (a change, signed) | share (a fraction, 0-1) | count

    def text(self, summary: Summary) -> str:
        value = self.read(summary)
        if value is None:
            return f"{self.label} n/a"
        if self.unit == "usd":
            return f"{self.label} {_usd(value)}"
        if self.unit == "pct":
            return f"{self.label} {value:+.1f}%"
        if self.unit == "share":
            return f"{self.label} {100 * value:.0f}%"
        return f"{self.label} {value:,.0f}"


def _key(name: str) -> Callable[[Summary], float | None]:
    return lambda s: s.get(name)


BAD_DEBT = Measure("bad debt", _key("total_bad_debt"))
DEFICIT = Measure("beyond the fund", _key("bad_debt_to_deficit"))
LP_SHARE = Measure("LP share price", _key("lp_share_price_change_pct"), "pct")
INSURANCE = Measure("insurance", lambda s: -s["insurance_drawdown_pct"] if "insurance_drawdown_pct" in s else None,
                    "pct")
LIQUIDATIONS = Measure("liquidations", _key("liquidation_count"), "count")
ATTACKER = Measure("attacker profit", _key("attacker_profit_usd"))
LP_PNL = Measure("LP PnL", _key("lp_pnl_usd"))


@dataclass(frozen=True)
class Row:
    """One scenario of the table: the incident, its real figure, and the measures that stand
    for it. `real_usd` (when the incident has one figure in dollars) is compared with the first
    measure of the off run; `why` says why they may differ by more than ten times."""

    name: str
    incident: str
    real: str
    measures: tuple[Measure, ...]
    real_usd: float | None = None
    why: str = ""


ROWS: tuple[Row, ...] = (
    Row("mango-pump", "Mango Markets, Oct 2022", "about $114M taken, about all the free liquidity, borrowed against "
        "a 10-20x pump of a thin spot market", (ATTACKER, LP_SHARE, BAD_DEBT), real_usd=114e6,
        why="the Vault here is a few million dollars: the loss is, as at Mango, about all it holds"),
    Row("gmx-avax", "GMX, Sept 2022", "about $565k taken in 5 rounds (oracle-priced, zero impact)",
        (ATTACKER, LP_PNL, BAD_DEBT), real_usd=565e3),
    Row("yfi-squeeze", "dYdX YFI, Nov 2023", "insurance fund -40% ($9M of $22.5M)", (INSURANCE, BAD_DEBT, LP_PNL)),
    Row("withdraw-to-liquidate", "Hyperliquid ETH, Mar 2025", "Vault loss about $4M on about $300M notional (1.3%)",
        (BAD_DEBT, LP_PNL, ATTACKER), real_usd=4e6,
        why="the position here is a few million dollars, not $300M: compare the loss as a share of its notional"),
    Row("jelly-squeeze", "Hyperliquid JELLY, Mar 2025", "vault drawdown (about $12M unrealised at its worst), then "
        "delisting at a settlement price", (LP_SHARE, ATTACKER, BAD_DEBT)),
    Row("two-source-oracle", "Synthetix sKRW, June 2019", "a bot up more than 37M sETH (about $1B) on a 1000x KRW "
        "print within the hour; reversed by hand", (BAD_DEBT, LP_SHARE), real_usd=1e9,
        why="the Vault here holds $4M; the bad debt it cannot pay is bounded by the positions open at the print "
        "(Synthetix's debt pool minted sETH without such a bound, which is how the bot's paper profit reached $1B)"),
    Row("keeper-outage", "Black Thursday, 12 Mar 2020 (MakerDAO)", "5.67M DAI of bad debt after keepers stopped "
        "bidding", (DEFICIT, BAD_DEBT, LIQUIDATIONS), real_usd=5.67e6,
        why="the book here is 40 accounts of $5k, not MakerDAO's $700M of ETH collateral: the bad debt beyond the "
        "fund has the same cause (the small accounts of the outage hour), hundreds of times smaller"),
    Row("luna-collapse", "LUNA, 7-13 May 2022", "-99.99% in six days; venues that delisted early (BitMEX settled "
        "12 May 20:00 UTC) took little, Venus (priced at Chainlink's $0.10 floor) about $11M of bad debt",
        (BAD_DEBT, INSURANCE, LP_SHARE)),
    Row("correlation-spike", "correlation to ~0.95 in a sell-off", "(a mechanism, no single incident figure)",
        (BAD_DEBT, DEFICIT, LIQUIDATIONS)),
    Row("funding-spiral", "velocity funding, persistent skew", "(a mechanism, no single incident figure): longs "
        "liquidated by funding alone", (LIQUIDATIONS, Measure("trader survival", _key("trader_survival_rate"), "share"))),
    Row("reporter-bribe", "Mango Markets, Oct 2022 (by bribed reporters)", "~$114M taken against paper profit",
        (BAD_DEBT, DEFICIT, LP_SHARE), real_usd=114e6,
        why="a $200k attacker on a $3.6M Vault: the loss is bounded by the attacker's position, not Mango's pool"),
)
"""The table's rows, in its order: the adversarial scenarios (issue 11), then reporter-bribe."""


def _usd(value: float) -> str:
    magnitude = abs(value)
    sign = "-" if value < 0 else ""
    for bound, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= bound:
            return f"{sign}${magnitude / bound:.3g}{suffix}"
    return f"{sign}${magnitude:,.0f}"


def run_dir(runs: Path, name: str, side: str) -> Path:
    return runs / f"{name}-{side}"


def command(name: str) -> str:
    return f"`perpsim run {name} --defences off` / `on`"


def run_both(name: str, runs: Path) -> None:
    """Run `name` both ways, full size, into `runs` (replacing runs already there)."""
    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    for side in SIDES:
        out = run_dir(runs, name, side)
        print(f"running {name} --defences {side} -> {out}", file=sys.stderr)
        run_scenario(load_scenario(name, side=side), out_dir=out, report=False, progress=False, force=True)


def read_summary(runs: Path, name: str, side: str) -> Summary | None:
    path = run_dir(runs, name, side) / SUMMARY_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def misses_tenfold(row: Row, off: Summary) -> bool:
    """Whether the off run's first measure misses the real dollar figure by more than ten times."""
    if row.real_usd is None:
        return False
    ours = row.measures[0].read(off)
    if ours is None or ours <= 0:
        return True
    return abs(math.log10(ours / row.real_usd)) > 1


def table_row(row: Row, off: Summary | None, on: Summary | None, shipped: bool) -> str:
    if not shipped or off is None or on is None:
        status = "pending (not shipped yet)" if not shipped else "pending (not run yet)"
        return f"| `{row.name}` | {row.incident}: {row.real} | {status} | {status} | {command(row.name)} |"
    ours_off = "; ".join(m.text(off) for m in row.measures)
    ours_on = "; ".join(m.text(on) for m in row.measures)
    if misses_tenfold(row, off):
        ours_off += f" (more than 10x off the real figure: {row.why or 'no reason recorded'})"
    return f"| `{row.name}` | {row.incident}: {row.real} | {ours_off} | {ours_on} | {command(row.name)} |"


HEADER = """# The incident scenarios beside the incidents

Each row is one shipped scenario run at full size with its own seed, once with its defence off
(`--defences off`: its `[defences]` as written) and once on (`--defences on`: `[defended]` over
them, and the agents of that side). The real figure is the incident's; ours is read from the
run's `summary.json`. The scenarios reproduce the *shape* of each incident (who loses, through
which mechanism, and whether the defence stops it) on a book of a few million dollars, so a
dollar figure far from the real one says so and why. Each scenario file's header comment cites
the incident.

Regenerate this page (runs every row both ways, a few minutes on two cores):

    python -m sim.report.scenario_table > docs/scenarios.md

`--reuse` prints it again from the runs already made (`runs/scenario-table/`); naming
scenarios runs only those. Measures: *bad debt* is all negative equity closed (paid by the
insurance fund, then left as a deficit for ADL); *beyond the fund* is the part the fund could
not pay; *LP share price* is the Vault's share price from start to end; *insurance* is the
fund's drawdown; *attacker profit* is the manipulator's own PnL.

| scenario | the real figure | ours, defence off | ours, defence on | reproduce |
|---|---|---|---|---|
"""


def render(runs: Path, rows: Sequence[Row], shipped: set[str]) -> str:
    """The page: the header and one row per scenario, from the runs in `runs`."""
    lines = [table_row(r, read_summary(runs, r.name, "off"), read_summary(runs, r.name, "on"), r.name in shipped)
             for r in rows]
    return HEADER + "\n".join(lines) + "\n"


@dataclass
class Options:
    """The command line: which scenarios to run, where the runs go, whether to run at all."""

    names: list[str] = field(default_factory=list)
    runs: Path = Path("runs/scenario-table")
    reuse: bool = False


def parse(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m sim.report.scenario_table", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios to run (default: every row's shipped scenario)")
    parser.add_argument("--runs", type=Path, default=Path("runs/scenario-table"), help="where the runs go")
    parser.add_argument("--reuse", action="store_true", help="do not run: print from the runs already there")
    args = parser.parse_args(argv)
    known = [r.name for r in ROWS]
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.exit(2, f"scenario_table: {', '.join(unknown)}: expected rows of the table: {', '.join(known)}\n")
    return Options(list(args.names), args.runs, args.reuse)


def main(argv: Sequence[str] | None = None) -> None:
    from sim.scenario import shipped_scenarios

    options = parse(sys.argv[1:] if argv is None else argv)
    shipped = set(shipped_scenarios())
    chosen = options.names or [r.name for r in ROWS if r.name in shipped]
    if not options.reuse:
        for name in chosen:
            if name in shipped:
                run_both(name, options.runs)
    print(render(options.runs, ROWS, shipped), end="")


if __name__ == "__main__":
    main()
