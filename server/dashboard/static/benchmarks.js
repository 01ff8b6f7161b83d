// The NPS band sets (GET /api/v1/benchmarks): each score's meaning in words, read with
// the set an admin chose (server/analytics/band_sets.json). Loaded once per page load.

import { api } from "./api.js";
import { html } from "./format.js";

let answer = null; // the last /benchmarks answer
let loading = null;

/** Load (once) the band sets; resolves to the answer, or null when not available. */
export function loadBands({ fresh = false } = {}) {
  if (fresh || !loading) {
    loading = api("/benchmarks", { redirect: false })
      .then((a) => (answer = a))
      .catch(() => null);
  }
  return loading;
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
