// The NPS band sets (GET /api/v1/benchmarks): each score's meaning in words, read with
// the set an admin chose (server/analytics/band_sets.json). The overview hands them
// over from its one programme call; until then a score keeps its plain tone word.

import { html } from "./format.js";

let answer = null; // the last /benchmarks answer

/** Keep the band sets (the `bands` of GET /api/v1/programme, or GET /api/v1/benchmarks). */
export function setBands(sets) {
  answer = sets;
}

export function activeSet() {
  return answer ? answer.sets.find((s) => s.id === answer.active) : null;
}

/** The band of a score in the active set; null without a score or before loading. */
export function bandOf(value) {
  const set = activeSet();
  if (!set || value === null || value === undefined) return null;
  return set.bands.find((b) => b.min === null || value >= b.min) || null;
}

/** The band's label and meaning, to sit next to a score; null when unknown. */
export function bandNote(value) {
  const band = bandOf(value);
  if (!band) return null;
  return html`<span class="tone-word" data-testid="band-label">${band.label}</span>
    <span class="band-meaning" data-testid="band-meaning">(${band.meaning}; ${activeSet().name} bands)</span>`;
}
