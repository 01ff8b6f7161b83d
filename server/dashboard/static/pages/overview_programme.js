// The NPS programme on the overview (issue 15): transactional and relationship NPS side
// by side (never averaged), the score's band, target and category gap, the north star,
// and NPS and coverage by role. Hooked into pages/overview.js by `programmePanels`.

import { api, whoami } from "../api.js";
import { activeSet, bandOf, setBands } from "../benchmarks.js";
import { count, html, humanize, nps, percent } from "../format.js";
import { mayAct, mayAdminister } from "../roles.js";
import { npsFigure, panel } from "../ui.js";

const DIFFERENCE =
  "Transactional NPS is asked right after one transaction and pinpoints a failed experience; " +
  "relationship NPS is asked of regular users on a calendar (quarterly) and tracks the whole relationship. " +
  "They answer different questions, so each stands alone and they are never averaged.";

function signed(value) {
  return value === null || value === undefined ? "—" : `${nps(value)} points`;
}

/** GET /api/v1/programme: everything these panels show, in one call; keeps the band sets. */
export function loadProgramme(query) {
  return api("/programme", { query }).then((p) => {
    setBands(p.bands);
    return p;
  });
}

function surveys(body, { standing: s, relationship }) {
  const transactional = s.figures;
  body.innerHTML = html`<p class="muted" data-testid="survey-difference">${DIFFERENCE}</p>
    <div class="figures">
      ${npsFigure(transactional, { label: "Transactional NPS (this range)", testid: "nps-transactional" })}
      ${npsFigure(relationship, { label: "Relationship NPS (this quarter)", testid: "nps-relationship" })}
    </div>`.text;
}

function bandList(set) {
  return html`<ul class="bands" data-testid="band-list">${set.bands.map(
    (b) => html`<li><strong>${b.label}</strong>: ${b.meaning}</li>`,
  )}</ul><p class="muted">Source: ${set.source}</p>`;
}

function standing(body, { standing: s, bands: sets }, who, scope) {
  const set = activeSet();
  const band = s.band;
  const t = s.target;
  const targetText = t && t.target !== null ? nps(t.target) : "none entered";
  const benchText = t && t.benchmark !== null ? `${nps(t.benchmark)} (${t.benchmark_label || "category"})` : "none entered";
  body.innerHTML = html`<div class="figure">
      <div class="figure-label">Transactional NPS in this range</div>
      <div class="figure-value">${nps(s.figures.nps)}</div>
      <div class="figure-sub" data-testid="standing-band">${band ? html`<strong>${band.label}</strong>: ${band.meaning}` : "no answers"}</div>
    </div>
    <dl class="facts">
      <dt>Target</dt><dd data-testid="target">${targetText}</dd>
      <dt>Gap to target</dt><dd data-testid="target-gap">${signed(s.gap_to_target)}</dd>
      <dt>Category or competitor</dt><dd data-testid="benchmark">${benchText}</dd>
      <dt>Gap to category</dt><dd data-testid="benchmark-gap">${signed(s.gap_to_benchmark)}</dd>
      ${t ? html`<dt>Entered by</dt><dd>${t.set_by}${t.site ? ` for ${t.site}` : " for the fleet"}</dd>` : ""}
    </dl>
    <details><summary>What the bands mean (${set ? set.name : sets.active})</summary>${set ? bandList(set) : ""}</details>
    ${mayAct(who.role) ? html`<form id="target-form"><fieldset><legend>Target for ${scope || "the fleet"}</legend>
      <label class="field">Target NPS<input name="target" type="number" min="-100" max="100" step="0.1" required value="${t?.target ?? ""}"></label>
      <label class="field">Category or competitor NPS<input name="benchmark" type="number" min="-100" max="100" step="0.1" value="${t?.benchmark ?? ""}"></label>
      <label class="field">Whose figure<input name="benchmark_label" maxlength="64" autocomplete="off" value="${t?.benchmark_label ?? ""}"></label>
      <button type="submit" class="secondary">Save target</button></fieldset></form>` : ""}
    ${mayAdminister(who.role) ? html`<form id="bands-form"><label class="field">Band set
      <select name="set">${sets.sets.map((x) => html`<option value="${x.id}" ${x.id === sets.active ? "selected" : ""}>${x.name}</option>`)}</select></label>
      <button type="submit" class="secondary">Use these bands</button></form>` : ""}
    <p class="muted" role="status" id="standing-status"></p>`.text;
}

function northStar(body, { northstar: ns }) {
  const done = ns.weeks.filter((w) => w.complete);
  const last = done.at(-1);
  const current = ns.weeks.at(-1);
  const peak = Math.max(1, ...ns.weeks.map((w) => w.value));
  // Transactions the devices counted and did not prompt (sampling): a column once any week has them.
  const skipped = ns.weeks.some((w) => w.unprompted > 0);
  const change = ns.change_pct === null ? "no trend yet" : `${ns.change_pct > 0 ? "↑" : ns.change_pct < 0 ? "↓" : "→"} ${ns.change_pct}% on the week before`;
  body.innerHTML = html`<div class="figure">
      <div class="figure-label" data-testid="northstar-label">${ns.metric.label}</div>
      <div class="figure-value" data-testid="northstar-value">${last ? count(last.value) : "—"}</div>
      <div class="figure-sub" data-testid="northstar-trend">${last ? `week ${last.week}: ` : ""}${change};
        this week so far ${count(current?.value ?? 0)}</div>
    </div>
    <table class="compact"><caption class="sr-only">${ns.metric.label} per ISO week</caption>
      <thead><tr><th scope="col">Week</th><th scope="col" class="num">Value</th>${skipped ? html`<th scope="col" class="num">of which not prompted</th>` : ""}<th scope="col"><span class="sr-only">bar</span></th></tr></thead>
      <tbody>${ns.weeks.map((w) => html`<tr><th scope="row">${w.week}${w.complete ? "" : " (so far)"}</th>
        <td class="num">${count(w.value)}</td>${skipped ? html`<td class="num" data-testid="northstar-unprompted">${count(w.unprompted)}</td>` : ""}
        <td><meter min="0" max="${peak}" value="${w.value}" aria-label="${w.week}">${w.value}</meter></td></tr>`)}</tbody>
    </table>
    <p class="muted">${ns.metric.definition}. A north star leads revenue: it moves before revenue does, and the team can move it.</p>`.text;
}

function roleTable(groups, caption, testid) {
  if (!groups.some((g) => g.n > 0)) return html`<p class="muted">${caption}: no answers.</p>`;
  const rows = groups.map(
    (g) => html`<tr><th scope="row">${g.key === null ? "unknown" : humanize(g.key)}</th>
      <td class="num" data-testid="role-nps">${nps(g.nps)}</td><td>${bandOf(g.nps)?.label ?? ""}</td><td class="num">${count(g.n)}</td></tr>`,
  );
  return html`<table data-testid="${testid}"><caption>${caption}</caption>
    <thead><tr><th scope="col">Role</th><th scope="col" class="num">NPS</th><th scope="col">Band</th><th scope="col" class="num">n</th></tr></thead>
    <tbody>${rows}</tbody></table>`;
}

function roles(body, { roles: transactional, relationship, coverage: cov }) {
  const sites = [...new Set(cov.cells.map((c) => c.site))];
  const cell = (site, role) => cov.cells.find((c) => c.site === site && c.role === role);
  const head = cov.roles.map((r) => html`<th scope="col" class="num">${humanize(r)}</th>`);
  const rows = sites.map((site) => html`<tr><th scope="row">${site}</th>${cov.roles.map((role) => {
    const c = cell(site, role);
    const n = c ? c.answered : 0;
    return html`<td class="num ${n ? "" : "missing"}" title="${site}, ${humanize(role)}: ${n} answers (transactional ${c?.surveys.transactional.n ?? 0}, relationship ${c?.surveys.relationship.n ?? 0})">${n ? count(n) : "none"}</td>`;
  })}</tr>`);
  body.innerHTML = html`<p class="muted">Averaging every role together hides an unhappy sponsor behind happy users: each role's NPS stands apart.</p>
    <div class="grid two">
      <div class="table-wrap">${roleTable(transactional.groups, "Transactional NPS by role (this range)", "roles-transactional")}</div>
      <div class="table-wrap">${roleTable(relationship.groups, "Relationship NPS by role (this quarter)", "roles-relationship")}</div>
    </div>
    <h3>Who each site hears from (answers this quarter, both surveys)</h3>
    <ul data-testid="coverage-missing">${cov.missing.length ? cov.missing.map((m) => html`<li>${m}</li>`) : html`<li>Every site has answers from every role.</li>`}</ul>
    <div class="table-wrap"><table data-testid="coverage"><caption class="sr-only">Answers per site and role this quarter</caption>
      <thead><tr><th scope="col">Site</th>${head}</tr></thead><tbody>${rows}</tbody></table></div>
    <p class="muted">Response rate of the range: ${percent(transactional.response_rate)}.</p>`.text;
}

async function save(form, path, body, status) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await api(path, { method: "PUT", body });
    return true;
  } catch (err) {
    status.textContent = `Not saved: ${err.detail || err}`;
    return false;
  } finally {
    button.disabled = false;
  }
}

function numberOrNull(value) {
  return value === "" || value === null || value === undefined ? null : Number(value);
}

/** The programme's panels, appended to the overview's grid; one promise per panel.
 *  `programme` is the pending GET /api/v1/programme (`loadProgramme`). */
export function programmePanels(grid, query, programme) {
  const section = (id, cls) => {
    const el = document.createElement("section");
    el.id = id;
    if (cls) el.className = cls;
    grid.append(el);
    return el;
  };
  const surveysEl = section("surveys", "span-2");
  const standingEl = section("standing");
  const northEl = section("northstar");
  const rolesEl = section("roles", "span-2");

  const showStanding = (pending) =>
    panel(standingEl, "Benchmarks and target", () => Promise.all([pending, whoami()]), (body, [p, who]) => {
      const site = query.site || who.site || null;
      standing(body, p, who, site);
      const status = body.querySelector("#standing-status");
      const saved = () => showStanding(loadProgramme(query));
      body.querySelector("#target-form")?.addEventListener("submit", async (event) => {
        event.preventDefault();
        const f = Object.fromEntries(new FormData(event.target));
        const entry = {
          site,
          target: numberOrNull(f.target),
          benchmark: numberOrNull(f.benchmark),
          benchmark_label: f.benchmark_label || null,
        };
        if (await save(event.target, "/targets", entry, status)) saved();
      });
      body.querySelector("#bands-form")?.addEventListener("submit", async (event) => {
        event.preventDefault();
        const set = new FormData(event.target).get("set");
        if (await save(event.target, "/benchmarks/active", { set }, status)) saved();
      });
    });

  return [
    panel(surveysEl, "Transactional and relationship NPS", () => programme, surveys),
    showStanding(programme),
    panel(northEl, "North star", () => programme, northStar),
    panel(rolesEl, "NPS and coverage by role", () => programme, roles),
  ];
}
