// Filters live in the URL (?range=7d&site=...), so a view is shareable as a link.

export const FILTER_KEYS = ["range", "site", "fw", "trigger"];
export const DEFAULT_RANGE = "30d";
const RANGE_SECONDS = { "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400 };

/** The filters in the current URL, with the default range filled in. */
export function current() {
  const params = new URLSearchParams(location.search);
  const out = {};
  for (const key of FILTER_KEYS) {
    const value = params.get(key);
    if (value) out[key] = value;
  }
  if (!(out.range in RANGE_SECONDS) && out.range !== "all") out.range = DEFAULT_RANGE;
  return out;
}

/**
 * The API query for these filters: `from` is the range's start rounded down to
 * the hour (to the minute for 24 h), so figures are stable across reloads.
 */
export function apiQuery(filters = current(), now = Date.now() / 1000) {
  const query = {};
  const span = RANGE_SECONDS[filters.range];
  if (span) {
    const step = span <= 86400 ? 60 : 3600;
    query.from = String(Math.floor((now - span) / step) * step);
  }
  for (const key of ["site", "fw", "trigger"]) if (filters[key]) query[key] = filters[key];
  return query;
}

/** The URL search string for these filters (default range left out), plus extras. */
export function search(filters, extra = {}) {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const value = filters[key];
    if (value && !(key === "range" && value === DEFAULT_RANGE)) params.set(key, value);
  }
  for (const [key, value] of Object.entries(extra)) if (value) params.set(key, value);
  const qs = params.toString();
  return qs ? `?${qs}` : "";
}

/** Human text for the time range, e.g. "Last 7 days". */
export function rangeLabel(range) {
  return { "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days", all: "All time" }[range];
}
