// How a device's health reads in words, next to its number (never colour alone).
// The bands mirror the server's (server/ingest/health.py), so the fleet table and the
// health drivers page use the same words.

import { DASH, count, html } from "../format.js";

export function rssiWord(rssi) {
  if (rssi === null || rssi === undefined) return "";
  if (rssi >= -60) return "strong";
  if (rssi >= -75) return "ok";
  return "weak";
}

export function batteryWord(mv) {
  if (mv === null || mv === undefined) return "";
  if (mv >= 3700) return "good";
  if (mv >= 3400) return "low";
  return "critical";
}

export function rssiCell(rssi) {
  if (rssi === null || rssi === undefined) return DASH;
  const word = rssiWord(rssi);
  return html`${rssi} dBm <span class="${word === "weak" ? "warn" : "muted"}">(${word})</span>`;
}

export function batteryCell(mv) {
  if (mv === null || mv === undefined) return DASH;
  const word = batteryWord(mv);
  return html`${count(mv)} mV <span class="${word === "good" ? "muted" : "warn"}">(${word})</span>`;
}

export function statusCell(online) {
  if (online === null || online === undefined) return html`<span class="muted">unknown</span>`;
  return online ? html`<span class="status-online">Online</span>` : html`<span class="status-offline">Offline</span>`;
}
