// The case inbox: detractors of a device and trigger, and threshold breaches, as cases.
// Filters (state, site, kind, owner, age), sorting by urgency, pages of 100, bulk
// acknowledge/assign/close, an owner picker fed by the people list, the overdue marker.

import { api, ApiError, whoami } from "../api.js";
import { CATEGORY_LABEL, ago, category, count, html, humanize, interval, isoTime, nps, time } from "../format.js";
import { mayAct } from "../roles.js";
import { panel, setTitle } from "../ui.js";

export const name = "alerts";
export const usesFilters = false;

const PAGE = 100;
const STATUSES = [
  ["open", "Open"],
  ["acknowledged", "Acknowledged"],
  ["overdue", "Overdue"],
  ["closed", "Closed"],
  ["all", "All"],
];
const KIND = { detractor: "Detractor", site_nps: "Site NPS below threshold", offline: "Device offline", battery: "Battery low" };
const AGES = { "": "Any age", "0-1": "Under 1 hour", "1-24": "1 to 24 hours", "24-": "Over 24 hours", "168-": "Over 7 days" };
const SORTS = { urgency: "Most urgent first", newest: "Newest first", oldest: "Oldest first" };

let onLive = null;

/** The case's detail in one line of words (server/alerts/rules.py fills it per kind). */
function detailText(kind, detail) {
  if (!detail || typeof detail !== "object") return "";
  const parts = [];
  if (kind === "detractor") {
    const h = detail.health || {};
    if (detail.count > 1) parts.push(`${count(detail.count)} answers`);
    if (detail.score !== undefined) parts.push(`first score ${detail.score} (${CATEGORY_LABEL[category(detail.score)]})`);
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

const when = (ts) => html`<time datetime="${isoTime(ts)}" title="${time(ts)}">${ago(ts)}</time>`;

function ownerField(label, value, name = "assignee") {
  return html`<label class="field">${label}
    <input name="${name}" value="${value ?? ""}" required autocomplete="off" list="people-list"></label>`;
}

function closeFields() {
  return html`<label class="field">Closing note <input name="note" autocomplete="off" placeholder="what happened"></label>
    <label class="field">Action taken <input name="action" autocomplete="off" maxlength="200" placeholder="what we changed"></label>`;
}

function alertItem(a, acting) {
  const readOnly = a.status === "closed" || !acting; // no buttons the server would refuse
  const comments = (a.comments || []).map(
    (c) => html`<li><strong>${c.author}</strong> <span class="muted">(${time(c.at)})</span>: ${c.text}</li>`,
  );
  const id = a.id;
  return html`<li class="alert status-${a.status}${a.overdue ? " is-overdue" : ""}" data-alert="${id}" aria-labelledby="alert-${id}-title">
    <div class="case-head">${acting ? html`<input type="checkbox" class="pick" data-pick="${id}" aria-label="Select case ${id}">` : ""}
    <h2 id="alert-${id}-title">${a.title}</h2>
    ${a.overdue ? html`<span class="overdue" data-testid="overdue" title="No response within the target">Overdue${a.escalated_at ? " · escalated" : ""}</span>` : ""}</div>
    <p class="meta"><span class="state" data-testid="alert-status">${a.status}</span>
      · ${KIND[a.kind] || humanize(a.kind)}
      ${a.site ? html` · site ${a.site}` : ""}
      ${a.device ? html` · device <a href="/fleet/${encodeURIComponent(a.device)}">${a.device}</a>` : ""}
      ${a.answered_at ? html` · customer answered ${when(a.answered_at)}` : ""}
      · raised ${when(a.created_at)}
      · ${a.assignee ? html`assigned to <strong>${a.assignee}</strong>` : "unassigned"}</p>
    ${detailText(a.kind, a.detail) ? html`<p class="detail">${detailText(a.kind, a.detail)}</p>` : ""}
    ${a.status === "closed" && (a.close_action || a.close_note) ? html`<p class="closed-how" data-testid="closed-how">
      Closed ${when(a.closed_at)}${a.closed_by ? html` by ${a.closed_by}` : ""}${a.close_action ? html` · action: <strong>${a.close_action}</strong>` : ""}${a.close_note ? html` · note: ${a.close_note}` : ""}</p>` : ""}
    ${comments.length ? html`<ul class="comments" aria-label="Comments">${comments}</ul>` : ""}
    ${readOnly ? "" : html`<div class="row">
      ${a.status === "open" ? html`<button type="button" class="primary" data-action="ack">Acknowledge</button>` : ""}
    <details><summary>Assign, comment or close</summary><div class="actions">
      <form data-action="assign">${ownerField("Assign to", a.assignee)}
        <button type="submit" class="secondary">Assign</button></form>
      <form data-action="comment"><label class="field">Comment
        <input name="text" required autocomplete="off"></label>
        <button type="submit" class="secondary">Add comment</button></form>
      <form data-action="close">${closeFields()}
        <button type="submit" class="secondary">Close alert</button></form>
    </div></details></div>`}
  </li>`;
}

function bodyOf(action, data) {
  return {
    ack: {},
    assign: { assignee: data.assignee },
    comment: { text: data.text },
    close: { note: data.note || null, action: data.action || null },
  }[action];
}

const DONE = { ack: "acknowledged", assign: "assigned", comment: "commented", close: "closed" };

function ageRange(value) {
  const [lo, hi] = (value || "").split("-");
  return { ...(lo ? { min_age_h: lo } : {}), ...(hi ? { max_age_h: hi } : {}) };
}

export async function render(main, { navigate }) {
  setTitle("Alerts");
  const who = await whoami().catch(() => ({ role: "viewer" }));
  const acting = mayAct(who.role);
  const params = new URLSearchParams(location.search);
  const view = {
    status: params.get("status") || "open",
    kind: params.get("kind") || "",
    site: params.get("site") || "",
    owner: params.get("owner") || "",
    age: params.get("age") || "",
    sort: params.get("sort") || "urgency",
    offset: Math.max(0, Number.parseInt(params.get("offset") || "0", 10) || 0),
  };
  const only = Number.parseInt(params.get("case") || "", 10); // an e-mail's link to one case
  const link = (changes) => {
    const next = new URLSearchParams({ ...view, offset: 0, ...changes });
    for (const [key, value] of [...next]) if (!value || (key === "offset" && value === "0")) next.delete(key);
    if (next.get("sort") === "urgency") next.delete("sort");
    return `/alerts?${next}`;
  };
  const [people, sites] = await Promise.all([
    acting ? api("/people").catch(() => []) : [],
    api("/filters").then((f) => f.sites || []).catch(() => []),
  ]);
  const options = (entries, current) =>
    entries.map(([key, label]) => html`<option value="${key}" ${key === current ? "selected" : ""}>${label}</option>`);
  main.innerHTML = html`<div class="page-head"><h1>Alerts</h1></div>
    <p class="muted">Cases to work: a device's detractors after one kind of trigger gather in one case, and so do a
      site's NPS falling below its threshold, a device going silent and a low battery. A case with no response
      within the target is overdue.</p>
    ${acting ? "" : html`<p class="note" id="read-only" role="note">You are signed in as a ${who.role}: you can read
      alerts; an operator or an admin acknowledges, assigns, comments on and closes them.</p>`}
    <datalist id="people-list">${people.map((p) => html`<option value="${p.email}">${p.name} (${p.role})</option>`)}</datalist>
    <div class="toolbar"><nav class="tabs" aria-label="Alert status" id="alert-tabs"></nav></div>
    <form class="toolbar" id="case-filters" aria-label="Filter cases">
      <label class="field">Kind <select id="alert-kind" name="kind">
        ${options([["", "All kinds"], ...Object.entries(KIND)], view.kind)}</select></label>
      <label class="field">Site <select name="site">
        ${options([["", "All sites"], ...sites.map((s) => [s, s])], view.site)}</select></label>
      <label class="field">Owner <select name="owner">
        ${options([["", "Anyone"], ["none", "Unassigned"], ...(who.name ? [[who.name, "Me"]] : []),
          ...people.filter((p) => p.email !== who.name).map((p) => [p.email, p.email])], view.owner)}</select></label>
      <label class="field">Age <select name="age">${options(Object.entries(AGES), view.age)}</select></label>
      <label class="field">Sort <select name="sort">${options(Object.entries(SORTS), view.sort)}</select></label>
    </form>
    ${acting ? html`<form class="bulk" id="bulk" aria-label="Selected cases" hidden>
      <span id="bulk-count" role="status"></span>
      <button type="button" class="primary" data-bulk="ack">Acknowledge selected</button>
      <span class="bulk-group">${ownerField("Owner for selected", "")}
        <button type="button" class="secondary" data-bulk="assign">Assign selected</button></span>
      <span class="bulk-group">${closeFields()}
        <button type="button" class="secondary" data-bulk="close">Close selected</button></span>
    </form>` : ""}
    <p id="alert-message" role="status" class="muted"></p>
    <section id="inbox"></section>`.text;
  const section = main.querySelector("#inbox");
  const message = main.querySelector("#alert-message");
  const bulkBar = main.querySelector("#bulk");
  const query = () => ({
    status: view.status, sort: view.sort, limit: PAGE, offset: view.offset,
    ...(view.kind ? { kind: view.kind } : {}), ...(view.site ? { site: view.site } : {}),
    ...(view.owner ? { owner: view.owner } : {}), ...ageRange(view.age),
  });
  const picked = () => [...section.querySelectorAll("input[data-pick]:checked")].map((box) => Number(box.dataset.pick));
  const syncBulk = () => {
    if (!bulkBar) return;
    const n = picked().length;
    bulkBar.hidden = n === 0;
    main.querySelector("#bulk-count").textContent = `${n} selected`;
    const all = section.querySelector("#pick-all");
    if (all) all.checked = n > 0 && n === section.querySelectorAll("input[data-pick]").length;
  };
  const draw = (body, data) => {
    main.querySelector("#alert-tabs").innerHTML = STATUSES.map(
      ([key, label]) =>
        html`<a href="${link({ status: key })}" ${key === view.status ? html`aria-current="page"` : ""}>${label}${
          key === "overdue" && data.counts ? ` (${data.overdue ?? 0})` : key !== "all" && data.counts ? ` (${data.counts[key] ?? 0})` : ""
        }</a>`.text,
    ).join("");
    const first = data.total ? data.offset + 1 : 0;
    const last = data.offset + data.items.length;
    const pager = html`<nav class="pager" aria-label="Pages of cases"><span data-testid="case-range">${count(first)}–${count(last)} of ${count(data.total)}</span>
      ${data.offset > 0 ? html`<a href="${link({ offset: Math.max(0, data.offset - PAGE) })}" rel="prev">Previous ${PAGE}</a>` : ""}
      ${last < data.total ? html`<a href="${link({ offset: data.offset + PAGE })}" rel="next">Next ${PAGE}</a>` : ""}</nav>`;
    body.innerHTML = data.items.length
      ? html`${acting ? html`<label class="pick-all"><input type="checkbox" id="pick-all"> Select all on this page</label>` : ""}
        <ul class="alerts">${data.items.map((a) => alertItem(a, acting))}</ul>${pager}`.text
      : html`<p class="muted">No ${view.status === "all" ? "" : view.status} alerts.</p>`.text;
    syncBulk();
  };
  const title = () => `${STATUSES.find((s) => s[0] === view.status)?.[1] ?? "All"} alerts`;
  const load = () =>
    only > 0
      ? api(`/alerts/${only}`).then((a) => ({ items: [a], counts: null, overdue: null, total: 1, offset: 0 }))
      : api("/alerts", { query: query() });
  const refresh = () => panel(section, only > 0 ? `Case ${only}` : title(), load, draw);
  const fail = (what, err) => {
    message.textContent = `Could not update ${what}: ${err instanceof ApiError ? err.detail : err}`;
  };
  const handle = async (event, action, form) => {
    const item = event.target.closest("[data-alert]");
    if (!item) return;
    event.preventDefault();
    const id = item.dataset.alert;
    for (const control of item.querySelectorAll("button")) control.disabled = true;
    try {
      const data = form ? Object.fromEntries(new FormData(form)) : {};
      await api(`/alerts/${id}/${action}`, { method: "POST", body: bodyOf(action, data) });
      message.textContent = `Alert ${id} ${DONE[action]}.`;
      await refresh();
    } catch (err) {
      fail(`alert ${id}`, err);
      for (const control of item.querySelectorAll("button")) control.disabled = false;
    }
  };
  const bulk = async (action) => {
    const ids = picked();
    if (!ids.length) return;
    const data = Object.fromEntries(new FormData(bulkBar));
    const body = { ids, action, ...(action === "assign" ? { assignee: data.assignee } : {}),
      ...(action === "close" ? { note: data.note || null, action_taken: data.action || null } : {}) };
    if (action === "assign" && !data.assignee) {
      message.textContent = "Pick an owner for the selected cases.";
      return;
    }
    for (const control of bulkBar.querySelectorAll("button")) control.disabled = true;
    try {
      const done = await api("/alerts/bulk", { method: "POST", body });
      message.textContent = `${done.length} case${done.length === 1 ? "" : "s"} ${DONE[action]}.`;
      bulkBar.reset();
      await refresh();
    } catch (err) {
      fail(`${ids.length} cases`, err);
    } finally {
      for (const control of bulkBar.querySelectorAll("button")) control.disabled = false;
    }
  };
  section.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) handle(event, button.dataset.action, null);
  });
  section.addEventListener("submit", (event) => handle(event, event.target.dataset.action, event.target));
  section.addEventListener("change", (event) => {
    if (event.target.id === "pick-all") {
      for (const box of section.querySelectorAll("input[data-pick]")) box.checked = event.target.checked;
    }
    syncBulk();
  });
  bulkBar?.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-bulk]");
    if (button) bulk(button.dataset.bulk);
  });
  main.querySelector("#case-filters").addEventListener("change", (event) => {
    navigate(link({ [event.target.name]: event.target.value }));
  });
  await refresh();
  onLive = () => {
    if (!picked().length) refresh(); // never redraw under an operator's selection
  };
  return () => {
    onLive = null;
  };
}

export function onAlert(alert) {
  onLive?.(alert);
}
