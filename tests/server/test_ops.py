"""/healthz, /metrics (rejections counted by field), JSON errors everywhere."""

from __future__ import annotations

from typing import Any, cast

from tests.server.factory import Api, feedback


def _counter(text: str, series: str) -> float:
    """The value of one series in Prometheus text format (0 before its first increment)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_healthz_and_metrics_count_rejections_by_field(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    label = 'nps_edge_ingest_rejected_total{reason="score"}'
    before = _counter(api.client.get("/metrics").text, label)
    bad = cast(Any, "7")  # a string score on purpose: the server must reject it
    api.ingest([feedback(seq=1, score=True), feedback(seq=2, score=bad), feedback(seq=3)])
    after = _counter(api.client.get("/metrics").text, label)
    assert after - before == 2


def test_errors_are_json_with_a_message(api: Api) -> None:
    c = api.client
    assert c.get("/api/v1/nps").json()["detail"].startswith("missing token")
    op = {"Authorization": f"Bearer {api.tokens['operator']}"}
    r = c.get("/api/v1/nps", params={"group_by": "colour"}, headers=op)
    assert r.status_code == 422 and "group_by" in r.json()["detail"]
    r = c.get("/api/v1/feedback", params={"limit": 0}, headers=op)
    assert r.status_code == 422 and "limit" in r.json()["detail"]
    r = c.put("/api/v1/nps", headers=op)
    assert r.status_code == 405 and "PUT" in r.json()["detail"]
    assert "no such endpoint" in c.get("/api/v2/nps").json()["detail"]


def test_an_unreachable_database_is_503_so_gateways_retry(api: Api) -> None:
    from nps_edge.broker import free_port
    from server.db.engine import make_engine

    app = api.client.app
    good = app.state.engine  # type: ignore[attr-defined]
    app.state.engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")  # type: ignore[attr-defined]
    try:
        r = api.client.post(
            "/api/v1/ingest",
            json={"gateway": "gw-1", "events": [feedback(seq=1)]},
            headers={"Authorization": f"Bearer {api.tokens['gateway']}"},
        )
        assert r.status_code == 503 and "retry" in r.json()["detail"]
        assert api.client.get("/healthz").status_code == 503
    finally:
        app.state.engine.dispose()  # type: ignore[attr-defined]
        app.state.engine = good  # type: ignore[attr-defined]
