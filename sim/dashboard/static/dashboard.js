// perpsim's live dashboard: follows /events (server-sent events) and draws the run with uPlot.
"use strict";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const SHOCK = "#8e44ad";
const state = { meta: null, step: null, charts: {}, specs: [], dirty: false, source: null };
window.dashboard = state; // for tests and the curious: state.charts[id].data

const usd = (v) => v == null ? "" : Math.abs(v) >= 1e6 ? `$${(v / 1e6).toFixed(2)}M`
  : Math.abs(v) >= 1e4 ? `$${(v / 1e3).toFixed(1)}k` : `$${v.toLocaleString(undefined, {maximumFractionDigits: 2})}`;
const plain = (v) => v == null ? "" : v.toLocaleString(undefined, {maximumFractionDigits: 4});
const pct = (v) => v == null ? "" : `${v.toFixed(3)}%`;

function stepLabel(step) {
  const m = state.meta;
  if (!m || m.calendar_start == null || !m.step_seconds) return `step ${step}`;
  const d = new Date((m.calendar_start + (step + 1) * m.step_seconds) * 1000);
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// One chart: an id, a title, a unit, and its series, each reading one number from a step record.
function chartSpecs(markets) {
  const specs = [];
  markets.forEach((m) => specs.push({
    id: `price-${m}`, title: `${m} price`, unit: "USD", fmt: usd, market: m,
    series: [["true price", (r) => r.markets[m].true_price, "#7f7f7f", [2, 3]],
             ["oracle index", (r) => r.markets[m].index_price, "#1f77b4"],
             ["mark", (r) => r.markets[m].mark_price, "#ff7f0e", [6, 3]]],
  }));
  specs.push({
    id: "oi", title: "Open interest", unit: "base units", fmt: plain,
    series: markets.flatMap((m, i) => [[`${m} long`, (r) => r.markets[m].oi_long, COLOURS[(2 * i) % 8]],
                                       [`${m} short`, (r) => r.markets[m].oi_short, COLOURS[(2 * i + 1) % 8], [5, 3]]]),
  });
  specs.push({
    id: "funding", title: "Funding rate", unit: "% per day", fmt: pct,
    series: markets.map((m, i) => [m, (r) => r.markets[m].funding_rate_per_day * 100, COLOURS[i % 8]]),
  });
  specs.push({ id: "share", title: "LP share price", unit: "USD per share", fmt: (v) => v == null ? "" : `$${v.toFixed(4)}`,
               series: [["share price", (r) => r.vault_share_price, "#1f77b4"]] });
  specs.push({
    id: "solvency", title: "Insurance fund and deficit", unit: "USD", fmt: usd,
    series: [["insurance fund", (r) => r.insurance_balance, "#2ca02c"],
             ["deficit", (r) => markets.reduce((s, m) => s + (r.markets[m].deficit || 0), 0), "#e67e22"]],
  });
  specs.push({
    id: "liquidations", title: "Liquidations", unit: "count", fmt: plain, bars: ["liquidations", "ADL fills"],
    series: [["liquidations", (r) => markets.reduce((s, m) => s + (r.markets[m].liquidations || 0), 0), "#d62728"],
             ["ADL fills", (r) => markets.reduce((s, m) => s + (r.markets[m].deleverages || 0), 0), "#9467bd"],
             ["liquidatable after keepers", (r) => r.liquidatable_accounts, "#000000"]],
  });
  return specs;
}

// Dashed lines at the shocks that hit this chart's market (or every market).
function shockPlugin(spec) {
  return { hooks: { draw: [(u) => {
    const shocks = (state.meta && state.meta.shocks) || [];
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = SHOCK;
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5;
    for (const s of shocks) {
      if (spec.market && s.market && s.market !== spec.market) continue;
      const x = Math.round(u.valToPos(s.step, "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  }] } };
}

function makeChart(spec, holder) {
  const box = document.createElement("div");
  box.className = "chart";
  box.id = `chart-${spec.id}`;
  box.innerHTML = `<h3>${spec.title} <span class="muted">(${spec.unit})</span></h3>`;
  holder.appendChild(box);
  const width = Math.max(box.clientWidth - 16, 300);
  const opts = {
    width, height: 220,
    scales: { x: { time: false } },
    series: [{ label: "step", value: (u, v) => v == null ? "" : stepLabel(v) },
      ...spec.series.map(([label, , colour, dash]) => ({
        label, stroke: colour, width: 1.6, dash, value: (u, v) => spec.fmt(v),
        ...(spec.bars && spec.bars.includes(label) ? { paths: uPlot.paths.bars({ size: [0.8, 6] }), fill: colour + "99" }
          : spec.bars ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
      }))],
    axes: [
      { values: (u, vals) => vals.map((v) => state.meta && state.meta.calendar_start != null
          ? stepLabel(v).slice(5, 16) : String(v)), label: state.meta && state.meta.calendar_start != null
          ? "date and time (UTC)" : "step" },
      { values: (u, vals) => vals.map(spec.fmt), size: 70, label: spec.unit },
    ],
    plugins: [shockPlugin(spec)],
  };
  const data = [[], ...spec.series.map(() => [])];
  const chart = new uPlot(opts, data, box);
  state.charts[spec.id] = chart;
}

function onMeta(meta) {
  state.meta = meta;
  document.title = `perpsim: ${meta.scenario}`;
  document.getElementById("title").textContent = meta.scenario;
  document.getElementById("description").textContent = meta.description || "";
  document.getElementById("of").textContent = meta.steps ? `of ${meta.steps}` : "";
  const holder = document.getElementById("charts");
  holder.innerHTML = "";
  state.charts = {};
  state.specs = chartSpecs(meta.markets);
  state.specs.forEach((spec) => makeChart(spec, holder));
}

function onSteps(records) {
  for (const r of records) {
    for (const spec of state.specs) {
      const chart = state.charts[spec.id];
      chart.data[0].push(r.step);
      spec.series.forEach(([, read], i) => {
        let v = null;
        try { v = read(r); } catch (e) { v = null; }
        chart.data[i + 1].push(v == null || Number.isNaN(v) ? null : v);
      });
    }
    state.step = r.step;
  }
  document.getElementById("step").textContent = stepLabel(state.step);
  state.dirty = true;
}

function redraw() {
  if (state.dirty) {
    state.dirty = false;
    for (const chart of Object.values(state.charts)) chart.setData(chart.data);
  }
  requestAnimationFrame(redraw);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function onTimeline(entries) {
  const box = document.getElementById("timeline");
  if (!entries.length) { box.innerHTML = "<p class='muted'>Nothing yet.</p>"; return; }
  box.innerHTML = entries.map((e) => {
    const when = e.last_step > e.step ? `${stepLabel(e.step)} – ${e.last_step}` : stepLabel(e.step);
    return `<div class="entry"><span class="when">${escapeHtml(when)}</span> <span class="chip ${e.kind}">`
      + `${escapeHtml(e.label)}</span><br>${escapeHtml(e.text)}</div>`;
  }).join("");
  box.scrollTop = box.scrollHeight;
}

function onStatus(status) {
  const badge = document.getElementById("state");
  badge.className = `state ${status.state}`;
  badge.textContent = status.state === "running" ? "running" : status.state;
  if (status.report) {
    const ended = document.getElementById("ended");
    ended.hidden = false;
    ended.className = `ended ${status.state}`;
    const how = status.state === "complete" ? "The run is complete." : `The run stopped early: ${status.error || ""}`;
    ended.innerHTML = `${escapeHtml(how)} <a id="report-link" href="report">Open the final report</a>`;
    state.source.close(); // nothing more will come; a reconnect would replay the run
  }
}

function connect() {
  const source = new EventSource("events");
  state.source = source;
  source.addEventListener("meta", (e) => onMeta(JSON.parse(e.data)));
  source.addEventListener("steps", (e) => onSteps(JSON.parse(e.data)));
  source.addEventListener("timeline", (e) => onTimeline(JSON.parse(e.data)));
  source.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
}

window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(state.charts)) {
    const box = document.getElementById(`chart-${id}`);
    chart.setSize({ width: Math.max(box.clientWidth - 16, 300), height: 220 });
  }
});

connect();
requestAnimationFrame(redraw);
