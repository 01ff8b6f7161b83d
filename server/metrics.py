"""Prometheus metrics of the server (served on `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_ACCEPTED = Counter("nps_edge_ingest_accepted_total", "Events stored for the first time")
EVENTS_DUPLICATE = Counter("nps_edge_ingest_duplicates_total", "Events already stored (resent)")
EVENTS_REJECTED = Counter(
    "nps_edge_ingest_rejected_total", "Events rejected, by the field at fault", ["reason"]
)
PRESENCE_IGNORED = Counter(
    "nps_edge_presence_ignored_total",
    "Presence updates ignored: another site's gateway sent them (issue 12)",
    ["reason"],
)
REQUESTS_REFUSED = Counter("nps_edge_requests_refused_total", "Whole requests refused", ["status"])
IMPLAUSIBLE_TS = Counter(
    "nps_edge_implausible_ts_total",
    "Events whose time was outside the plausible window and was rebuilt (docs/server.md)",
    ["field"],
)
INGEST_SECONDS = Histogram("nps_edge_ingest_seconds", "Time to ingest one batch")
WEBHOOK_DELIVERIES = Counter(
    "nps_edge_webhook_deliveries_total", "Webhook delivery attempts", ["result"]
)
RELAY_DROPPED = Counter(
    "nps_edge_stream_relay_dropped_total",
    "Live-stream datagrams to another worker dropped (its queue full)",
)
REQUESTS_FORGED = Counter(
    "nps_edge_requests_forged_total",
    "Writes refused because their Origin or Referer is not this server (CSRF)",
)
LOGINS_FAILED = Counter(
    "nps_edge_login_failures_total", "Dashboard logins refused, by reason", ["reason"]
)
LOGINS_THROTTLED = Counter(
    "nps_edge_login_throttled_total", "Dashboard logins refused with 429 (too many failures)"
)
