// Releases (operators): each firmware release, its staged rollouts, and the NPS canary
// that judges them: the cohort on the new firmware against the control on the old one,
// over the same hours, with 95% intervals; a significant drop halted the rollout.

import { api, ApiError, whoami } from "../api.js";
import { DASH, ago, count, html, interval, isoTime, nps, time } from "../format.js";
import { mayAct } from "../roles.js";
import { showError, setTitle } from "../ui.js";

export const name = "releases";
export const usesFilters = false;

const STATE_WORDS = {
  rolling: "rolling out",
  halted: "halted",
  done: "done",
  rolled_back: "rolled back",
  stored: "stored, not rolled out",
};

function target(t) {
  if (t.devices && t.devices.length) return `devices ${t.devices.join(", ")}`;
  if (t.site) return `site ${t.site}`;
  return `${t.percent}% of the fleet`;
}

function num(value, digits = 1) {
  return value === null || value === undefined ? DASH : Number(value).toFixed(digits);
}

function healthRows(c) {
  const rows = [
    ["Devices reporting", "devices", 0],
    ["Reboots per device", null, 2],
    ["Errors", "errors", 0],
    ["Mean RSSI (dBm)", "rssi", 1],
    ["Mean outbox depth", "outbox_depth", 1],
    ["Lowest heap_min (bytes)", "heap_min", 0],
  ];
  const per = (h) => (h.devices ? h.reboots / h.devices : null);
  return rows.map(([label, key, digits]) => {
    const a = key ? c.cohort.health[key] : per(c.cohort.health);
    const b = key ? c.control.health[key] : per(c.control.health);
    return html`<tr><th scope="row">${label}</th><td>${num(a, digits)}</td><td>${num(b, digits)}</td></tr>`;
  });
}

function canary(c, version) {
  if (!c || !c.cohort) return html`<p class="muted">No canary figures yet (the server judges rollouts every minute).</p>`;
  const diff = c.diff === null ? DASH : nps(c.diff);
  return html`<table class="canary" data-testid="canary">
      <caption>Canary since ${time(c.window[0])}: cohort on ${version} against the control on other firmware</caption>
      <thead><tr><th scope="col"></th><th scope="col">Cohort (${version})</th><th scope="col">Control</th></tr></thead>
      <tbody>
        <tr><th scope="row">NPS (95% interval)</th>
          <td data-testid="cohort-nps">${nps(c.cohort.nps.nps)} (${interval(c.cohort.nps.ci95)})</td>
          <td data-testid="control-nps">${nps(c.control.nps.nps)} (${interval(c.control.nps.ci95)})</td></tr>
        <tr><th scope="row">Answers</th><td>${count(c.cohort.nps.n)}</td><td>${count(c.control.nps.n)}</td></tr>
        ${healthRows(c)}
      </tbody>
    </table>
    <p data-testid="canary-diff">Difference ${diff} points (95% interval ${interval(c.diff_ci95)}),
      p = ${c.p === null ? DASH : Number(c.p).toPrecision(2)}${c.halt ? html` <strong class="warn">significant drop</strong>` : ""}.
      <span class="muted">No verdict on NPS below ${c.min_answers} answers a side.</span></p>`;
}

function rollout(r, version) {
  const size = r.steps[r.step];
  return html`<div class="rollout" data-testid="rollout" data-state="${r.state}">
    <p><strong data-testid="rollout-state" class="${r.state === "halted" ? "warn" : ""}">${STATE_WORDS[r.state] ?? r.state}</strong>
      · ${target(r.target)} · step ${r.step + 1} of ${r.steps.length} (cohort ${count(r.cohort.length)} of ${count(size)} planned;
      steps ${r.steps.join(" → ")}) · widens after ${count(r.step_answers)} answers a step
      · started <time datetime="${isoTime(r.started_at)}" title="${isoTime(r.started_at)}">${ago(r.started_at)}</time></p>
    ${r.reason ? html`<p class="warn-text" data-testid="rollout-reason">${r.reason}</p>` : ""}
    ${canary(r.canary, version)}
    <details><summary>Cohort (${count(r.cohort.length)} devices)</summary>
      <p>${r.cohort.map((d, i) => html`${i ? ", " : ""}<a href="/fleet/${encodeURIComponent(d)}" data-nav>${d}</a>`)}</p></details>
  </div>`;
}

function release(rel) {
  return html`<section class="panel" data-testid="release" data-version="${rel.version}">
    <h2>${rel.version} <span class="muted">· ${STATE_WORDS[rel.state] ?? rel.state}</span></h2>
    <p class="muted">Board ${rel.board}, ${count(rel.files)} files, ${count(rel.size)} bytes, stored ${time(rel.created_at)};
      manifest SHA-256 <code>${rel.manifest_sha256.slice(0, 16)}…</code></p>
    ${rel.rollouts.length ? rel.rollouts.map((r) => rollout(r, rel.version)) : html`<p class="muted">Not rolled out: <code>nps-edge release rollout --version ${rel.version}</code>.</p>`}
  </section>`;
}

export async function render(main) {
  setTitle("Releases");
  main.innerHTML = html`<div class="page-head"><h1>Releases</h1></div>
    <p class="muted">Firmware releases signed with the release key and their staged rollouts
      (<code>nps-edge release create</code>, <code>nps-edge release rollout</code>).</p>
    <div id="releases" aria-live="polite"><p class="muted">Loading…</p></div>`.text;
  const box = main.querySelector("#releases");
  const who = await whoami().catch(() => null);
  if (!who || !mayAct(who.role)) {
    box.innerHTML = html`<p class="note" role="note">Releases are shown to operators and admins${who ? html`; you are signed in as a ${who.role}` : ""}.</p>`.text;
    return;
  }
  try {
    const releases = await api("/releases");
    box.innerHTML = releases.length
      ? html`${releases.map(release)}`.text
      : html`<p class="muted" data-testid="no-releases">No release yet.</p>`.text;
  } catch (err) {
    if (err instanceof ApiError || err instanceof Error) showError(box, err);
  }
}
