// How a device's health reads in words, next to its number (never colour alone).
// The bands come from the server (GET /api/v1/bands, whose one table is
// server/ingest/health.py), so the fleet table, the device page and the health
// drivers page use the server's words and thresholds.

import { api } from "../api.js";
import { DASH, MINUS, count, html } from "../format.js";

let loading = null;

/**
 * The server's band table, asked once per page load; pages await it when they render
 * (after login: app.js imports this module before anyone is signed in). Resolves to
 * null when the server cannot say; the cells then show the number without a word.
 */
export function loadBands() {
  loading ??= api("/bands").catch(() => {
    loading = null; // ask again next time
    return null;
  });
  return loading;
}

/** The band `value` falls in, by `reading` (the table's `rssi` or `battery_mv`); "" without either. */
export function bandOf(value, reading) {
  if (value === null || value === undefined || !reading) return "";
  for (const { band, min } of reading.bands) if (min === null || value >= min) return band;
  return "";
}

export function rssiWord(rssi, bands) {
  return bandOf(rssi, bands?.rssi);
}

export function batteryWord(mv, bands) {
  return bandOf(mv, bands?.battery_mv);
}

/** Whether a band makes a device degraded or faulty (the table's health rules). */
export function warns(bands, field, word) {
  return Boolean(bands?.health.some((state) => state[field].includes(word)));
}

function cell(number, word, warn) {
  if (!word) return html`${number}`;
  return html`${number} <span class="${warn ? "warn" : "muted"}">(${word})</span>`;
}

export function rssiCell(rssi, bands) {
  if (rssi === null || rssi === undefined) return DASH;
  const word = rssiWord(rssi, bands);
  return cell(`${rssi} dBm`, word, warns(bands, "rssi_bands", word));
}

export function batteryCell(mv, bands) {
  if (mv === null || mv === undefined) return DASH;
  const word = batteryWord(mv, bands);
  return cell(`${count(mv)} mV`, word, warns(bands, "battery_bands", word));
}

function figure(value) {
  return value < 0 ? `${MINUS}${count(-value)}` : count(value);
}

/** "strong ≥ −60 dBm, ok ≥ −75, weak below": a reading's bands in words. */
export function bandsNote(reading) {
  const parts = reading.bands.map(({ band, min }, i) =>
    min === null ? `${band} below` : `${band} ≥ ${figure(min)}${i === 0 ? ` ${reading.unit}` : ""}`,
  );
  return parts.join(", ");
}

function listed(words) {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

/** "faulty: ≥ 10 errors, ≥ 4 boots started, ≥ 120 min offline or a critical battery": one state's rule. */
export function stateNote(state) {
  const parts = [
    state.errors === 1 ? "any error" : `≥ ${count(state.errors)} errors`,
    `≥ ${count(state.reboots)} boots started`,
    `≥ ${count(state.offline_min)} min offline`,
    ...state.rssi_bands.map((band) => `${band} Wi-Fi`),
    ...state.battery_bands.map((band) => `a ${band} battery`),
  ];
  return `${state.state}: ${listed(parts)}`;
}

export function statusCell(online) {
  if (online === null || online === undefined) return html`<span class="muted">unknown</span>`;
  return online ? html`<span class="status-online">Online</span>` : html`<span class="status-offline">Offline</span>`;
}
