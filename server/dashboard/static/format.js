// Formatting and safe HTML: every value from the API is escaped on the way in.

class Raw {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

/** Mark already-safe markup (the output of `html`) so it is not escaped again. */
export const raw = (text) => new Raw(text);

export function escape(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function piece(value) {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return value.map(piece).join("");
  return escape(value);
}

/** Tagged template: html`<td>${name}</td>` escapes `name`; arrays and raw() pass through. */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => {
    out += piece(value) + strings[i + 1];
  });
  return raw(out);
}

export const DASH = "\u2014";
export const MINUS = "\u2212";

/** NPS as shown everywhere: signed, one decimal, a real minus sign. */
export function nps(value) {
  if (value === null || value === undefined) return DASH;
  const rounded = (Math.sign(value) * Math.round(Math.abs(value) * 10)) / 10; // half away from 0
  const text = Math.abs(rounded).toFixed(1);
  if (rounded > 0) return `+${text}`;
  if (rounded < 0) return `${MINUS}${text}`;
  return text;
}

export function interval(ci) {
  if (!ci) return DASH;
  return `${nps(ci[0])} to ${nps(ci[1])}`;
}

export function percent(ratio, digits = 0) {
  if (ratio === null || ratio === undefined) return DASH;
  return `${(ratio * 100).toFixed(digits)}%`;
}

export function count(value) {
  if (value === null || value === undefined) return DASH;
  return Number(value).toLocaleString("en");
}

/** "promoter" / "passive" / "detractor" for a 0-10 score (server/nps.py). */
export function category(score) {
  if (score >= 9) return "promoter";
  if (score <= 6) return "detractor";
  return "passive";
}

export const CATEGORY_LABEL = { promoter: "Promoter", passive: "Passive", detractor: "Detractor" };

/** An NPS tone for colour *and* the word next to it. */
export function tone(value) {
  if (value === null || value === undefined) return "none";
  if (value >= 30) return "good";
  if (value >= 0) return "fair";
  return "poor";
}

export function isoTime(ts) {
  if (ts === null || ts === undefined) return "";
  return new Date(ts * 1000).toISOString().replace(".000Z", "Z");
}

/** "2026-11-27 14:03 UTC": operators across sites read one clock. */
export function time(ts) {
  if (ts === null || ts === undefined) return DASH;
  return `${isoTime(ts).slice(0, 16).replace("T", " ")} UTC`;
}

export function ago(ts, now = Date.now() / 1000) {
  if (ts === null || ts === undefined) return "never";
  const s = Math.max(0, now - ts);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function humanize(key) {
  if (key === null || key === undefined || key === "") return "(none)";
  return String(key).replace(/_/g, " ");
}

/** The headline figure's label says what it covers: "Fleet NPS", or "NPS · site store-3". */
export function scopeLabel(filters = {}) {
  const parts = [];
  if (filters.site) parts.push(`site ${filters.site}`);
  if (filters.fw) parts.push(`firmware ${filters.fw}`);
  if (filters.trigger) parts.push(`trigger ${humanize(filters.trigger)}`);
  return parts.length ? `NPS · ${parts.join(" · ")}` : "Fleet NPS";
}
