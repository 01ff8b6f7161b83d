// Shared pieces of every page: panels with loading and "not available" states,
// the NPS figure and the promoter/passive/detractor split (text next to colour).

import { ApiError } from "./api.js";
import { bandNote } from "./benchmarks.js";
import { count, html, interval, nps, percent, raw, tone } from "./format.js";

/** Fill `el` with a titled panel whose body comes from `load()` then `render(data)`. */
export async function panel(el, title, load, render, { headingLevel = 2 } = {}) {
  const id = `p-${Math.random().toString(36).slice(2, 8)}`;
  el.classList.add("panel");
  el.setAttribute("aria-labelledby", id);
  el.setAttribute("aria-busy", "true");
  el.innerHTML = html`<h${raw(String(headingLevel))} id="${id}">${title}</h${raw(String(headingLevel))}>
    <div class="body"><p class="muted">Loading…</p></div>`.text;
  const body = el.querySelector(".body");
  try {
    const data = await load();
    body.innerHTML = "";
    render(body, data);
  } catch (err) {
    showError(body, err);
  } finally {
    el.removeAttribute("aria-busy");
  }
}

export function showError(body, err) {
  if (err instanceof ApiError && err.status === 401) return;
  let text;
  if (err instanceof ApiError && err.unavailable) {
    text = html`<p class="unavailable" role="note"><strong>Not available.</strong>
      This server does not offer <code>${err.path}</code> yet (HTTP ${err.status}).</p>`;
  } else if (err instanceof ApiError) {
    text = html`<p class="error" role="alert"><strong>Could not load.</strong> ${err.detail}
      (HTTP ${err.status})</p>`;
  } else {
    text = html`<p class="error" role="alert"><strong>Could not show this.</strong> ${String(err)}</p>`;
  }
  body.innerHTML = text.text;
  if (!(err instanceof ApiError)) console.error(err);
}

export function toneWord(value) {
  return { good: "good", fair: "fair", poor: "poor", none: "no answers" }[tone(value)];
}

/** The headline NPS with its interval, n and a tone word (not colour alone). */
export function npsFigure(block, { label = "NPS", testid = "nps" } = {}) {
  return html`<div class="figure tone-${tone(block.nps)}">
    <div class="figure-label">${label}</div>
    <div class="figure-value" data-testid="${testid}" data-value="${block.nps ?? ""}">${nps(block.nps)}</div>
    <div class="figure-sub">95% interval ${interval(block.ci95)} · n = ${count(block.n)} ·
      ${bandNote(block.nps) ?? html`<span class="tone-word">${toneWord(block.nps)}</span>`}</div>
  </div>`;
}

const PARTS = [
  ["promoters", "Promoters", "9–10"],
  ["passives", "Passives", "7–8"],
  ["detractors", "Detractors", "0–6"],
];

/** A stacked bar of the split, each part labelled with its name, share and count. */
export function splitBar(block) {
  const n = block.n || 0;
  const parts = PARTS.map(([key, label, scores]) => {
    const share = n ? block[key] / n : 0;
    return { key, label, scores, share, value: block[key] ?? 0 };
  });
  const bar = parts
    .filter((p) => p.share > 0)
    .map(
      (p) =>
        html`<span class="seg seg-${p.key}" style="width:${(p.share * 100).toFixed(2)}%"
          title="${p.label} ${percent(p.share)}">${p.share >= 0.12 ? `${p.label} ${percent(p.share)}` : ""}</span>`,
    );
  const legend = parts.map(
    (p) => html`<li class="key-${p.key}" data-testid="split-${p.key}"><span class="swatch" aria-hidden="true"></span>
      <strong>${p.label}</strong> (${p.scores}): ${percent(p.share)} · ${count(p.value)}</li>`,
  );
  return html`<div class="split" role="img" aria-label="${parts
    .map((p) => `${p.label} ${percent(p.share)}`)
    .join(", ")}">${bar}</div><ul class="split-legend">${legend}</ul>`;
}

/** A horizontal NPS bar (-100..100) with its interval whisker, for tables. */
export function npsBar(block) {
  if (block.nps === null || block.nps === undefined) return html`<span class="muted">no answers</span>`;
  const x = (v) => ((Math.max(-100, Math.min(100, v)) + 100) / 2).toFixed(2);
  const [lo, hi] = block.ci95 || [block.nps, block.nps];
  const left = Math.min(50, Number(x(block.nps)));
  const width = Math.abs(Number(x(block.nps)) - 50);
  return html`<span class="npsbar" aria-hidden="true">
    <span class="npsbar-zero"></span>
    <span class="npsbar-fill tone-${tone(block.nps)}" style="left:${left}%;width:${width.toFixed(2)}%"></span>
    <span class="npsbar-ci" style="left:${x(lo)}%;width:${(Number(x(hi)) - Number(x(lo))).toFixed(2)}%"></span>
  </span>`;
}

export function setTitle(text) {
  document.title = text ? `${text} · nps-edge` : "nps-edge";
}
