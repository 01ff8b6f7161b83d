// The overview's "why" panel: device reason codes and themes (reasons plus phone
// comments, server/analytics/themes.py) for the current filter, largest first, each
// with its NPS, comment sentiment, weekly change and the newest comments.

import { api } from "../api.js";
import { count, html, humanize, nps } from "../format.js";
import { npsBar, panel } from "../ui.js";

const ARROW = (change) => (change == null ? "" : change > 0 ? `↑ ${change}` : change < 0 ? `↓ ${-change}` : "→ 0");

function themeRows(themes) {
  return themes.map(
    (t) => html`<tr data-testid="theme-row" data-theme="${t.theme}">
      <th scope="row">${t.label}</th>
      <td class="num">${count(t.n)}</td>
      <td class="num" data-testid="theme-nps">${nps(t.nps)}</td>
      <td class="bar">${npsBar(t)}</td>
      <td class="num">${count(t.comments)}</td>
      <td>${t.sentiment_label ?? "—"}</td>
      <td class="num nowrap" title="answers in the last week against the week before">${ARROW(t.change)}</td>
      <td>${t.examples.length ? html`<q data-testid="theme-example">${t.examples[0].text}</q>` : ""}</td>
    </tr>`,
  );
}

function render(body, data) {
  if (!data.themes.length) {
    body.innerHTML = `<p class="muted">No reasons or comments in this range.</p>`;
    return;
  }
  const reasons = data.reasons.map(
    (r) => html`<tr><th scope="row">${humanize(r.reason)}</th><td class="num">${count(r.n)}</td>
      <td class="num">${nps(r.nps)}</td></tr>`,
  );
  body.innerHTML = html`<div class="table-wrap"><table data-testid="themes">
    <caption class="sr-only">Themes, largest first</caption>
    <thead><tr><th scope="col">Theme</th><th scope="col" class="num">Answers</th>
      <th scope="col" class="num">NPS</th><th scope="col"><span class="sr-only">NPS bar</span>−100 · 0 · +100</th>
      <th scope="col" class="num">Comments</th><th scope="col">Sentiment</th>
      <th scope="col" class="num">Weekly change</th><th scope="col">Newest comment</th></tr></thead>
    <tbody>${themeRows(data.themes)}</tbody></table></div>
    <details><summary>Reason codes chosen on the devices (${count(data.reasons.length)})</summary>
    <div class="table-wrap"><table data-testid="reasons"><caption class="sr-only">Reason codes, largest first</caption>
      <thead><tr><th scope="col">Reason</th><th scope="col" class="num">Answers</th><th scope="col" class="num">NPS</th></tr></thead>
      <tbody>${reasons}</tbody></table></div></details>
    <p class="muted">An answer counts in a theme by its reason code or by words in its comment from a phone,
      once per theme. Sentiment of the comments by VADER. See docs/dashboard.md.</p>`.text;
}

/** Add the panel to the overview's grid; resolves when it is drawn. */
export function whyPanel(grid, query) {
  const section = document.createElement("section");
  section.id = "why";
  section.className = "span-3";
  grid.append(section);
  return panel(section, "Why: reasons and themes", () => api("/themes", { query }), render);
}
