// People (admins): invite by e-mail, change role, site and e-mails, disable. The API
// decides (server/api/people.py); a site-limited admin sees and invites only their site.

import { api, ApiError, whoami } from "../api.js";
import { html, time } from "../format.js";
import { mayAdminister } from "../roles.js";
import { panel, setTitle } from "../ui.js";

export const name = "people";
export const usesFilters = false;

const ROLES = ["viewer", "operator", "admin"];

function row(p, me) {
  const self = p.email === me;
  return html`<tr data-person="${p.id}">
    <td>${p.email}</td>
    <td><select name="role" aria-label="Role of ${p.email}" ${self || p.disabled_at ? "disabled" : ""}>
      ${ROLES.map((r) => html`<option value="${r}" ${r === p.role ? "selected" : ""}>${r}</option>`)}</select></td>
    <td>${p.site ?? "all sites"}</td>
    <td>${p.joined ? "joined" : "invited"}</td>
    <td><label><input type="checkbox" name="notify" ${p.notify ? "checked" : ""} ${p.disabled_at ? "disabled" : ""}> every change</label>
      <label><input type="checkbox" name="digest" ${p.digest ? "checked" : ""} ${p.disabled_at ? "disabled" : ""}> daily digest</label></td>
    <td>${p.disabled_at ? html`disabled ${time(p.disabled_at)}` : self ? "you" : html`<button type="button" class="secondary" data-disable>Disable</button>`}</td>
  </tr>`;
}

export async function render(main) {
  setTitle("People");
  const who = await whoami().catch(() => ({ role: "viewer" }));
  if (!mayAdminister(who.role)) {
    main.innerHTML = html`<h1>People</h1><p class="note" role="note">Only an admin manages people.</p>`.text;
    return;
  }
  main.innerHTML = html`<div class="page-head"><h1>People</h1></div>
    <p class="muted">Everyone who signs in with an e-mail and a password. An invitation is e-mailed (when the server
      has SMTP) and shown here once; it works for 7 days. Scripts keep using tokens (<code>nps-edge token</code>).</p>
    <form id="invite" class="toolbar" aria-label="Invite a person">
      <label class="field">E-mail <input name="email" type="email" required autocomplete="off"></label>
      <label class="field">Role <select name="role">${ROLES.map((r) => html`<option>${r}</option>`)}</select></label>
      <label class="field">Site <input name="site" placeholder="all sites" autocomplete="off" value="${who.site ?? ""}"></label>
      <button type="submit" class="primary">Invite</button>
    </form>
    <p id="people-message" role="status" class="muted"></p>
    <section id="people"></section>`.text;
  const section = main.querySelector("#people");
  const message = main.querySelector("#people-message");
  const draw = (body, people) => {
    body.innerHTML = html`<table class="people"><thead><tr><th>E-mail</th><th>Role</th><th>Site</th><th>State</th>
      <th>E-mails</th><th></th></tr></thead><tbody>${people.map((p) => row(p, who.name))}</tbody></table>`.text;
  };
  const refresh = () => panel(section, "People", () => api("/people"), draw);
  const change = async (id, body, what) => {
    try {
      await api(`/people/${id}`, { method: "PATCH", body });
      message.textContent = what;
    } catch (err) {
      message.textContent = `Could not change: ${err instanceof ApiError ? err.detail : err}`;
    }
    await refresh();
  };
  section.addEventListener("change", (event) => {
    const tr = event.target.closest("[data-person]");
    if (!tr) return;
    const field = event.target.name;
    const value = field === "role" ? event.target.value : event.target.checked;
    change(tr.dataset.person, { [field]: value }, `Saved ${field} for ${tr.cells[0].textContent}.`);
  });
  section.addEventListener("click", (event) => {
    const tr = event.target.closest("[data-person]");
    if (tr && event.target.closest("[data-disable]")) {
      change(tr.dataset.person, { disabled: true }, `Disabled ${tr.cells[0].textContent}.`);
    }
  });
  main.querySelector("#invite").addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(event.target));
    try {
      const out = await api("/people", { method: "POST", body: { email: data.email, role: data.role, site: data.site || null } });
      message.innerHTML = html`Invited ${out.person.email}${out.mailed ? " (e-mailed)" : ""}. Their link, shown once:
        <code data-testid="invite-link">${out.link}</code>`.text;
      event.target.reset();
      await refresh();
    } catch (err) {
      message.textContent = `Could not invite: ${err instanceof ApiError ? err.detail : err}`;
    }
  });
  await refresh();
}
