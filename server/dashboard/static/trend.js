// The overview's trend in words, tested: the later half of the range against the
// earlier half through GET /api/v1/compare (two-sample test, 5% level); "rising" or
// "falling" only when the test finds a change, "no significant change" otherwise.

import { api } from "./api.js";
import { keyTime } from "./charts.js";
import { changeWords } from "./markers.js";

function words(seconds) {
  return seconds >= 2 * 86400 ? `${Math.round(seconds / 86400)} days` : `${Math.round(seconds / 3600)} hours`;
}

/** Fill `el` with the tested trend of `groups` (periods of `step` seconds). */
export async function trendLine(el, query, groups, step) {
  const times = groups.filter((g) => g.n > 0).map((g) => keyTime(g.key)).filter((t) => t !== null);
  if (times.length < 4) {
    el.textContent = "Trend: not enough periods with answers yet";
    return;
  }
  const start = times[0];
  const end = times.at(-1) + step;
  const at = start + Math.floor((end - start) / 2 / step) * step;
  const q = { ...query, at: String(at), window_s: String(at - start) };
  delete q.from;
  delete q.to;
  try {
    const c = await api("/compare", { query: q });
    el.textContent = `Trend: ${changeWords(c)}, the last ${words(end - at)} against the ${words(at - start)} before`;
    el.dataset.significant = String(c.significant);
  } catch (err) {
    el.textContent = `Trend: not available (${err.message})`;
  }
}
