"""Closing the loop: detractor and threshold alerts, the workflow, webhooks, the stream."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from nps_edge.processes import wait_until
from server.alerts import store as alerting
from server.alerts.store import check_offline
from server.alerts.watch import check_once
from server.alerts.webhooks import HEADER, sign
from server.app import create_app
from server.db.engine import write_session
from server.identity.tokens import create_token
from server.ingest.prepare import prepare
from server.ingest.validation import validate
from server.realtime.bus import Bus
from server.settings import Settings
from tests.server.factory import T0, Api, feedback, telemetry
from tests.server.live import Receiver, serve, sse_events


def test_every_detractor_opens_an_alert_with_trigger_reason_and_health(api: Api) -> None:
    api.ingest(
        [
            feedback(seq=1, score=6, reason="slow", kind="service_visit", rssi=-80),
            feedback(seq=2, score=7),
            feedback(seq=3, score=0),
        ]
    )
    out = api.get("/api/v1/alerts")
    assert out["counts"] == {"open": 2, "acknowledged": 0, "closed": 0}
    newest, oldest = out["items"]
    assert (oldest["kind"], oldest["feedback_id"]) == ("detractor", "nps-aaa111:1")
    assert oldest["detail"]["trigger"] == {"kind": "service_visit", "ref": None}
    assert oldest["detail"]["reason"] == "slow"
    assert oldest["detail"]["health"]["rssi_band"] == "weak"
    assert oldest["detail"]["health"]["health"] == "degraded"
    assert newest["feedback_id"] == "nps-aaa111:3"


def test_workflow_ack_assign_comment_close(api: Api) -> None:
    api.ingest([feedback(seq=1, score=2)])
    [alert] = api.get("/api/v1/alerts")["items"]
    aid = alert["id"]
    assert api.post(f"/api/v1/alerts/{aid}/ack")["status"] == "acknowledged"
    assert api.post(f"/api/v1/alerts/{aid}/assign", {"assignee": "bob"})["assignee"] == "bob"
    commented = api.post(f"/api/v1/alerts/{aid}/comment", {"text": "called the site"})
    assert [(c["author"], c["text"]) for c in commented["comments"]] == [
        ("alice", "called the site")
    ]
    closed = api.post(f"/api/v1/alerts/{aid}/close", {"note": "fixed", "action": "new sensor"})
    assert closed["status"] == "closed" and len(closed["comments"]) == 1  # the note is no comment
    assert (closed["close_note"], closed["close_action"], closed["closed_by"]) == (
        "fixed",
        "new sensor",
        "alice",
    )
    assert api.get("/api/v1/alerts", status="closed")["items"][0]["id"] == aid
    assert api.get("/api/v1/alerts")["counts"] == {"open": 0, "acknowledged": 0, "closed": 1}
    r = api.client.post(
        "/api/v1/alerts/999999/ack", headers={"Authorization": f"Bearer {api.tokens['operator']}"}
    )
    assert r.status_code == 404 and "999999" in r.json()["detail"]


def test_threshold_alerts_site_nps_and_battery(api: Api) -> None:
    # settings fixture: site NPS below -50 over the last 5 answers opens one alert.
    api.ingest(
        [feedback(seq=i, score=8) for i in range(1, 5)] + [telemetry(seq=9, battery_mv=3100)]
    )
    assert api.get("/api/v1/alerts", kind="site_nps")["items"] == []
    api.ingest([feedback(seq=i, score=1) for i in range(10, 14)])
    [site] = api.get("/api/v1/alerts", kind="site_nps")["items"]
    assert site["site"] == "store-1" and site["detail"]["nps"] == -80.0
    api.ingest([feedback(seq=20, score=0)])
    assert len(api.get("/api/v1/alerts", kind="site_nps")["items"]) == 1  # one at a time
    [battery] = api.get("/api/v1/alerts", kind="battery")["items"]
    assert battery["device"] == "nps-aaa111" and battery["detail"]["battery_mv"] == 3100


def test_relationship_answers_never_move_the_sites_transaction_nps(api: Api) -> None:
    # Five unhappy sponsors (relationship survey) and four happy transactions: the
    # site's rolling NPS is its transactions' (+100), so no site case opens; each
    # sponsor's answer is still a relationship detractor to call back.
    rel = dict(survey="relationship", role="sponsor", kind="relationship")
    api.ingest([feedback(seq=i, score=2, **rel) for i in range(1, 6)])  # type: ignore[arg-type]
    api.ingest([feedback(seq=i, score=10) for i in range(6, 10)])
    assert api.get("/api/v1/alerts", kind="site_nps")["items"] == []
    [alert] = api.get("/api/v1/alerts", kind="detractor")["items"]
    assert alert["title"] == "5 relationship detractors at nps-aaa111"
    assert (alert["detail"]["survey"], alert["detail"]["role"]) == ("relationship", "sponsor")
    # The same unhappy scores as transactions do open the site case.
    api.ingest([feedback(seq=i, score=2) for i in range(10, 15)])
    [site] = api.get("/api/v1/alerts", kind="site_nps")["items"]
    assert site["detail"]["nps"] == -100.0


def test_a_battery_alert_opens_again_only_once_the_last_one_is_closed(api: Api) -> None:
    def battery_alerts() -> list[tuple[int, str]]:
        items = api.get("/api/v1/alerts", kind="battery", status="all")["items"]
        return sorted((a["detail"]["battery_mv"], a["status"]) for a in items)

    api.ingest([telemetry(seq=1, battery_mv=3100)])
    api.ingest([telemetry(seq=2, battery_mv=3050)])  # still low: the open one stands
    [first] = api.get("/api/v1/alerts", kind="battery")["items"]
    api.post(f"/api/v1/alerts/{first['id']}/ack")
    api.ingest([telemetry(seq=3, battery_mv=3000)])  # acknowledged is still active
    assert battery_alerts() == [(3100, "acknowledged")]
    api.post(f"/api/v1/alerts/{first['id']}/close", {"note": "battery replaced"})
    api.ingest([telemetry(seq=4, battery_mv=2990)])
    assert battery_alerts() == [(2990, "open"), (3100, "closed")]


def test_offline_longer_than_threshold_opens_one_alert(
    api: Api, engine: Engine, settings: Settings
) -> None:
    api.ingest([feedback(seq=1, ts=T0, rx_ts=T0)])
    bus = Bus()
    assert check_once(engine, bus, settings, now=T0 + settings.offline_alert_s - 1) == 0
    assert check_once(engine, bus, settings, now=T0 + settings.offline_alert_s + 60) == 1
    assert check_once(engine, bus, settings, now=T0 + settings.offline_alert_s + 120) == 0
    [alert] = api.get("/api/v1/alerts", kind="offline")["items"]
    assert alert["device"] == "nps-aaa111"


def test_a_batch_worked_out_before_another_stored_its_alert_does_not_open_it_again(
    api: Api, engine: Engine, settings: Settings
) -> None:
    """A SQLite worker works its batch out before its write turn: meanwhile another
    worker may open the same threshold alert. Its write then opens none."""
    good, _, _ = validate([telemetry(seq=1, battery_mv=3000)])
    with Session(engine) as snapshot:
        plan = prepare(snapshot, good, gateway="gw-1", settings=settings, now=T0)
    assert [a["kind"] for a in plan.alerts] == ["battery"]
    api.ingest([telemetry(seq=2, battery_mv=2990)])  # the other worker
    with write_session(engine) as session:
        assert alerting.insert(session, plan.alerts) == []
        session.commit()
    [battery] = api.get("/api/v1/alerts", kind="battery")["items"]
    assert battery["detail"]["battery_mv"] == 2990


def test_two_writers_open_one_threshold_alert_per_scope(
    api: Api, engine: Engine, settings: Settings
) -> None:
    """Two workers' offline watches at once: the second waits for the first to commit,
    then sees its alert active and opens none."""
    api.ingest([feedback(seq=1, ts=T0, rx_ts=T0)])
    now = T0 + settings.offline_alert_s + 60
    first_holds, second_done = threading.Event(), threading.Event()
    got: dict[str, Any] = {}

    def first() -> None:
        with write_session(engine) as session:
            got["first"] = check_offline(session, settings=settings, now=now)
            first_holds.set()
            got["second_waited"] = not second_done.wait(0.5)  # this one not committed yet
            session.commit()

    def second() -> None:
        first_holds.wait(10)
        with write_session(engine) as session:
            got["second"] = check_offline(session, settings=settings, now=now + 1)
            session.commit()
        second_done.set()

    threads = [threading.Thread(target=f) for f in (first, second)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert [a["device"] for a in got["first"]] == ["nps-aaa111"]
    assert got["second_waited"] and got["second"] == []
    assert len(api.get("/api/v1/alerts", kind="offline")["items"]) == 1


def test_session_cookie_login_and_logout(api: Api) -> None:
    c = api.client
    assert c.post("/api/v1/session", json={"token": api.tokens["gateway"]}).status_code == 401
    r = c.post("/api/v1/session", json={"token": api.tokens["operator"]})
    assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
    assert c.get("/api/v1/session").json() == {"name": "alice", "role": "operator", "site": None}
    assert c.get("/api/v1/nps").status_code == 200
    assert c.delete("/api/v1/session", headers={"Origin": "http://testserver"}).status_code == 200
    c.cookies.clear()
    assert c.get("/api/v1/session").status_code == 401


@pytest.mark.slow
def test_webhook_signed_retried_and_logged(db_url: str, engine: Engine) -> None:
    with Receiver(fail_first=2) as hook:
        settings = Settings(
            db=db_url, webhook_urls=[hook.url], webhook_secret="s3cret", webhook_backoff_s=0.01
        )
        app = create_app(settings, engine=engine)
        with Session(engine) as s:
            gw = create_token(s, name="gw-1", role="gateway", site="store-1")
            op = create_token(s, name="op", role="admin")  # the log shows webhook URLs
        with TestClient(app) as client:
            client.post(
                "/api/v1/ingest", json={"gateway": "gw-1", "events": [feedback(seq=1, score=3)]},
                headers={"Authorization": f"Bearer {gw}"},
            )  # fmt: skip
            wait_until(
                lambda: len(hook.requests) == 3, what="three webhook attempts", interval=0.01
            )
            headers, body = hook.requests[-1]
            assert headers[HEADER] == sign(body, "s3cret")
            assert json.loads(body)["feedback_id"] == "nps-aaa111:1"

            def logged() -> list[dict[str, object]]:
                return client.get(
                    "/api/v1/webhooks/deliveries", headers={"Authorization": f"Bearer {op}"}
                ).json()["items"]

            wait_until(lambda: len(logged()) == 3, what="three logged attempts", interval=0.01)
            log = logged()
            assert [(d["attempt"], d["status_code"], d["delivered"]) for d in reversed(log)] == [
                (1, 503, False), (2, 503, False), (3, 204, True),
            ]  # fmt: skip


@pytest.mark.slow
def test_stream_sends_new_feedback_and_alerts(app: object, tokens: dict[str, str]) -> None:
    with serve(app) as base:  # type: ignore[arg-type]
        op = {"Authorization": f"Bearer {tokens['operator']}"}
        with httpx.stream("GET", f"{base}/api/v1/stream", headers=op, timeout=10) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            assert next(lines) == ": connected"
            batch = {"gateway": "gw-1", "events": [feedback(seq=1, score=4)]}
            gw = {"Authorization": f"Bearer {tokens['gateway']}"}
            httpx.post(f"{base}/api/v1/ingest", json=batch, headers=gw)
            events = sse_events(lines, 2)
        assert [k for k, _ in events] == ["feedback", "alert"]
        assert events[0][1]["id"] == "nps-aaa111:1" and events[0][1]["category"] == "detractor"
        assert events[1][1]["kind"] == "detractor"
