// Fleet: every device with presence, health, NPS and delivery completeness;
// text filter, status filter and sorting, all kept in the URL. NPS and n follow the
// filter bar (GET /api/v1/devices takes the filters of GET /api/v1/nps).

import { api } from "../api.js";
import * as filters from "../filters.js";
import { ago, count, html, isoTime, nps } from "../format.js";
import { panel, setTitle } from "../ui.js";
import { batteryCell, loadBands, rssiCell, statusCell } from "./health.js";

export const name = "fleet";
export const usesFilters = true;

const COLUMNS = [
  ["device", "Device", "text"],
  ["site", "Site", "text"],
  ["online", "Status", "bool"],
  ["last_seen", "Last seen", "num"],
  ["nps", "NPS", "num"],
  ["n", "n", "num"],
  ["missing", "Missing seqs", "num"],
  ["battery_mv", "Battery", "num"],
  ["rssi", "RSSI", "num"],
  ["fw", "Firmware", "text"],
];

function sortRows(rows, sort) {
  const desc = sort.startsWith("-");
  const key = sort.replace(/^-/, "");
  const value = (row) => (key === "online" ? (row.online ? 1 : 0) : row[key]);
  return [...rows].sort((a, b) => {
    const x = value(a);
    const y = value(b);
    if (x === y) return String(a.device).localeCompare(String(b.device));
    if (x === null || x === undefined) return 1; // unknowns last, either direction
    if (y === null || y === undefined) return -1;
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return desc ? -order : order;
  });
}

function visible(rows, { q, status }, current) {
  const needle = (q || "").toLowerCase();
  return rows.filter(
    (r) =>
      (!needle || `${r.device} ${r.site} ${r.fw}`.toLowerCase().includes(needle)) &&
      (!status || (status === "online" ? r.online : !r.online)) &&
      (!current.site || r.site === current.site) &&
      (!current.fw || r.fw === current.fw),
  );
}

function row(r, bands) {
  return html`<tr data-device="${r.device}">
    <th scope="row"><a href="/fleet/${encodeURIComponent(r.device)}${filters.search(filters.current())}">${r.device}</a></th>
    <td>${r.site}</td>
    <td>${statusCell(r.online)}</td>
    <td><time datetime="${isoTime(r.last_seen)}" title="${isoTime(r.last_seen)}">${ago(r.last_seen)}</time></td>
    <td class="num">${nps(r.nps)}</td>
    <td class="num">${count(r.n)}</td>
    <td class="num ${r.missing ? "warn" : ""}">${count(r.missing)}${r.missing ? " lost" : ""}</td>
    <td class="num">${batteryCell(r.battery_mv, bands)}</td>
    <td class="num">${rssiCell(r.rssi, bands)}</td>
    <td>${r.fw ?? ""}</td>
  </tr>`;
}

function readState() {
  const params = new URLSearchParams(location.search);
  return { q: params.get("q") || "", status: params.get("status") || "", sort: params.get("sort") || "device" };
}

function writeState(state) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(state)) {
    if (value && !(key === "sort" && value === "device")) params.set(key, value);
    else params.delete(key);
  }
  const qs = params.toString();
  history.replaceState(null, "", `${location.pathname}${qs ? `?${qs}` : ""}`);
}

const REJECTIONS_SHOWN = 5;

function loadRejections() {
  return api("/rejections", { query: { reason_class: "site", limit: REJECTIONS_SHOWN } });
}

/** Events a gateway delivered for another site's device (server/ingest/binding.py): refused, kept. */
function drawRejections(body, data) {
  const items = data.items.map(
    (r) => html`<li><time datetime="${isoTime(r.received_at)}" title="${isoTime(r.received_at)}">${ago(r.received_at)}</time>
      · gateway <strong>${r.gateway}</strong>${r.site ? html` (site ${r.site})` : ""}
      ${r.event_id ? html` · event <code>${r.event_id}</code>` : ""}<br><span class="muted">${r.error}</span></li>`,
  );
  body.innerHTML = html`<p data-testid="rejected-count" data-value="${data.count}">${
    data.count === 0
      ? "No event was refused for crossing sites."
      : html`<strong>${count(data.count)}</strong> ${data.count === 1 ? "event was" : "events were"} refused because a
        gateway delivered a device of another site (a moved or copied device, or a forged one).
        ${data.count > items.length ? html`The latest ${items.length}:` : ""}`
  }</p>${items.length ? html`<ul class="rejections">${items}</ul>` : ""}`.text;
}

/** When the table is wider than its box (a tablet), say so and shade the scrolling edge. */
function cueColumns(body) {
  const wrap = body.querySelector(".table-wrap");
  const more = wrap.scrollWidth > wrap.clientWidth + 1;
  wrap.classList.toggle("scrolls", more);
  if (more) wrap.tabIndex = 0; // keyboard users can scroll it too
  body.querySelector("[data-testid=more-columns]").hidden = !more;
}

export async function render(main, { filters: current }) {
  setTitle("Fleet");
  const range = filters.rangeLabel(current.range).toLowerCase();
  const query = filters.apiQuery(current);
  main.dataset.query = new URLSearchParams(query).toString();
  const state = readState();
  main.innerHTML = html`<div class="page-head"><h1>Fleet</h1></div>
    <form class="filters inline" id="fleet-controls" role="search" aria-label="Find devices">
      <label>Find <input type="search" name="q" value="${state.q}" placeholder="device, site or firmware"></label>
      <label>Status <select name="status">
        <option value="">Online and offline</option>
        <option value="online" ${state.status === "online" ? "selected" : ""}>Online only</option>
        <option value="offline" ${state.status === "offline" ? "selected" : ""}>Offline only</option>
      </select></label>
      <span class="scope" id="fleet-count" role="status"></span>
    </form>
    <section id="devices"></section>
    <section id="rejections"></section>`.text;
  const section = main.querySelector("#devices");
  // Not awaited: the device table does not wait for it.
  panel(main.querySelector("#rejections"), "Refused across sites", loadRejections, drawRejections);
  const controls = main.querySelector("#fleet-controls");
  const load = () => Promise.all([api("/devices", { query }), loadBands()]);
  await panel(section, "Devices", load, (body, [data, bands]) => {
    const rows = Array.isArray(data) ? data : data.items || data.devices || [];
    const draw = () => {
      const shown = sortRows(visible(rows, state, current), state.sort);
      const key = state.sort.replace(/^-/, "");
      const head = COLUMNS.map(([col, label, kind]) => {
        const sorted = key === col ? (state.sort.startsWith("-") ? "descending" : "ascending") : "none";
        return html`<th scope="col" class="${kind === "num" ? "num" : ""}" aria-sort="${sorted}">
          <button type="button" class="sort" data-col="${col}">${label}<span class="arrow" aria-hidden="true"></span></button></th>`;
      });
      body.innerHTML = html`<p class="muted" data-testid="fleet-window">NPS and n: answers in ${range}${
        current.trigger ? `, trigger ${current.trigger}` : ""
      }. Status: the device's own last presence report (it says offline when it stops), else heard from in the last 15 min.</p>
        <p class="more-columns" data-testid="more-columns" hidden>More columns to the right: scroll the table sideways →</p>
        <div class="table-wrap"><table id="device-table">
        <caption class="sr-only">Devices; column headers sort the table</caption>
        <thead><tr>${head}</tr></thead><tbody>${shown.map((r) => row(r, bands))}</tbody></table></div>
        ${shown.length ? "" : html`<p class="muted">No device matches.</p>`}`.text;
      cueColumns(body);
      const online = rows.filter((r) => r.online).length;
      main.querySelector("#fleet-count").textContent =
        `${shown.length} of ${rows.length} devices shown · ${online} online, ${rows.length - online} offline`;
    };
    body.addEventListener("click", (event) => {
      const button = event.target.closest("button.sort");
      if (!button) return;
      const col = button.dataset.col;
      const numeric = COLUMNS.find((c) => c[0] === col)[2] !== "text";
      const currentKey = state.sort.replace(/^-/, "");
      state.sort = currentKey === col ? (state.sort.startsWith("-") ? col : `-${col}`) : numeric ? `-${col}` : col;
      writeState(state);
      draw();
      body.querySelector(`button.sort[data-col="${col}"]`).focus();
    });
    controls.addEventListener("input", () => {
      state.q = controls.elements.q.value.trim();
      state.status = controls.elements.status.value;
      writeState(state);
      draw();
    });
    controls.addEventListener("submit", (e) => e.preventDefault());
    draw();
  });
}
