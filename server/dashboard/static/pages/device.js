// One device: its facts, NPS history, telemetry charts, delivery gaps and recent answers.

import { api } from "../api.js";
import { canvasIn, seriesChart, setMarkers, trendChart } from "../charts.js";
import { loadMarkers, withMarkers } from "../markers.js";
import * as filters from "../filters.js";
import { ago, count, html, interval, nps, time } from "../format.js";
import { panel, setTitle } from "../ui.js";
import { configPanel } from "./drift.js";
import { feedList, prependLive } from "./feedback.js";
import { batteryCell, loadBands, rssiCell, statusCell } from "./health.js";

export const name = "device";
export const usesFilters = true;

let onLive = null;

function facts(body, [d, bands], range) {
  body.innerHTML = html`<dl class="facts">
    <div><dt>Status</dt><dd>${statusCell(d.online)}</dd></div>
    <div><dt>Site</dt><dd>${d.site}</dd></div>
    <div><dt>Firmware</dt><dd>${d.fw ?? "—"}</dd></div>
    <div><dt>Last seen</dt><dd title="${time(d.last_seen)}">${ago(d.last_seen)}</dd></div>
    <div><dt>First event</dt><dd data-testid="first-seen">${time(d.first_seen)}</dd></div>
    <div><dt>Boot count</dt><dd>${d.boot ?? "—"}</dd></div>
    <div><dt>Gateway</dt><dd>${d.gateway ?? "—"}</dd></div>
    <div><dt>Battery</dt><dd>${batteryCell(d.battery_mv, bands)}</dd></div>
    <div><dt>RSSI</dt><dd>${rssiCell(d.rssi, bands)}</dd></div>
    <div><dt>NPS (${range})</dt><dd data-testid="device-nps">${nps(d.nps)} <span class="muted">n = ${count(d.n)}</span></dd></div>
    <div><dt>Missing seqs</dt><dd class="${d.missing ? "warn" : ""}" data-testid="missing">${d.missing ? `${count(d.missing)} never arrived` : "none missing"}</dd></div>
  </dl>`.text;
}

function history(body, data, query) {
  if (!data.groups.some((g) => g.n > 0)) {
    body.innerHTML = `<p class="muted">No answers in this range.</p>`;
    return;
  }
  const chart = trendChart(canvasIn(body, "This device's NPS by day with its 95% interval", 200), data.groups, { step: 86400 });
  withMarkers(body, chart, query);
  body.insertAdjacentHTML(
    "beforeend",
    html`<p class="muted">In this range: NPS ${nps(data.nps)} (${interval(data.ci95)}), n = ${count(data.n)},
      response rate ${data.response_rate === null ? "—" : `${Math.round(data.response_rate * 100)}%`}.</p>`.text,
  );
}

function telemetry(body, data, markers) {
  const points = data.points || [];
  if (!points.length) {
    body.innerHTML = `<p class="muted">No telemetry received.</p>`;
    return;
  }
  const charts = [
    ["rssi", "RSSI", "dBm", "#0b5cad", true],
    ["battery_mv", "Battery", "mV", "#1a7f37", true],
    ["heap_free", "Free heap", "bytes", "#8250df", false],
    ["outbox_depth", "Outbox depth (events queued on the device at each reading)", "events", "#9a6700", true],
  ];
  const wrap = document.createElement("div");
  wrap.className = "grid two";
  body.append(wrap);
  for (const [field, label, unit, color, step] of charts) {
    const cell = document.createElement("div");
    const last = points.filter((p) => p[field] !== null && p[field] !== undefined).at(-1);
    // A reading is a past moment: say when, so "712 queued" is not read as "712 lost now".
    cell.innerHTML = html`<h3>${label}</h3><p class="muted">latest reading ${last ? `${last[field]} ${unit}, ${time(last.ts)}` : "—"}</p>`.text;
    wrap.append(cell);
    const chart = seriesChart(canvasIn(cell, `${label} over time (${unit})`, 160), points, field, { label, unit, color, step });
    setMarkers(chart, markers);
  }
  body.insertAdjacentHTML(
    "beforeend",
    html`<p class="muted">${count(points.length)} readings from ${time(points[0].ts)} to ${time(points.at(-1).ts)}.
      Outbox depth is what the device still held when it took a reading; those events count as missing
      only if they never arrive (Delivery completeness).</p>`.text,
  );
  // What the device's prompt sampling left unasked since its boot (docs/programme.md):
  // beside the answers, it says how many transactions the programme did not reach.
  const sampled = points.filter((p) => p.sampling).at(-1);
  if (sampled) {
    const n = (name) => count(sampled.sampling[name] ?? 0);
    body.insertAdjacentHTML(
      "beforeend",
      html`<p class="muted" data-testid="not-prompted">Transactions not prompted since the device's boot
        (reading of ${time(sampled.ts)}): ${n("sampled_out")} sampled out, ${n("throttled")} throttled
        (the same person again too soon), ${n("expired")} too old to ask about.</p>`.text,
    );
  }
}

function gaps(body, data) {
  const missing = data.missing || [];
  const lost = missing.reduce((acc, [a, b]) => acc + (b - a + 1), 0);
  body.innerHTML = html`<p>Received <strong>${count(data.received)}</strong> of <strong>${count(data.max_seq)}</strong> events
    numbered so far (<span data-testid="gaps-missing">${lost ? html`<span class="warn">${count(lost)} missing</span>` : "none missing"}</span>).
    Events still queued on the device have no number here yet.</p>
    ${missing.length ? html`<ul>${missing.slice(0, 20).map(([a, b]) => html`<li>seq ${a === b ? a : `${a}–${b}`}</li>`)}</ul>` : ""}
    ${missing.length > 20 ? html`<p class="muted">and ${missing.length - 20} more ranges</p>` : ""}`.text;
}

function recent(body, data) {
  feedList(body, data.items, { id: "device-feed", label: "This device's latest feedback, newest first" });
}

export async function render(main, { params, filters: current }) {
  const [id] = params;
  setTitle(id);
  const query = { ...filters.apiQuery(current), device: id };
  main.dataset.query = new URLSearchParams(query).toString();
  const enc = encodeURIComponent(id);
  main.innerHTML = html`<div class="page-head"><h1>Device ${id}</h1>
      <a href="/fleet${filters.search(current)}">← All devices</a></div>
    <div class="grid">
      <section id="facts" class="span-3"></section>
      <section id="history" class="span-2"></section>
      <section id="gaps"></section>
      <section id="telemetry" class="span-2"></section>
      <section id="recent"></section>
      <section id="config"></section>
    </div>`.text;
  const $ = (sel) => main.querySelector(sel);
  const detail = api(`/devices/${enc}`); // shared: its site picks the markers (the site's releases)
  await Promise.all([
    panel($("#facts"), "Now", () => Promise.all([detail, loadBands(), api("/devices", { query }), api(`/devices/${enc}/gaps`)]), (b, [d, bands, rows, g]) => {
      // NPS and n for the filter bar's range, as the fleet table shows them; missing
      // from the same seq ranges as Delivery completeness, so the two always agree.
      const inRange = rows.find((r) => r.device === id);
      const missing = (g.missing || []).reduce((acc, [a, z]) => acc + (z - a + 1), 0);
      facts(b, [{ ...d, nps: inRange?.nps ?? null, n: inRange?.n ?? 0, missing }, bands], filters.rangeLabel(current.range).toLowerCase());
    }),
    panel($("#history"), "NPS history", () => Promise.all([api("/nps", { query: { ...query, group_by: "day" } }), detail]), (b, [d, dev]) =>
      history(b, d, { ...query, site: dev.site }),
    ),
    panel($("#gaps"), "Delivery completeness", () => api(`/devices/${enc}/gaps`), gaps),
    panel($("#telemetry"), "Telemetry (last 500 readings)", () =>
      Promise.all([api(`/devices/${enc}/telemetry`, { query: { limit: 500 } }), detail.then((dev) => loadMarkers({ ...query, site: dev.site })).catch(() => [])]),
      (b, [data, markers]) => telemetry(b, data, markers),
    ),
    panel($("#recent"), "Recent feedback", () => api("/feedback", { query: { device: id, limit: 15 } }), recent),
    configPanel($("#config"), id),
  ]);
  onLive = (item) => {
    if (item.device !== id) return;
    prependLive($("#device-feed"), item);
  };
  return () => {
    onLive = null;
  };
}

export function onFeedback(item) {
  onLive?.(item);
}
