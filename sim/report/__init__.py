"""The report of a run, drawn from its run directory's tables alone (DESIGN §6).

Takes a run directory (`steps.csv`, `events.csv`, `summary.json`, `status.json`,
`scenario.toml`, and `traders.csv` / `accounts.csv` when the run has traders) and gives
`report.html`: one self-contained page that tells what happened, with its charts as PNG
files beside it. Nothing here touches a chain, so a report can be redrawn from any run
directory, finished, crashed or killed, long after the run.

- `run`: reading a run directory (`load_run`, `RunData`);
- `timeline`: the "what happened" timeline, folded row by row (the dashboard reuses it);
- `losses`: who paid the bad debt, per market;
- `headline`: the figures that matter, readable and coloured by what they mean;
- `charts`: the full-run charts (registered in `CHARTS`), zoomed panels, the waterfall;
- `risk`: the risk-framework section, from `traders.csv`;
- `page`: `write_report`, the page itself;
- `compare`: `compare_runs`, two summaries side by side.
"""

from __future__ import annotations

from sim.report.charts import CHARTS, UsdFormatter
from sim.report.compare import compare_runs, flatten, format_value
from sim.report.losses import MarketLosses, loss_waterfall
from sim.report.page import REPORT_FILE, write_report
from sim.report.run import RunData, Shock, load_run
from sim.report.timeline import TimelineBuilder, TimelineEntry, build_timeline

__all__ = [
    "CHARTS", "REPORT_FILE", "MarketLosses", "RunData", "Shock", "TimelineBuilder", "TimelineEntry", "UsdFormatter",
    "build_timeline", "compare_runs", "flatten", "format_value", "load_run", "loss_waterfall", "write_report",
]
