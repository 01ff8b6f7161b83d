"""Prometheus metrics of one server process (served on `/metrics`), on a registry of
their own built with the app (`create_app` keeps it on `app.state.metrics`).

Each uvicorn worker builds its app, so each serves its own counters, as before
with the default registry (no multiprocess mode): Prometheus sees one worker per
scrape. The process, platform and garbage-collector collectors the default
registry carries are registered here too, so `/metrics` serves the same names.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for collector in (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR):
            r.register(collector)
        self.events_accepted = Counter(
            "nps_edge_ingest_accepted_total", "Events stored for the first time", registry=r
        )
        self.events_duplicate = Counter(
            "nps_edge_ingest_duplicates_total", "Events already stored (resent)", registry=r
        )
        self.events_rejected = Counter(
            "nps_edge_ingest_rejected_total",
            "Events rejected, by the field at fault",
            ["reason"],
            registry=r,
        )
        self.presence_ignored = Counter(
            "nps_edge_presence_ignored_total",
            "Presence updates ignored: another site's gateway sent them (issue 12)",
            ["reason"],
            registry=r,
        )
        self.requests_refused = Counter(
            "nps_edge_requests_refused_total", "Whole requests refused", ["status"], registry=r
        )
        self.implausible_ts = Counter(
            "nps_edge_implausible_ts_total",
            "Events whose time was outside the plausible window and was rebuilt (docs/server.md)",
            ["field"],
            registry=r,
        )
        self.fields_ignored = Counter(
            "nps_edge_ingest_fields_ignored_total",
            "Optional fields outside the contract dropped for a value the server cannot keep"
            " (the event is stored without them)",
            ["field"],
            registry=r,
        )
        self.unprompted_ignored = Counter(
            "nps_edge_unprompted_ignored_total",
            "Readings stored whose sampling counters the north star did not count: a total"
            " above one skipped transaction a second of the boot's uptime (docs/programme.md)",
            ["reason"],
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "nps_edge_ingest_seconds", "Time to ingest one batch", registry=r
        )
        self.webhook_deliveries = Counter(
            "nps_edge_webhook_deliveries_total",
            "Webhook delivery attempts",
            ["result"],
            registry=r,
        )
        self.mails = Counter(
            "nps_edge_mails_total",
            "E-mails handed to the SMTP server, by result",
            ["result"],
            registry=r,
        )
        self.account_refusals = Counter(
            "nps_edge_account_refusals_total",
            "Invitation, reset and password requests refused, by reason",
            ["reason"],
            registry=r,
        )
        self.relay_dropped = Counter(
            "nps_edge_stream_relay_dropped_total",
            "Live-stream datagrams to another worker dropped (its queue full)",
            registry=r,
        )
        self.requests_forged = Counter(
            "nps_edge_requests_forged_total",
            "Writes refused because their Origin or Referer is not this server (CSRF)",
            registry=r,
        )
        self.logins_failed = Counter(
            "nps_edge_login_failures_total",
            "Dashboard logins refused, by reason",
            ["reason"],
            registry=r,
        )
        self.logins_throttled = Counter(
            "nps_edge_login_throttled_total",
            "Dashboard logins refused with 429 (too many failures)",
            registry=r,
        )
        self.voice_comments = Counter(
            "nps_edge_voice_comments_total",
            "Comments from the phone page: stored (joined at once), held (answer not here"
            " yet), joined (a held one when its answer arrived), dropped (held past the TTL)",
            ["result"],
            registry=r,
        )
        self.voice_refused = Counter(
            "nps_edge_voice_refused_total",
            "Phone page requests refused, by reason (bad_code, used, expired, invalid,"
            " too_large, throttled)",
            ["reason"],
            registry=r,
        )
