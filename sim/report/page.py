"""`report.html`: one self-contained page, drawn from a run directory's tables alone.

The first screen tells what happened: the verdict (bad debt, deficit), the timeline, who
paid the bad debt, and a zoomed panel around the first shock. Below: the headline figures,
the run's identity, the risk-framework section (per trader and per layer combination),
panels around the other shocks, the full-run charts, and the raw summary, events and
scenario for reference. Charts are PNG files in the run directory, embedded in the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sim.report.charts import (
    ATTACKER_CAPTION,
    CHARTS,
    ChartSpec,
    attacker_chart,
    embed_png,
    waterfall_chart,
    whole_run_window,
    write_charts,
    zoom_chart,
    zoom_windows,
)
from sim.report.compare import flatten, format_value
from sim.report.headline import headline_rows, usd, verdict
from sim.report.losses import MarketLosses, loss_waterfall
from sim.report.risk import risk_section
from sim.report.run import RunData, load_run
from sim.report.timeline import TimelineEntry, build_timeline

REPORT_FILE = "report.html"
ZOOM_FILE = "zoom-{n}.png"
WATERFALL_FILE = "waterfall.png"
ATTACKER_FILE = "attacker.png"

CSS = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #fafafa; font-size: 14px; line-height: 1.4; }
main { width: 100%; max-width: 1800px; margin: 0 auto; padding: 0.6em 1.5em 3em; }
h1 { font-size: 1.5em; margin: 0.2em 0 0; } h2 { font-size: 1.12em; margin: 0.2em 0 0.45em; }
h1 .sub { font-size: 0.6em; font-weight: normal; color: #666; margin-left: 0.6em; }
p.desc { color: #555; margin: 0.15em 0 0.4em; }
.banner { padding: 0.45em 0.9em; border-radius: 5px; margin: 0.35em 0; font-weight: 600; }
.banner.good { background: #e8f6ec; border: 1px solid #2ca02c; color: #1d6b2c; }
.banner.warn { background: #fff4e0; border: 1px solid #e69500; color: #7a4d00; }
.banner.bad { background: #fdecea; border: 2px solid #d62728; color: #8b1a1a; }
.banner.complete { background: none; border: none; padding: 0; font-weight: normal; color: #555; }
.banner.partial, .banner.incomplete { background: #fdecea; border: 2px solid #d62728; color: #8b1a1a; }
.grid { display: grid; gap: 1.2em; align-items: start; }
.first { grid-template-columns: minmax(340px, 5fr) minmax(420px, 7fr); }
.pair { grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); }
.box { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 0.7em 0.9em; min-width: 0; }
.scroll { max-height: 300px; overflow-y: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e6e6e6; padding: 0.25em 0.5em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.when { white-space: nowrap; color: #444; }
.bad { color: #c0392b; font-weight: 600; } .warn { color: #b36b00; font-weight: 600; }
.good { color: #1e8c3a; font-weight: 600; }
.chip { display: inline-block; padding: 0 0.45em; border-radius: 3px; font-size: 0.82em; background: #eee;
        color: #333; white-space: nowrap; }
.chip.shock { background: #efe3f6; color: #6c3483; } .chip.liquidation, .chip.bankruptcy { background: #fdecea; color: #a93226; }
.chip.insurance_payout { background: #e8f6ec; color: #1d6b2c; } .chip.adl { background: #efe9f7; color: #5b3f8c; }
.chip.feed_invalid, .chip.feed_valid { background: #fff4e0; color: #7a4d00; } .chip.lp_withdrawal { background: #e8f0fa; color: #1f5b99; }
img { max-width: 100%; height: auto; display: block; }
figure img { width: 100%; }
figure { margin: 0.6em 0 1.6em; } figcaption { color: #555; font-size: 0.9em; margin-top: 0.2em; }
.muted { color: #666; }
pre { background: #f6f8fa; padding: 0.8em; font-size: 0.85em; white-space: pre-wrap; overflow-wrap: anywhere; }
details { margin: 0.6em 0; } summary { cursor: pointer; font-weight: 600; }
section { margin-top: 1.2em; }
p.finding { font-size: 1.05em; margin: 0.3em 0; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


_image = embed_png


def _table(headers: Sequence[str], rows: Iterable[Sequence[tuple[str, str]]], numeric: Iterable[int] = ()) -> str:
    """A table whose cells are (text, css class); `numeric` columns are right-aligned headers."""
    numeric = set(numeric)
    head = "".join(f"<th class='{'num' if i in numeric else ''}'>{_esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td class='{css}'>{text}</td>" for text, css in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------
# Parts of the page
# ---------------------------------------------------------------------------------------


def _status_banner(run: RunData) -> str:
    steps, planned = run.steps_recorded, run.meta.get("steps")
    progress = f" ({steps} of {planned} steps recorded)" if planned else f" ({steps} steps recorded)"
    if run.state == "complete":
        text = f"Run complete{progress}."
    elif run.state == "partial":
        text = f"PARTIAL RUN: stopped early{progress}. Error: {run.error or 'not given'}"
    else:
        text = (f"INCOMPLETE RUN: status.json still says 'running'{progress}: the run was killed or is still "
                "going. Tables hold what was recorded; there may be no summary.")
    return f"<div class='banner {_esc(run.state)}'>{_esc(text)}</div>"


def _subtitle(run: RunData) -> str:
    parts = [f"seed {run.meta['seed']}" if run.meta.get("seed") is not None else "",
             str(run.meta.get("backend") or ""),
             _steps_of(run)]
    return " · ".join(p for p in parts if p)


def _steps_of(run: RunData) -> str:
    steps = run.meta.get("steps")
    if not steps or not run.step_seconds:
        return ""
    return f"{steps} step{'s' if steps != 1 else ''} of {run.step_seconds:g} s"


def when_text(run: RunData, entry: TimelineEntry) -> str:
    """"step 150", "steps 153-160", or a replay's dates."""
    if run.calendar_start is None:
        return f"step {entry.step}" if entry.last_step == entry.step else f"steps {entry.step}–{entry.last_step}"
    first = run.when(entry.step)
    if entry.last_step == entry.step:
        return first
    last = run.date_of(entry.last_step)
    return f"{first} – {last:%H:%M}" if last is not None else first


def timeline_html(run: RunData, entries: list[TimelineEntry]) -> str:
    if not entries:
        return "<p class='muted'>Nothing happened: no shock, liquidation, bad debt, ADL, oracle outage or LP withdrawal.</p>"
    rows = []
    for e in entries:
        amount = usd(e.amount) if e.kind not in ("shock", "feed_invalid", "feed_valid") else ""
        rows.append([(_esc(when_text(run, e)), "when"), (f"<span class='chip {e.kind}'>{_esc(e.label)}</span>", ""),
                     (_esc(e.text()), ""), (_esc(amount), "num")])
    return f"<div class='scroll'>{_table(('when', '', 'what happened', 'amount'), rows, numeric=(3,))}</div>"


def waterfall_html(run: RunData, losses: list[MarketLosses]) -> str:
    if not losses:
        return "<p class='good'>No bad debt: nobody had to pay for a loss.</p>"
    image = _image(waterfall_chart(losses, run.run_dir / WATERFALL_FILE), "who paid the bad debt")
    rows = [[(_esc(m.market), ""), *((_esc(usd(v)), "num") for v in
                                     (m.bad_debt, m.insurance, m.adl, m.vault, m.deficit_left))] for m in losses]
    table = _table(("market", "bad debt", "insurance", "ADL targets", "Vault", "deficit left"), rows,
                   numeric=range(1, 6))
    return (f"{image}{table}<p class='muted'>The insurance fund pays first; what it cannot pay is the deficit, "
            "which ADL closes against profitable opposite positions. The deficit left is owed to the Vault; "
            "the Vault column is bad debt no record accounts for.</p>")


def headline_html(run: RunData) -> str:
    if not run.summary:
        return "<p>No summary: the run did not reach its end.</p>"
    rows = [[(_esc(f.label) + (f" <span class='muted'>({_esc(f.note)})</span>" if f.note else ""), ""),
             (_esc(text), f"num {severity}")] for f, text, severity in headline_rows(run.summary)]
    return _table(("figure", "value"), rows, numeric=(1,))


def facts_html(run: RunData) -> str:
    facts: list[tuple[str, Any]] = [
        ("scenario", run.title()), ("seed", run.meta.get("seed")), ("backend", run.meta.get("backend")),
        ("steps planned", run.meta.get("steps")), ("step length", f"{run.step_seconds:g} s" if run.step_seconds else None),
        ("steps recorded", run.steps_recorded),
        ("blocks", f"{int(run.steps['block'].min())} to {int(run.steps['block'].max())}" if not run.steps.empty else None),
    ]
    if run.calendar_start is not None:
        facts.append(("replay dates", f"{run.when(0)} to {run.when(max(run.steps_recorded - 1, 0))}"))
    for key in ("rpc_url", "chain_id", "node_client"):
        if run.meta.get(key) is not None:
            facts.append((key.replace("_", " "), run.meta[key]))
    if run.meta.get("node_first_block") is not None:
        last = run.meta.get("node_last_block")
        facts.append(("node blocks", f"{run.meta['node_first_block']} to {last if last is not None else '? (node stopped)'}"))
    if run.shocks:
        facts.append(("shocks", "; ".join(f"{run.when(s.step)}: {s.describe()}" for s in run.shocks)))
    rows = [[(_esc(k), ""), (_esc(format_value(v)), "")] for k, v in facts]
    return _table(("", ""), rows)


def _zoom_parts(run: RunData) -> list[tuple[str, str]]:
    """(heading, image) for each window around shocks."""
    parts = []
    for n, window in enumerate(zoom_windows(run)):
        path = zoom_chart(run, window, run.run_dir / ZOOM_FILE.format(n=n))
        shocks = "; ".join(s.describe() for s in window.shocks)
        heading = f"Around {run.when(window.shocks[0].step)}: {shocks}"
        parts.append((heading, _image(path, heading)))
    return parts


def _chart_figure(spec: ChartSpec, path: Path) -> str:
    return f"<figure>{_image(path, spec.title)}<figcaption>{_esc(spec.caption)}</figcaption></figure>"


def _summary_details(run: RunData) -> str:
    summary = run.summary or {}
    metrics = {k: v for k, v in summary.items() if k not in ("meta", "event_counts", "scenario", "seed", "backend")}
    flat = flatten(metrics)
    out = ""
    if flat:
        rows = [[(_esc(k), ""), (_esc(format_value(v)), "num")] for k, v in flat.items()]
        out += f"<details><summary>Every summary figure (summary.json)</summary>{_table(('key', 'value'), rows)}</details>"
    events = summary.get("event_counts") or (
        run.events.groupby(["contract", "event"]).size().rename(lambda k: f"{k[0]}.{k[1]}").to_dict()
        if not run.events.empty else {})
    if events:
        rows = [[(_esc(k), ""), (_esc(format_value(v)), "num")] for k, v in events.items()]
        out += f"<details><summary>Events by contract</summary>{_table(('contract.event', 'count'), rows)}</details>"
    if run.scenario_text:
        out += f"<details><summary>Scenario as run</summary><pre>{_esc(run.scenario_text)}</pre></details>"
    return out


# ---------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------


def write_report(run_dir: Path) -> Path:
    """Draw the charts (PNG files in the run directory) and write `report.html`: one
    self-contained page. Reads only the run directory, so it redraws any run, finished,
    crashed or killed. Returns the page's path."""
    run = load_run(Path(run_dir))
    timeline = build_timeline(run)
    losses = loss_waterfall(run)
    zooms = _zoom_parts(run)
    charts = write_charts(run)
    severity, verdict_text = verdict(run.summary)

    if zooms:
        first_heading, first_image = zooms[0]
        right = f"<h2>{_esc(first_heading)}</h2>{first_image}"
    elif (window := whole_run_window(run)) is not None:
        path = zoom_chart(run, window, run.run_dir / ZOOM_FILE.format(n=0))
        right = f"<h2>The whole run (no shock)</h2>{_image(path, 'the whole run')}"
    else:
        right = "<h2>No steps recorded</h2>"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>perpsim: {_esc(run.title())}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_esc(run.title())}<span class='sub'>{_esc(_subtitle(run))}</span></h1>",
        f"<p class='desc'>{_esc(run.description())}</p>" if run.description() else "",
        _status_banner(run),
        f"<div class='banner {severity}' id='verdict'>{_esc(verdict_text)}</div>",
        "<div class='grid first'>",
        f"<div><div class='box' id='timeline'><h2>What happened</h2>{timeline_html(run, timeline)}</div>",
        f"<div class='box' id='waterfall' style='margin-top:1em'><h2>Who paid the bad debt</h2>"
        f"{waterfall_html(run, losses)}</div></div>",
        f"<div class='box' id='zoom'>{right}</div>",
        "</div>",
        "<section class='grid pair'>",
        f"<div class='box'><h2>Headline</h2>{headline_html(run)}</div>",
        f"<div class='box'><h2>Run</h2>{facts_html(run)}</div>",
        "</section>",
        risk_section(run),
    ]
    if len(zooms) > 1:
        parts.append("<section><h2>Around the other shocks</h2>")
        parts += [f"<figure><figcaption>{_esc(h)}</figcaption>{img}</figure>" for h, img in zooms[1:]]
        parts.append("</section>")
    parts.append("<section><h2>The whole run</h2>")
    parts += [_chart_figure(spec, path) for _, spec, path in charts]
    attacker = attacker_chart(run, run.run_dir / ATTACKER_FILE)
    if attacker is not None:
        parts.append(f"<figure>{_image(attacker, 'attacker PnL')}<figcaption>{_esc(ATTACKER_CAPTION)}</figcaption></figure>")
    parts += ["</section>", f"<section>{_summary_details(run)}</section>", "</main></body></html>\n"]
    out = run.run_dir / REPORT_FILE
    out.write_text("\n".join(p for p in parts if p))
    return out


__all__ = ["CHARTS", "REPORT_FILE", "write_report"]
