// Alerts inbox: detractor and threshold alerts; acknowledge, assign, comment, close.

import { api, ApiError } from "../api.js";
import { ago, html, humanize, isoTime, time } from "../format.js";
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

function detailText(detail) {
  if (!detail || typeof detail !== "object") return "";
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== "object")
    .map(([k, v]) => `${humanize(k)}: ${v}`)
    .join(" · ");
}

function alertItem(a) {
  const closed = a.status === "closed";
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
    ${detailText(a.detail) ? html`<p class="muted">${detailText(a.detail)}</p>` : ""}
    ${comments.length ? html`<ul class="comments" aria-label="Comments">${comments}</ul>` : ""}
    ${closed ? "" : html`<div class="row">
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

export async function render(main) {
  setTitle("Alerts");
  const status = new URLSearchParams(location.search).get("status") || "open";
  main.innerHTML = html`<div class="page-head"><h1>Alerts</h1></div>
    <nav class="tabs" aria-label="Alert status" id="alert-tabs"></nav>
    <p id="alert-message" role="status" class="muted"></p>
    <section id="inbox"></section>`.text;
  const section = main.querySelector("#inbox");
  const message = main.querySelector("#alert-message");
  const load = () => api("/alerts", { query: { status, limit: 100 } });
  const draw = (body, data) => {
    main.querySelector("#alert-tabs").innerHTML = STATUSES.map(
      ([key, label]) =>
        html`<a href="/alerts?status=${key}" ${key === status ? html`aria-current="page"` : ""}>${label}${
          key !== "all" && data.counts ? ` (${data.counts[key] ?? 0})` : ""
        }</a>`.text,
    ).join("");
    body.innerHTML = data.items.length
      ? html`<ul class="alerts">${data.items.map(alertItem)}</ul>`.text
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
  await refresh();
  onLive = () => refresh();
  return () => {
    onLive = null;
  };
}

export function onAlert(alert) {
  onLive?.(alert);
}
