// A device's config: what the server wants it to run, what it reports, and the drift
// (server/api/fleet.py). Shown on the device page.

import { api } from "../api.js";
import { DASH, ago, html } from "../format.js";
import { panel } from "../ui.js";

function show(body, c) {
  const reported = c.reported;
  body.innerHTML = html`<dl class="facts">
    <div><dt>Desired config</dt><dd data-testid="desired-cfg">version ${c.desired.cfg}</dd></div>
    <div><dt>Reported config</dt><dd data-testid="reported-cfg">${reported.cfg === null ? DASH : `version ${reported.cfg}`}</dd></div>
    <div><dt>Drift</dt><dd data-testid="drift" class="${c.drift ? "warn" : ""}">${c.drift ? "yes: not running the desired config yet" : "none"}</dd></div>
    <div><dt>Commands pending</dt><dd>${c.pending}</dd></div>
    <div><dt>Last command accepted</dt><dd>${reported.cmd ?? DASH}</dd></div>
    <div><dt>Last refusal</dt><dd class="${reported.cmd_error ? "warn" : ""}">${reported.cmd_error ?? "none"}</dd></div>
    <div><dt>Update</dt><dd>${reported.update ?? DASH}</dd></div>
    <div><dt>Reported</dt><dd>${reported.at ? ago(reported.at) : DASH}</dd></div>
  </dl>
  ${Object.keys(c.desired.settings).length ? html`<details><summary>Desired settings</summary><pre>${JSON.stringify(c.desired.settings, null, 2)}</pre></details>` : ""}`.text;
}

/** The "Config" panel of device `id` in `el`. */
export function configPanel(el, id) {
  return panel(el, "Config", () => api(`/devices/${encodeURIComponent(id)}/config`), show);
}
