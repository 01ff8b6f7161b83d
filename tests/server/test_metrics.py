"""`/metrics`: the app's own registry (issue 13), with the names, types and format
it served from the process's default registry before."""

from __future__ import annotations

from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from sqlalchemy import Engine

from server.app import create_app
from server.settings import Settings
from tests.server.factory import Api, feedback

STRING_SCORE = cast(Any, "7")  # a string score on purpose: rejected, counted by reason

# What `/metrics` served on main (6b2d9ea), from the default registry: the
# server's counters plus the process, platform and garbage-collector collectors.
SERVED = {
    ("python_gc_objects_collected_total", "counter"),
    ("python_gc_objects_uncollectable_total", "counter"),
    ("python_gc_collections_total", "counter"),
    ("python_info", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("nps_edge_ingest_accepted_total", "counter"),
    ("nps_edge_ingest_duplicates_total", "counter"),
    ("nps_edge_ingest_rejected_total", "counter"),
    ("nps_edge_presence_ignored_total", "counter"),
    ("nps_edge_requests_refused_total", "counter"),
    ("nps_edge_implausible_ts_total", "counter"),
    ("nps_edge_ingest_fields_ignored_total", "counter"),
    ("nps_edge_ingest_seconds", "histogram"),
    ("nps_edge_webhook_deliveries_total", "counter"),
    ("nps_edge_stream_relay_dropped_total", "counter"),
    ("nps_edge_requests_forged_total", "counter"),
    ("nps_edge_login_failures_total", "counter"),
    ("nps_edge_login_throttled_total", "counter"),
    ("nps_edge_voice_comments_total", "counter"),
    ("nps_edge_voice_refused_total", "counter"),
    ("nps_edge_mails_total", "counter"),
    ("nps_edge_account_refusals_total", "counter"),
    ("nps_edge_unprompted_ignored_total", "counter"),
}
# Creation times of the unlabelled series (a labelled one's appear with its first child).
CREATED = {
    "nps_edge_ingest_accepted_created",
    "nps_edge_ingest_duplicates_created",
    "nps_edge_ingest_seconds_created",
    "nps_edge_stream_relay_dropped_created",
    "nps_edge_requests_forged_created",
    "nps_edge_login_throttled_created",
}


def test_metrics_serves_the_same_names_types_and_format(api: Api) -> None:
    api.ingest([feedback(seq=1), feedback(seq=2, score=STRING_SCORE)])
    r = api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    typed = {(t[2], t[3]) for t in map(str.split, r.text.splitlines()) if t[:2] == ["#", "TYPE"]}
    assert {(n, k) for n, k in typed if not n.endswith("_created")} == SERVED
    assert {(n, "gauge") for n in CREATED} <= typed
    assert 'nps_edge_ingest_rejected_total{reason="score"} ' in r.text


def test_each_app_counts_in_its_own_registry(api: Api, settings: Settings, engine: Engine) -> None:
    other = create_app(settings, engine=engine)
    api.ingest([feedback(seq=1), feedback(seq=2, score=STRING_SCORE)])
    mine = api.client.app.state.metrics.registry  # type: ignore[attr-defined]
    assert mine.get_sample_value("nps_edge_ingest_accepted_total") == 1.0
    assert mine.get_sample_value("nps_edge_ingest_rejected_total", {"reason": "score"}) == 1.0
    assert other.state.metrics.registry.get_sample_value("nps_edge_ingest_accepted_total") == 0.0
    assert REGISTRY.get_sample_value("nps_edge_ingest_accepted_total") is None
