"""Prometheus metrics of one gateway process, on their own registry and small HTTP port."""

from __future__ import annotations

import time
from collections import Counter as Counter_
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from gateway.policy import THROTTLED

if TYPE_CHECKING:
    from gateway.policy import Event, Presence, Rejected
    from gateway.store import PutResult, Stats


def _throttled(item: object) -> bool:
    return getattr(item, "reason", None) == THROTTLED


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received_total = Counter(
            "nps_gateway_received", "MQTT messages received, by topic kind", ["kind"], registry=r
        )
        self.committed = Counter(
            "nps_gateway_committed", "Events newly committed to the store", registry=r
        )
        self.forwarded = Counter(
            "nps_gateway_forwarded",
            "Events the server confirmed (accepted or duplicate) and the store deleted",
            registry=r,
        )
        self.duplicates = Counter(
            "nps_gateway_duplicates",
            "Duplicates: 'received' = already in the store, 'server' = the server had it",
            ["where"],
            registry=r,
        )
        self.dropped = Counter(
            "nps_gateway_dropped",
            "Events dropped by the store policy, by reason",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "nps_gateway_dead_letters",
            "Messages put in the dead-letter table: 'edge' = invalid at the gateway,"
            " 'server' = rejected by the server",
            ["source"],
            registry=r,
        )
        self.throttled = Counter(
            "nps_gateway_throttled",
            "Messages over their device's rate, kept as dead letters (reason 'throttled')",
            ["device"],
            registry=r,
        )
        self.throttled_devices = Gauge(
            "nps_gateway_throttled_devices",
            "Devices whose last message was over their rate (flagged as flooding)",
            registry=r,
        )
        self.internal_errors = Counter(
            "nps_gateway_internal_errors",
            "Messages whose judging raised an unexpected error, dead-lettered as"
            " 'internal: <type>' (a bug to report)",
            ["error"],
            registry=r,
        )
        self.implausible_ts = Counter(
            "nps_gateway_implausible_ts",
            "Events forwarded whose ts is outside the plausible window (before 2020 or"
            " more than a day ahead of receipt)",
            registry=r,
        )
        self.forward_latency = Histogram(
            "nps_gateway_forward_latency_seconds",
            "Duration of one ingest request to the server",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.forward_in_flight = Gauge(
            "nps_gateway_forward_in_flight",
            "Ingest requests waiting for the server's answer now (at most forward_lanes)",
            registry=r,
        )
        self.forward_errors = Counter(
            "nps_gateway_forward_errors", "Failed ingest attempts, by cause", ["cause"], registry=r
        )
        self.commit_batch = Histogram(
            "nps_gateway_commit_batch_messages",
            "Messages committed per store transaction (group commit)",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "nps_gateway_commit_seconds",
            "Duration of one store commit, fsync included (the added latency before PUBACK)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.store_errors = Counter(
            "nps_gateway_store_errors",
            "Store operations that failed (disk full, I/O error) and were retried",
            registry=r,
        )
        self.queue_depth = Gauge("nps_gateway_queue_depth", "Events in the store", registry=r)
        self.queue_bytes = Gauge(
            "nps_gateway_queue_bytes", "Bytes of events in the store", registry=r
        )
        self.oldest_age = Gauge(
            "nps_gateway_oldest_event_age_seconds", "Age of the oldest stored event", registry=r
        )
        self.dead_letter_rows = Gauge(
            "nps_gateway_dead_letter_rows", "Rows in the dead-letter table", registry=r
        )
        self.halted = Gauge(
            "nps_gateway_forwarding_halted",
            "1 when forwarding stopped on a configuration error (e.g. 401 wrong token)",
            registry=r,
        )
        self.broker_connected = Gauge(
            "nps_gateway_broker_connected", "1 while connected to the MQTT broker", registry=r
        )

    def received(
        self,
        batch: Sequence[Any],
        items: Sequence[Event | Presence | Rejected],
        result: PutResult,
    ) -> None:
        kinds = Counter_(m.topic.rsplit("/", 1)[-1] for m in batch)
        for kind, n in kinds.items():
            self.received_total.labels(kind).inc(n)
        self.committed.inc(result.committed)
        if result.duplicates:
            self.duplicates.labels("received").inc(result.duplicates)
        if result.dead_letters:
            self.dead_letters.labels("edge").inc(result.dead_letters)
        if result.throttled:
            self.dead_letters.labels("throttle").inc(result.throttled)
            devices = Counter_(getattr(i, "device", None) for i in items if _throttled(i))
            for device, n in devices.items():
                self.throttled.labels(device or "").inc(n)
        if result.implausible_ts:
            self.implausible_ts.inc(result.implausible_ts)
        for reason, n in result.dropped.items():
            self.dropped.labels(reason).inc(n)

    def flag_throttled(self, devices: int) -> None:
        self.throttled_devices.set(devices)

    def observe_store(self, stats: Stats, now: float | None = None) -> None:
        self.queue_depth.set(stats.depth)
        self.queue_bytes.set(stats.bytes)
        self.oldest_age.set(stats.oldest_age(time.time() if now is None else now))
        self.dead_letter_rows.set(stats.dead_letters)

    def serve(self, port: int, host: str = "0.0.0.0") -> Callable[[], None]:
        """Start the /metrics endpoint; returns a function that stops it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            thread.join(timeout=5)

        return stop
