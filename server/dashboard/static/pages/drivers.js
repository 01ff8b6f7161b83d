// Health drivers: NPS by firmware, Wi-Fi band, battery band and health state, each
// group against the feature's largest group compared within site (docs/drivers.md),
// tested only with 30 answers a side, Holm-corrected; verdicts in words.

import { api } from "../api.js";
import { canvasIn, forestChart } from "../charts.js";
import * as filters from "../filters.js";
import { count, html, humanize, interval, nps } from "../format.js";
import { npsBar, panel, setTitle, showError } from "../ui.js";
import { bandsNote, loadBands, stateNote } from "./health.js";

export const name = "drivers";
export const usesFilters = true;

// Each note states the server's thresholds (GET /api/v1/bands) when it gave them.
const FEATURES = {
  fw: { title: "Firmware version", note: () => "Which firmware the device ran when the prompt was answered." },
  rssi_band: {
    title: "Wi-Fi signal (RSSI band)",
    note: (b) => `Signal at answer time${b ? `: ${bandsNote(b.rssi)}` : ""}.`,
  },
  battery_band: {
    title: "Battery band",
    note: (b) => `Battery at answer time${b ? `: ${bandsNote(b.battery_mv)}` : ""}.`,
  },
  health: {
    title: "Device health",
    note: (b) =>
      b
        ? `Over the 24 h before each answer, ${b.health.map(stateNote).join("; ")}; healthy otherwise.`
        : "Healthy, degraded (errors, reboots, weak Wi-Fi, low battery) or faulty, over the 24 h before each answer.",
  },
};
const ORDER = ["fw", "rssi_band", "battery_band", "health"];
// Known band names in their natural order (best first); anything else sorts by name after them.
const KEY_ORDER = ["strong", "good", "healthy", "ok", "low", "degraded", "weak", "critical", "faulty", "none"];

function byKey(a, b) {
  const ia = KEY_ORDER.indexOf(String(a.key));
  const ib = KEY_ORDER.indexOf(String(b.key));
  if (ia !== ib) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  return String(a.key).localeCompare(String(b.key), "en", { numeric: true });
}

function p(value) {
  if (value === null || value === undefined) return "";
  return value < 0.001 ? "p < 0.001" : `p = ${value.toFixed(3)}`;
}

function verdict(cmp) {
  if (!cmp) return html`<span class="ref">reference (largest group)</span>`;
  const within = cmp.sites === 1 ? "within 1 site" : `within ${cmp.sites} sites`;
  if (cmp.verdict === "too_few")
    return html`<span class="muted" data-verdict="too_few">too few answers to test (n = ${count(cmp.n_a)} against ${count(cmp.n_b)} at shared sites; 30 needed)</span>`;
  if (cmp.verdict === "no_common_site")
    return html`<span class="muted" data-verdict="no_common_site">not comparable: never at the same site as the reference</span>`;
  if (!cmp.significant)
    return html`<span data-verdict="no_difference">no significant difference ${within} (${nps(cmp.diff)} points, ${p(cmp.p_adjusted)} after correction)</span>`;
  const lower = cmp.diff < 0;
  return html`<span class="sig ${lower ? "" : "better"}" data-testid="significant" data-verdict="${cmp.verdict}">${lower ? "▼ significantly lower" : "▲ significantly higher"}</span>
    <span>${nps(cmp.diff)} points ${within}, ${p(cmp.p_adjusted)} after correction</span>`;
}

function featurePanel(el, feature, bands) {
  const meta = FEATURES[feature.feature] || { title: humanize(feature.feature), note: () => "" };
  const comparisons = new Map(feature.comparisons.map((c) => [String(c.a), c]));
  const groups = [...feature.groups]
    .sort(byKey)
    .map((g) => ({ ...g, label: g.key === "none" ? "no reading" : humanize(g.key), cmp: comparisons.get(String(g.key)) }));
  el.classList.add("panel");
  el.dataset.feature = feature.feature;
  el.innerHTML = html`<h2>${meta.title}</h2><p class="muted">${meta.note(bands)}</p>`.text;
  if (!groups.length) {
    el.insertAdjacentHTML("beforeend", `<p class="muted">No answers in this range.</p>`);
    return;
  }
  try {
    forestChart(canvasIn(el, `${meta.title}: NPS with 95% interval per group`, 50 + 38 * groups.length), groups, {
      highlight: (g) => g.cmp?.significant && g.cmp.diff < 0,
    });
  } catch (err) {
    showError(el.appendChild(document.createElement("div")), err);
  }
  const rows = groups.map(
    (g) => html`<tr data-key="${g.key}">
      <th scope="row">${g.label}</th>
      <td class="num">${nps(g.nps)}</td>
      <td class="bar">${npsBar(g)}</td>
      <td class="num nowrap">${interval(g.ci95)}</td>
      <td class="num">${count(g.n)}</td>
      <td class="verdict">${verdict(g.cmp)}</td>
    </tr>`,
  );
  el.insertAdjacentHTML(
    "beforeend",
    html`<div class="table-wrap"><table>
      <caption class="sr-only">${meta.title}: NPS per group and its difference from the largest group</caption>
      <thead><tr><th scope="col">Group</th><th scope="col" class="num">NPS</th><th scope="col"><span class="sr-only">NPS bar</span>−100 · 0 · +100</th>
      <th scope="col" class="num">95% interval</th><th scope="col" class="num">n</th><th scope="col" class="verdict">Against the largest group, within site</th></tr></thead>
      <tbody>${rows}</tbody></table></div>`.text,
  );
}

export async function render(main, { filters: current }) {
  setTitle("Health drivers");
  const query = filters.apiQuery(current);
  main.dataset.query = new URLSearchParams(query).toString();
  main.innerHTML = html`<div class="page-head"><h1>Health drivers</h1></div>
    <p class="muted">What in the device hurts loyalty: each group is compared with its feature's largest group
      <strong>within each site</strong>, so a site's own mood does not pass for a device effect; the site differences are
      pooled with inverse-variance weights. A group needs 30 answers a side to be tested, and the p-values are
      Holm-corrected over every comparison on the page (5% family-wise level). ▼ marks a group significantly below
      the reference. Drivers that move together (a firmware that weakens Wi-Fi) are not separated from each other.
      The NPS and interval columns are all sites together.</p>
    <div class="grid features" id="features"><section id="drivers-load" class="span-3"></section></div>`.text;
  const grid = main.querySelector("#features");
  const load = () => Promise.all([api("/drivers", { query }), loadBands()]);
  await panel(grid.querySelector("#drivers-load"), "Loading drivers", load, (_body, [data, bands]) => {
    grid.replaceChildren();
    const features = [...data.features].sort((a, b) => ORDER.indexOf(a.feature) - ORDER.indexOf(b.feature));
    for (const feature of features) {
      const section = document.createElement("section");
      grid.append(section);
      featurePanel(section, feature, bands);
    }
  });
}
