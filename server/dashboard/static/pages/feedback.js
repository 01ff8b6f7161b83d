// One feedback item (GET /api/v1/feedback, or the live stream) as a list row.

import { CATEGORY_LABEL, category, html, humanize, isoTime, time } from "../format.js";

const OUTCOME = { timeout: "No answer (timed out)", dismissed: "Dismissed" };

export function feedbackRow(item, { fresh = false } = {}) {
  const answered = item.outcome === "answered" && item.score !== null && item.score !== undefined;
  const cat = answered ? item.category || category(item.score) : "none";
  const score = answered
    ? html`<span class="score cat-${cat}"><strong>${item.score}</strong> ${CATEGORY_LABEL[cat]}</span>`
    : html`<span class="score cat-none">${OUTCOME[item.outcome] || humanize(item.outcome)}</span>`;
  const reason = item.reason ? html` · reason: ${humanize(item.reason)}` : "";
  return html`<li class="${fresh ? "fresh" : ""}" data-id="${item.id}">
    ${score}
    <span class="who"><a href="/fleet/${encodeURIComponent(item.device)}">${item.device}</a> · ${item.site}</span>
    <span class="what">${humanize(item.trigger_kind)}${reason} · fw ${item.fw}</span>
    <time datetime="${isoTime(item.ts)}">${time(item.ts)}</time>
  </li>`;
}

/** A live-updating list of feedback rows, newest first, appended to `body`. */
export function feedList(body, items, { id, label }) {
  const list = document.createElement("ol");
  list.className = "feed";
  list.id = id;
  list.setAttribute("aria-live", "polite");
  list.setAttribute("aria-label", label);
  list.innerHTML = items.map((item) => feedbackRow(item).text).join("");
  body.append(list);
  if (!items.length) body.insertAdjacentHTML("afterbegin", `<p class="muted" data-empty>No feedback yet.</p>`);
  return list;
}

/** Put a live item at the top of a feed list, keeping at most `keep` rows. */
export function prependLive(list, item, keep = 30) {
  if (!list) return;
  list.parentElement?.querySelector("[data-empty]")?.remove();
  list.insertAdjacentHTML("afterbegin", feedbackRow(item, { fresh: true }).text);
  while (list.children.length > keep) list.lastElementChild.remove();
}
