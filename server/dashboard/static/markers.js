// Markers on the time charts: firmware releases (derived by the server) and the site
// events operators record, GET/POST/DELETE /api/v1/markers. Each marker is a button
// under its chart; one click shows NPS before against after it (GET /api/v1/compare,
// the same two-sample test as the drivers view).

import { api, whoami } from "./api.js";
import { setMarkers } from "./charts.js";
import { count, html, interval, isoTime, nps, time } from "./format.js";
import { mayAct } from "./roles.js";

const ICON = { release: "▲", event: "◆" };

/** Markers for a page's query: its site and time range. */
export function loadMarkers(query) {
  const q = {};
  for (const key of ["from", "to", "site"]) if (query[key]) q[key] = query[key];
  return api("/markers", { query: q });
}

function span(seconds) {
  return seconds % 86400 === 0 ? `${seconds / 86400} days` : `${seconds / 3600} h`;
}

/** The before/after verdict in words: a change is named only when the test finds one. */
export function changeWords(c) {
  if (c.diff === null) return "no comparison: no answers on one side";
  const p = c.p < 0.001 ? "p < 0.001" : `p = ${c.p.toFixed(3)}`;
  if (!c.significant) return `no significant change (${nps(c.diff)} points, ${p})`;
  return `${c.diff > 0 ? "↑ significantly higher" : "↓ significantly lower"} after: ${nps(c.diff)} points (${p})`;
}

function side(label, f) {
  return html`<div class="figure"><div class="figure-label">${label}</div>
    <div class="figure-value">${nps(f.nps)}</div>
    <div class="figure-sub">95% interval ${interval(f.ci95)} · n = ${count(f.n)}</div></div>`;
}

async function showChange(out, marker, query, windowS) {
  out.hidden = false;
  out.textContent = "Comparing…";
  try {
    const q = { ...query, at: String(marker.at), window_s: String(windowS) };
    delete q.from;
    delete q.to;
    const c = await api("/compare", { query: q });
    out.innerHTML = html`<h3>${marker.title}, ${time(marker.at)}</h3>
      <div class="figures">${side(`${span(windowS)} before`, c.before)}${side(`${span(windowS)} after`, c.after)}</div>
      <p data-testid="change">${changeWords(c)}</p>`.text;
  } catch (err) {
    out.textContent = `Could not compare: ${err.message}`;
  }
}

function recordForm(query) {
  return html`<details class="record"><summary>Record a site event</summary>
    <form id="marker-form" class="filters inline">
      <label>When (UTC) <input type="datetime-local" name="at" required></label>
      <label>What <input name="title" required maxlength="120" placeholder="e.g. new coffee beans"></label>
      <span class="muted">${query.site ? `for site ${query.site}` : "for the whole fleet"}</span>
      <button type="submit">Add marker</button>
      <span role="status" class="muted" id="marker-status"></span>
    </form></details>`;
}

function markerItem(m, i, acting) {
  return html`<li class="marker-${m.kind}">
    <button type="button" class="link" data-testid="marker" data-index="${i}">${ICON[m.kind]} ${m.title}</button>
    <time datetime="${isoTime(m.at)}" class="muted">${time(m.at)}</time>
    ${acting && m.kind === "event" ? html`<button type="button" class="link" data-delete="${m.id}" aria-label="Delete marker ${m.title}">delete</button>` : ""}</li>`;
}

/**
 * Markers on `chart` and as buttons in `body` under it; `windowS` is the before/after
 * window. Operators may record (and delete) events here; the list redraws after.
 */
export async function withMarkers(body, chart, query, { windowS = 7 * 86400 } = {}) {
  const who = await whoami().catch(() => ({ role: "viewer" }));
  const acting = mayAct(who.role);
  const box = document.createElement("div");
  box.className = "markers";
  box.dataset.testid = "markers";
  box.innerHTML = html`<p class="muted" data-testid="marker-note"></p><ul class="marker-list"></ul>
    <div class="before-after" data-testid="before-after" aria-live="polite" hidden></div>
    ${acting ? recordForm(query) : ""}`.text;
  body.append(box);
  let markers = [];
  const draw = async () => {
    markers = await loadMarkers(query);
    setMarkers(chart, markers);
    box.querySelector("[data-testid=marker-note]").textContent = markers.length
      ? "Markers (▲ firmware first seen, ◆ site event): pick one to compare NPS before and after it."
      : "No release or site event in this range.";
    box.querySelector(".marker-list").innerHTML = html`${markers.map((m, i) => markerItem(m, i, acting))}`.text;
  };
  const out = box.querySelector("[data-testid=before-after]");
  box.addEventListener("click", async (event) => {
    const pick = event.target.closest("button[data-index]");
    if (pick) await showChange(out, markers[Number(pick.dataset.index)], query, windowS);
    const del = event.target.closest("button[data-delete]");
    if (del) {
      await api(`/markers/${del.dataset.delete}`, { method: "DELETE" });
      await draw();
    }
  });
  const form = box.querySelector("#marker-form");
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const at = Date.parse(`${form.elements.at.value}Z`) / 1000;
    const status = form.querySelector("#marker-status");
    try {
      await api("/markers", { method: "POST", body: { at, title: form.elements.title.value, site: query.site || null } });
      status.textContent = "Added.";
      await draw();
    } catch (err) {
      status.textContent = `Not added: ${err.message}`;
    }
  });
  await draw();
  return markers;
}
