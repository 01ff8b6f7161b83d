// Overview: fleet NPS with interval and trend, response rate, answers today, the
// split, NPS by trigger kind, sites ranked, the hour-by-weekday heat map, live feed.
// Five API calls, all aggregated on the server; no raw rows.

import { api } from "../api.js";
import { canvasIn, trendChart } from "../charts.js";
import { withMarkers } from "../markers.js";
import { trendLine } from "../trend.js";
import * as filters from "../filters.js";
import { count, html, humanize, interval, nps, percent, scopeLabel } from "../format.js";
import { npsBar, npsFigure, panel, setTitle, splitBar } from "../ui.js";
import { feedList, prependLive } from "./feedback.js";
import { loadProgramme, programmePanels } from "./overview_programme.js";
import { whyPanel } from "./overview_why.js";

export const name = "overview";
export const usesFilters = true;

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
let onLive = null; // the open page's handler for a live feedback item

/** Add up figure blocks (counts only; NPS recomputed by the caller's reader). */
function sum(blocks) {
  const out = { n: 0, promoters: 0, passives: 0, detractors: 0, shown: 0 };
  for (const b of blocks) for (const key of Object.keys(out)) out[key] += b[key] || 0;
  out.nps = out.n ? (100 * (out.promoters - out.detractors)) / out.n : null;
  return out;
}

function headline(body, totals, current, query, step) {
  const today = new Date().toISOString().slice(0, 10);
  const answeredToday = sum(totals.groups.filter((g) => String(g.key).startsWith(today))).n;
  body.innerHTML = html`<div class="figures">
    ${npsFigure(totals, { label: scopeLabel(current) })}
    <div class="figure">
      <div class="figure-label">Response rate</div>
      <div class="figure-value" data-testid="response-rate">${percent(totals.response_rate)}</div>
      <div class="figure-sub">${count(totals.n)} answered of ${count(totals.shown)} prompts shown</div>
    </div>
    <div class="figure">
      <div class="figure-label">Answers today (UTC)</div>
      <div class="figure-value" data-testid="answers-today">${count(answeredToday)}</div>
      <div class="figure-sub" id="live-count">live: 0 new since this page opened</div>
    </div>
  </div>
  <p class="trend" data-testid="trend">Trend: testing…</p>
  ${splitBar(totals)}`.text;
  trendLine(body.querySelector("[data-testid=trend]"), query, totals.groups, step);
}

function trend(body, totals, period, query) {
  if (!totals.groups.some((g) => g.n > 0)) {
    body.innerHTML = `<p class="muted">No answers in this range.</p>`;
    return;
  }
  const step = period === "hour" ? 3600 : 86400;
  const chart = trendChart(canvasIn(body, `NPS by ${period} with its 95% interval`), totals.groups, { step });
  withMarkers(body, chart, query, { windowS: period === "hour" ? 6 * 3600 : 7 * 86400 });
  const last = totals.groups.filter((g) => g.n > 0).at(-1);
  body.insertAdjacentHTML(
    "beforeend",
    html`<p class="muted">Latest ${period} (${last.key}): NPS ${nps(last.nps)}, interval ${interval(last.ci95)}, n = ${count(last.n)}.
      The band is the 95% interval; wide bands mean few answers.</p>`.text,
  );
}

/** A table of groups with an NPS bar; `link(key)` makes the first column a filter link. */
function groupTable(body, groups, { caption, keyLabel, link, ranked = false, compact = false }) {
  if (!groups.length) {
    body.innerHTML = `<p class="muted">No answers in this range.</p>`;
    return;
  }
  const rows = groups.map(
    (g, i) => html`<tr>
      ${ranked ? html`<td class="num">${i + 1}</td>` : ""}
      <th scope="row">${link ? html`<a href="${link(g.key)}">${humanize(g.key)}</a>` : humanize(g.key)}</th>
      <td class="num" data-testid="group-nps">${nps(g.nps)}</td>
      ${compact ? "" : html`<td class="bar">${npsBar(g)}</td>`}
      <td class="num nowrap">${interval(g.ci95)}</td>
      <td class="num">${count(g.n)}</td>
      ${compact ? "" : html`<td class="num">${percent(g.response_rate)}</td>`}
    </tr>`,
  );
  body.innerHTML = html`<div class="table-wrap"><table>
    <caption class="sr-only">${caption}</caption>
    <thead><tr>${ranked ? html`<th scope="col">Rank</th>` : ""}<th scope="col">${keyLabel}</th>
      <th scope="col" class="num">NPS</th>
      ${compact ? "" : html`<th scope="col"><span class="sr-only">NPS bar</span>−100 · 0 · +100</th>`}
      <th scope="col" class="num">95% interval</th><th scope="col" class="num">n</th>
      ${compact ? "" : html`<th scope="col" class="num">Response</th>`}</tr></thead>
    <tbody>${rows}</tbody></table></div>`.text;
}

function heatColor(value) {
  // Diverging: red below zero, green above, light for near zero; text carries the number.
  const t = Math.max(-1, Math.min(1, value / 60));
  return t >= 0 ? `hsl(140 55% ${92 - t * 42}%)` : `hsl(2 70% ${92 + t * 40}%)`;
}

function heatmap(body, data) {
  const cells = new Map(data.cells.map((c) => [`${c.weekday}:${c.hour}`, c]));
  const hours = [...Array(24).keys()];
  const head = hours.map((h) => html`<th scope="col">${String(h).padStart(2, "0")}</th>`);
  const rows = WEEKDAYS.map((day, w) => {
    const tds = hours.map((h) => {
      const c = cells.get(`${w}:${h}`);
      if (!c || !c.n) return html`<td class="empty" title="${day} ${h}:00 UTC: no answers">·</td>`;
      const few = c.n < 5;
      const style = few ? "" : `background:${heatColor(c.nps)}`;
      return html`<td class="${few ? "few" : ""}" style="${style}"
        title="${day} ${h}:00–${h + 1}:00 UTC: NPS ${nps(c.nps)}, n = ${c.n}${few ? " (few answers)" : ""}">${Math.round(c.nps)}</td>`;
    });
    return html`<tr><th scope="row">${day}</th>${tds}</tr>`;
  });
  body.innerHTML = html`<div class="table-wrap"><table class="heat">
    <caption class="sr-only">NPS by weekday and hour (UTC); each cell shows the NPS, hover for n</caption>
    <thead><tr><th scope="col"><span class="sr-only">Weekday</span></th>${head}</tr></thead>
    <tbody>${rows}</tbody></table></div>
    <p class="muted">Cells show NPS (UTC hours). Red is below zero, green above; grey italic cells have fewer than 5 answers, · none.</p>`.text;
}

/** A weekday-by-hour map of one day is 24 cells of 168: say so, and where the hours are. */
function shortRangeNote(body) {
  body.innerHTML = `<p class="muted" data-testid="heat-note">The weekday-by-hour map needs a week or more of answers:
    pick "Last 7 days" or longer. For the last 24 hours, NPS hour by hour is in the chart above.</p>`;
}

function latest(body, data) {
  feedList(body, data.items, { id: "live-feed", label: "Latest feedback, newest first" });
}

function matches(item, current) {
  return (
    (!current.site || item.site === current.site) &&
    (!current.fw || item.fw === current.fw) &&
    (!current.trigger || item.trigger_kind === current.trigger)
  );
}

export async function render(main, { filters: current }) {
  setTitle("Overview");
  const query = filters.apiQuery(current);
  const period = current.range === "24h" ? "hour" : "day";
  const step = period === "hour" ? 3600 : 86400;
  main.dataset.query = new URLSearchParams(query).toString();
  const link = (key) => filters.search({ ...current, site: key });
  const triggerLink = (key) => filters.search({ ...current, trigger: key });
  const exportLink = `/api/v1/export?${new URLSearchParams({ ...query, format: "csv" })}`;
  main.innerHTML = html`<div class="page-head"><h1>Overview</h1>
      <a class="button" href="${exportLink}" download>Export CSV</a></div>
    <div class="grid">
      <section id="headline" class="span-2"></section>
      <section id="latest" class="tall"></section>
      <section id="trend" class="span-2"></section>
      <section id="sites" class="span-2"></section>
      <section id="triggers"></section>
      <section id="heat" class="span-3"></section>
    </div>`.text;
  const $ = (id) => main.querySelector(`#${id}`);
  let totals = null;
  const loadTotals = () => api("/nps", { query: { ...query, group_by: period } });
  const programme = loadProgramme(query); // the band sets come with it, for the headline
  const totalsOnce = loadTotals().then((t) => (totals = t));
  // The headline waits for the band sets too; the chart (and its markers) does not wait
  // for the programme's call, often the slowest of the page's.
  const withBands = Promise.all([totalsOnce, programme.catch(() => null)]).then(([t]) => t);
  const jobs = [
    panel($("headline"), "At a glance", () => withBands, (b, t) => headline(b, t, current, query, step)),
    panel($("trend"), `NPS by ${period}`, () => totalsOnce, (b, t) => trend(b, t, period, query)),
    panel($("triggers"), "NPS by trigger kind", () => api("/nps", { query: { ...query, group_by: "trigger" } }), (b, d) =>
      groupTable(b, [...d.groups].sort((a, b2) => b2.n - a.n), {
        caption: "NPS by trigger kind",
        keyLabel: "Trigger",
        link: triggerLink,
        compact: true,
      }),
    ),
    panel($("sites"), "Sites ranked by NPS", () => api("/nps", { query: { ...query, group_by: "site" } }), (b, d) =>
      groupTable(b, [...d.groups].sort((a, b2) => (b2.nps ?? -999) - (a.nps ?? -999)), {
        caption: "Sites ranked by NPS",
        keyLabel: "Site",
        link,
        ranked: true,
      }),
    ),
    panel($("heat"), "NPS by hour and weekday (UTC)", () => api("/heatmap", { query }), (b, d) =>
      current.range === "24h" ? shortRangeNote(b) : heatmap(b, d),
    ),
    panel($("latest"), "Latest feedback", () => api("/feedback", { query: { ...query, limit: 12 } }), latest),
    ...programmePanels(main.querySelector(".grid"), query, programme),
  ];
  jobs.push(whyPanel(main.querySelector(".grid"), query)); // reasons and themes: overview_why.js
  await Promise.all(jobs);

  let fresh = 0;
  let timer = null;
  const refresh = async () => {
    try {
      totals = await loadTotals();
      headline($("headline").querySelector(".body"), totals, current, query, step);
      const liveCount = $("live-count");
      if (liveCount) liveCount.textContent = `live: ${fresh} new since this page opened`;
    } catch {
      // keep the figures shown; the next live event tries again
    }
  };
  onLive = (item) => {
    if (!matches(item, current)) return;
    fresh += 1;
    prependLive($("live-feed"), item);
    const liveCount = $("live-count");
    if (liveCount) liveCount.textContent = `live: ${fresh} new since this page opened`;
    clearTimeout(timer);
    timer = setTimeout(refresh, 2000);
  };
  return () => {
    clearTimeout(timer);
    onLive = null;
  };
}

export function onFeedback(item) {
  onLive?.(item);
}
