// Alerts inbox: detractor and threshold alerts; acknowledge, assign, comment, close.

import { api, ApiError, whoami } from "../api.js";
import { CATEGORY_LABEL, ago, category, count, html, humanize, interval, isoTime, nps, time } from "../format.js";
import { mayAct } from "../roles.js";
import { panel, setTitle } from "../ui.js";

export const name = "alerts";
export const usesFilters = false;

const STATUSES = [
  ["open", "Open"],
  ["acknowledged", "Acknowledged"],
  ["closed", "Closed"],
  ["all", "All"],
];
const KIND = { detractor: "Detractor", site_nps: "Site NPS below threshold", offline: "Device offline", battery: "Battery low" };

let onLive = null;

/** The alert's detail in one line of words (server/alerts/store.py fills it per kind). */
function detailText(kind, detail) {
  if (!detail || typeof detail !== "object") return "";
  const parts = [];
  if (kind === "detractor") {
    const h = detail.health || {};
    if (detail.score !== undefined) parts.push(`score ${detail.score} (${CATEGORY_LABEL[category(detail.score)]})`);
    if (detail.reason) parts.push(`reason: ${humanize(detail.reason)}`);
    if (detail.trigger?.kind) parts.push(`after ${humanize(detail.trigger.kind)}${detail.trigger.ref ? ` ${detail.trigger.ref}` : ""}`);
    if (h.fw) parts.push(`fw ${h.fw}`);
    if (h.rssi_band) parts.push(`Wi-Fi ${h.rssi_band}${h.rssi !== null && h.rssi !== undefined ? ` (${h.rssi} dBm)` : ""}`);
    if (h.battery_band) parts.push(`battery ${h.battery_band}`);
    if (h.health) parts.push(`health ${h.health}`);
    return parts.join(" · ");
  }
  if (kind === "site_nps" && detail.nps !== undefined) {
    return `NPS ${nps(detail.nps)} (${interval(detail.ci95)}) over the last ${detail.last_n ?? detail.n} answers; threshold ${nps(detail.threshold)}`;
  }
  return Object.entries(detail)
    .filter(([k, v]) => v !== null && v !== undefined && typeof v !== "object" && k !== "ts")
    .map(([k, v]) => `${humanize(k)}: ${typeof v === "number" ? count(v) : v}`)
    .join(" · ");
}

function alertItem(a, acting) {
  const readOnly = a.status === "closed" || !acting; // no buttons the server would refuse
  const comments = (a.comments || []).map(
    (c) => html`<li><strong>${c.author}</strong> <span class="muted">(${time(c.at)})</span>: ${c.text}</li>`,
  );
  const id = a.id;
  return html`<li class="alert status-${a.status}" data-alert="${id}" aria-labelledby="alert-${id}-title">
    <h2 id="alert-${id}-title">${a.title}</h2>
    <p class="meta"><span class="state" data-testid="alert-status">${a.status}</span>
      · ${KIND[a.kind] || humanize(a.kind)}
      ${a.site ? html` · site ${a.site}` : ""}
      ${a.device ? html` · device <a href="/fleet/${encodeURIComponent(a.device)}">${a.device}</a>` : ""}
      · raised <time datetime="${isoTime(a.created_at)}" title="${time(a.created_at)}">${ago(a.created_at)}</time>
      · ${a.assignee ? html`assigned to <strong>${a.assignee}</strong>` : "unassigned"}</p>
    ${detailText(a.kind, a.detail) ? html`<p class="detail">${detailText(a.kind, a.detail)}</p>` : ""}
    ${comments.length ? html`<ul class="comments" aria-label="Comments">${comments}</ul>` : ""}
    ${readOnly ? "" : html`<div class="row">
      ${a.status === "open" ? html`<button type="button" class="primary" data-action="ack">Acknowledge</button>` : ""}
    <details><summary>Assign, comment or close</summary><div class="actions">
      <form data-action="assign"><label class="field">Assign to
        <input name="assignee" value="${a.assignee ?? ""}" required autocomplete="off"></label>
        <button type="submit" class="secondary">Assign</button></form>
      <form data-action="comment"><label class="field">Comment
        <input name="text" required autocomplete="off"></label>
        <button type="submit" class="secondary">Add comment</button></form>
      <form data-action="close"><label class="field">Closing note
        <input name="note" autocomplete="off" placeholder="optional"></label>
        <button type="submit" class="secondary">Close alert</button></form>
    </div></details></div>`}
  </li>`;
}

async function act(id, action, form) {
  const data = form ? Object.fromEntries(new FormData(form)) : {};
  const body = { ack: undefined, assign: { assignee: data.assignee }, comment: { text: data.text }, close: { note: data.note || null } }[action];
  return api(`/alerts/${id}/${action}`, { method: "POST", body: body ?? {} });
}

const DONE = { ack: "acknowledged", assign: "assigned", comment: "commented", close: "closed" };

export async function render(main, { navigate }) {
  setTitle("Alerts");
  const who = await whoami().catch(() => ({ role: "viewer" }));
  const acting = mayAct(who.role);
  const params = new URLSearchParams(location.search);
  const status = params.get("status") || "open";
  const kind = params.get("kind") || "";
  const link = (changes) => {
    const next = new URLSearchParams({ status, kind, ...changes });
    for (const [key, value] of [...next]) if (!value) next.delete(key);
    return `/alerts?${next}`;
  };
  main.innerHTML = html`<div class="page-head"><h1>Alerts</h1></div>
    <p class="muted">A detractor answer opens an alert, and so do a site's NPS falling below its threshold,
      a device going silent and a low battery. Newest first, 100 at a time.</p>
    ${acting ? "" : html`<p class="note" id="read-only" role="note">You are signed in as a ${who.role}: you can read
      alerts; an operator or an admin acknowledges, assigns, comments on and closes them.</p>`}
    <div class="toolbar"><nav class="tabs" aria-label="Alert status" id="alert-tabs"></nav>
      <label class="field">Kind <select id="alert-kind">
        <option value="">All kinds</option>
        ${Object.entries(KIND).map(([key, label]) => html`<option value="${key}" ${key === kind ? "selected" : ""}>${label}</option>`)}
      </select></label></div>
    <p id="alert-message" role="status" class="muted"></p>
    <section id="inbox"></section>`.text;
  const section = main.querySelector("#inbox");
  const message = main.querySelector("#alert-message");
  const load = () => api("/alerts", { query: { status, limit: 100, ...(kind ? { kind } : {}) } });
  const draw = (body, data) => {
    main.querySelector("#alert-tabs").innerHTML = STATUSES.map(
      ([key, label]) =>
        html`<a href="${link({ status: key })}" ${key === status ? html`aria-current="page"` : ""}>${label}${
          key !== "all" && data.counts ? ` (${data.counts[key] ?? 0})` : ""
        }</a>`.text,
    ).join("");
    body.innerHTML = data.items.length
      ? html`<ul class="alerts">${data.items.map((a) => alertItem(a, acting))}</ul>`.text
      : html`<p class="muted">No ${status === "all" ? "" : status} alerts.</p>`.text;
  };
  const refresh = () => panel(section, `${STATUSES.find((s) => s[0] === status)?.[1] ?? "All"} alerts`, load, draw);
  const handle = async (event, action, form) => {
    const item = event.target.closest("[data-alert]");
    if (!item) return;
    event.preventDefault();
    const id = item.dataset.alert;
    for (const control of item.querySelectorAll("button")) control.disabled = true;
    try {
      await act(id, action, form);
      message.textContent = `Alert ${id} ${DONE[action]}.`;
      await refresh();
    } catch (err) {
      message.textContent = `Could not update alert ${id}: ${err instanceof ApiError ? err.detail : err}`;
      for (const control of item.querySelectorAll("button")) control.disabled = false;
    }
  };
  section.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) handle(event, button.dataset.action, null);
  });
  section.addEventListener("submit", (event) => handle(event, event.target.dataset.action, event.target));
  main.querySelector("#alert-kind").addEventListener("change", (event) => navigate(link({ kind: event.target.value })));
  await refresh();
  onLive = () => refresh();
  return () => {
    onLive = null;
  };
}

export function onAlert(alert) {
  onLive?.(alert);
}
