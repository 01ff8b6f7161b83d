// Device registry (admins): who may log in to a site's broker. Adding a device shows
// its broker password once; revoking takes effect when the broker config is written again.

import { api, ApiError, whoami } from "../api.js";
import { ago, html, isoTime } from "../format.js";
import { mayAdminister } from "../roles.js";
import { panel, setTitle } from "../ui.js";

export const name = "registry";
export const usesFilters = false;

function deviceRow(d) {
  const revoked = d.revoked_at !== null && d.revoked_at !== undefined;
  return html`<tr data-device="${d.device}">
    <th scope="row">${d.device}</th>
    <td>${d.site}</td>
    <td><code>${d.username}</code></td>
    <td><time datetime="${isoTime(d.created_at)}" title="${isoTime(d.created_at)}">${ago(d.created_at)}</time></td>
    <td data-testid="registry-status">${revoked ? html`revoked ${ago(d.revoked_at)}` : "active"}</td>
    <td>${revoked ? "" : html`<button type="button" class="secondary" data-revoke="${d.device}">Revoke</button>`}</td>
  </tr>`;
}

function passwordBox(added) {
  return html`<div class="secret" id="new-password" role="status">
    <p><strong>Device ${added.device} registered to site ${added.site}.</strong>
      Its broker login is username <code>${added.username}</code> and this password:</p>
    <p><input type="text" readonly id="password-value" aria-label="Broker password of ${added.device}"
      value="${added.password}" spellcheck="false" autocomplete="off">
      <button type="button" class="secondary" id="copy-password">Copy</button></p>
    <p class="warn-text">Copy it now into the provisioning tool (<code>nps-edge firmware provision</code>):
      it is shown this once, and the server keeps only its hash. Lost, it cannot be shown again:
      revoke the device and add it anew.</p>
  </div>`;
}

export async function render(main) {
  setTitle("Device registry");
  const who = await whoami().catch(() => null);
  if (!who || !mayAdminister(who.role)) {
    main.innerHTML = html`<h1>Device registry</h1>
      <p class="note" role="note">Only an admin manages the device registry${who ? html`; you are signed in as a ${who.role}` : ""}.</p>`.text;
    return;
  }
  main.innerHTML = html`<div class="page-head"><h1>Device registry</h1></div>
    <p class="muted">Devices registered here log in to their site's broker with their own
      password; a revoked device is refused once the broker config is written again
      (<code>nps-edge broker config</code>) and the broker reloaded.</p>
    <section class="panel" aria-labelledby="add-title">
      <h2 id="add-title">Add a device</h2>
      <form id="add-device" class="row">
        <label class="field">Site <input name="site" required autocomplete="off"
          pattern="[a-z0-9][a-z0-9\\-]{0,63}" value="${who.site ?? ""}" ${who.site ? "readonly" : ""}></label>
        <label class="field">Device id <input name="device" autocomplete="off"
          pattern="[a-z0-9][a-z0-9\\-]{2,63}" placeholder="optional: nps- and 6 random hex digits"></label>
        <button type="submit" class="primary">Add device</button>
      </form>
      <div id="added" aria-live="polite"></div>
      <p id="registry-message" role="status" class="muted"></p>
    </section>
    <section id="registered"></section>`.text;
  const form = main.querySelector("#add-device");
  const added = main.querySelector("#added");
  const message = main.querySelector("#registry-message");
  const section = main.querySelector("#registered");
  const refresh = () =>
    panel(section, "Registered devices", () => api("/registry/devices"), (body, rows) => {
      body.innerHTML = rows.length
        ? html`<div class="table-wrap"><table id="registry-table">
            <thead><tr><th scope="col">Device</th><th scope="col">Site</th><th scope="col">Username</th>
              <th scope="col">Added</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead>
            <tbody>${rows.map(deviceRow)}</tbody></table></div>`.text
        : html`<p class="muted">No device is registered yet.</p>`.text;
    });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const body = { site: data.site.trim(), ...(data.device.trim() ? { device: data.device.trim() } : {}) };
    form.querySelector("button").disabled = true;
    message.textContent = "";
    try {
      const device = await api("/registry/devices", { method: "POST", body });
      added.innerHTML = passwordBox(device).text;
      added.querySelector("#password-value").select();
      form.elements.device.value = "";
      await refresh();
    } catch (err) {
      message.textContent = `Could not add the device: ${err instanceof ApiError ? err.detail : err}`;
    } finally {
      form.querySelector("button").disabled = false;
    }
  });

  added.addEventListener("click", async (event) => {
    if (event.target.id !== "copy-password") return;
    const field = added.querySelector("#password-value");
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      message.textContent = "Password copied.";
    } catch {
      // The clipboard API needs HTTPS (or localhost): the text is selected for Ctrl+C.
      message.textContent = "Select the password and copy it (Ctrl+C): this browser did not allow copying.";
    }
  });

  // Revoking is two clicks: the first asks, the second does it.
  section.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-revoke]");
    if (!button) return;
    const device = button.dataset.revoke;
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = `Confirm: revoke ${device}`;
      return;
    }
    button.disabled = true;
    try {
      await api(`/registry/devices/${encodeURIComponent(device)}/revoke`, { method: "POST" });
      message.textContent = `${device} revoked: write the broker config again and reload the broker.`;
      await refresh();
    } catch (err) {
      message.textContent = `Could not revoke ${device}: ${err instanceof ApiError ? err.detail : err}`;
      button.disabled = false;
    }
  });
  await refresh();
}
