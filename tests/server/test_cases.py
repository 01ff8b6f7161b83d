"""Cases (issue 16): bulk steps, filters, paging, urgency, routing, the response clock and
its escalation, the close's own fields and report, live titles, and the attacks."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from nps_edge.processes import wait_until
from server.alerts.routing import add_rule
from server.alerts.watch import check_once, escalate_once
from server.app import create_app
from server.identity.tokens import create_token
from server.realtime.bus import Bus
from server.settings import Settings
from tests.server.factory import T0, Api, feedback, telemetry
from tests.server.live import Receiver

ORIGIN = {"Origin": "http://testserver"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cases_of(api: Api, **params: Any) -> dict[str, Any]:
    return api.get("/api/v1/alerts", **params)  # type: ignore[no-any-return]


def three_cases(api: Api) -> dict[str, int]:
    """Detractor cases: two devices of store-1, one of store-2 (different trigger kinds)."""
    api.ingest(
        [
            feedback("nps-aaa111", 1, 2),
            feedback("nps-aaa111", 2, 3, kind="service_visit"),
            feedback("nps-bbb222", 1, 0),
        ]
    )
    api.ingest([feedback("nps-ccc333", 1, 1, site="store-2")])
    items = cases_of(api, status="all", limit=10)["items"]
    return {f"{a['device']} {a['detail']['trigger']['kind']}": a["id"] for a in items}


def test_bulk_acknowledge_assign_close_with_note_and_action_and_filters(api: Api) -> None:
    ids = three_cases(api)
    assert len(ids) == 4
    store1 = sorted(i for key, i in ids.items() if "ccc333" not in key)
    done = api.post("/api/v1/alerts/bulk", {"ids": store1[:2], "action": "ack"})
    assert [(c["id"], c["status"]) for c in done] == [
        (store1[0], "acknowledged"),
        (store1[1], "acknowledged"),
    ]
    assert all(c["first_response_at"] is not None for c in done)
    page = cases_of(api, status="acknowledged")
    assert page["total"] == 2 and page["counts"]["open"] == 2
    api.post("/api/v1/alerts/bulk", {"ids": store1, "action": "assign", "assignee": "maria"})
    assert cases_of(api, status="all", owner="maria")["total"] == 3
    assert [c["site"] for c in cases_of(api, status="all", owner="none")["items"]] == ["store-2"]
    assert cases_of(api, status="all", site="store-2")["total"] == 1
    assert cases_of(api, status="active", kind="detractor")["total"] == 4
    closed = api.post(
        "/api/v1/alerts/bulk",
        {"ids": store1[:2], "action": "close", "note": "door fixed", "action_taken": "new door"},
    )
    assert {(c["status"], c["close_note"], c["close_action"], c["closed_by"]) for c in closed} == {
        ("closed", "door fixed", "new door", "alice")
    }
    assert all(c["comments"] == [] for c in closed)  # the note is no comment
    report = api.get("/api/v1/alerts/report")
    assert report["actions"] == {"new door": 2}
    assert {c["id"] for c in report["closed"]} == set(store1[:2])
    assert all(c["close_s"] >= c["first_response_s"] >= 0 for c in report["closed"])
    # Reopening clears the close.
    [reopened] = api.post("/api/v1/alerts/bulk", {"ids": [store1[0]], "action": "reopen"})
    assert (reopened["status"], reopened["closed_at"]) == ("open", None)


def test_paging_beyond_100(api: Api) -> None:
    api.ingest([feedback(f"nps-{i:06d}", 1, 0) for i in range(130)])
    first = cases_of(api, limit=100, kind="detractor")
    second = cases_of(api, limit=100, offset=100, kind="detractor")
    assert (first["total"], len(first["items"]), len(second["items"])) == (130, 100, 30)
    assert not {c["id"] for c in first["items"]} & {c["id"] for c in second["items"]}


def test_urgency_puts_the_site_case_first_then_overdue_cases(
    api: Api, engine: Engine, settings: Settings
) -> None:
    """Answers of T0 (long ago): their cases started then and are overdue; the site's
    NPS case (5 detractors, threshold -50) started at its raise, now, and still leads."""
    api.ingest([feedback(f"nps-aaa11{i}", 1, 0) for i in range(5)])
    api.ingest([telemetry("nps-bbb222", 1, battery_mv=3000)])
    page = cases_of(api, sort="urgency")
    kinds = [(c["kind"], c["overdue"]) for c in page["items"]]
    assert kinds[0] == ("site_nps", False)
    assert kinds[1:6] == [("detractor", True)] * 5 and kinds[6] == ("battery", False)
    assert page["overdue"] == 5 and cases_of(api, status="overdue")["total"] == 5
    assert page["items"][1]["answered_at"] == T0  # the card shows when the customer answered
    # The watch escalates each overdue case once.
    assert escalate_once(engine, Bus(), None, settings) == 5
    assert escalate_once(engine, Bus(), None, settings) == 0
    escalated = [c for c in cases_of(api)["items"] if c["escalated_at"] is not None]
    assert len(escalated) == 5
    # A first response ends the overdue state (the clock stopped in time or not).
    api.post(f"/api/v1/alerts/{escalated[0]['id']}/comment", {"text": "calling back"})
    assert cases_of(api, status="overdue")["total"] == 4
    # Age filters go by the case's start (the answer's time).
    assert cases_of(api, min_age_h=24)["total"] == 5
    assert cases_of(api, max_age_h=1, kind="site_nps")["total"] == 1


def test_site_case_title_follows_its_current_value(api: Api) -> None:
    api.ingest([feedback("nps-aaa111", i, 0, ts=T0 + i) for i in range(1, 6)])
    [case] = cases_of(api, kind="site_nps")["items"]
    assert "is -100.0 over its last 5" in case["title"]
    api.ingest([feedback("nps-aaa111", 6, 10, ts=T0 + 6)])
    [case] = cases_of(api, kind="site_nps")["items"]
    assert "is -60.0 over its last 5" in case["title"]  # 1 promoter, 4 detractors
    assert case["detail"]["opened"]["nps"] == -100.0
    api.ingest([feedback("nps-aaa111", i, 10, ts=T0 + i) for i in range(7, 11)])
    [case] = cases_of(api, kind="site_nps", status="all")["items"]
    assert "is 100.0" in case["title"] and "back above it" in case["title"]


def test_offline_case_reads_the_real_duration(api: Api, engine: Engine, settings: Settings) -> None:
    api.ingest([feedback(seq=1, ts=T0, rx_ts=T0)])
    assert check_once(engine, Bus(), settings, now=T0 + settings.offline_alert_s + 60) == 1
    [case] = cases_of(api, kind="offline")["items"]
    days = (time.time() - T0) / 86400
    assert case["title"] == f"nps-aaa111 at store-1 offline for {days:.1f} days"


def test_routing_rules_give_new_cases_an_owner(api: Api, engine: Engine) -> None:
    with Session(engine) as s:
        add_rule(s, assignee="triage")
        add_rule(s, assignee="maria", site="store-1", kind="detractor")
        add_rule(s, assignee="sam", site="store-1")
    api.ingest([feedback("nps-aaa111", 1, 0), telemetry("nps-aaa111", 2, battery_mv=3000)])
    api.ingest([feedback("nps-ccc333", 1, 0, site="store-2")])
    owners = {(c["site"], c["kind"]): c["assignee"] for c in cases_of(api)["items"]}
    assert owners == {
        ("store-1", "detractor"): "maria",
        ("store-1", "battery"): "sam",
        ("store-2", "detractor"): "triage",
    }


def test_attacks_viewer_bulk_close_other_site_and_hostile_bytes(api: Api, engine: Engine) -> None:
    ids = three_cases(api)
    other = ids["nps-ccc333 cycle_complete"]
    mine = ids["nps-aaa111 cycle_complete"]
    with Session(engine) as s:
        viewer = create_token(s, name="vera", role="viewer")
        olly = create_token(s, name="olly", role="operator", site="store-1")
        admin1 = create_token(s, name="al", role="admin", site="store-1")
    c = api.client

    def bulk(token: str, body: Any) -> Any:
        return c.post("/api/v1/alerts/bulk", json=body, headers=bearer(token) | ORIGIN)

    r = bulk(viewer, {"ids": [mine], "action": "close", "note": "x"})
    assert r.status_code == 403 and "a viewer cannot do this" in r.json()["detail"]
    # A site-bound operator: one case of another site refuses the whole step.
    r = bulk(olly, {"ids": [mine, other], "action": "close", "note": "x"})
    assert r.status_code == 403 and f"case {other}" in r.json()["detail"]
    assert {c["status"] for c in cases_of(api, status="all")["items"]} == {"open"}
    assert bulk(olly, {"ids": [mine], "action": "ack"}).status_code == 200
    r = c.get("/api/v1/alerts", params={"site": "store-2"}, headers=bearer(olly))
    assert r.status_code == 403
    assert c.get(f"/api/v1/alerts/{other}", headers=bearer(olly)).status_code == 403
    r = c.post("/api/v1/routing", json={"assignee": "x"}, headers=bearer(admin1) | ORIGIN)
    assert r.status_code == 403  # a site-bound admin cannot route every site's cases
    op = api.tokens["operator"]
    for body, status in (
        ({"ids": [], "action": "ack"}, 422),
        ({"ids": list(range(1, 502)), "action": "ack"}, 422),
        ({"ids": [2**40], "action": "ack"}, 404),
        ({"ids": [10**9], "action": "ack"}, 404),
        ({"ids": [mine], "action": "explode"}, 422),
        ({"ids": [mine], "action": "assign"}, 422),
        ({"ids": [mine], "action": "close", "note": "a\x00b"}, 422),
        ({"ids": [mine], "action": "close", "action_taken": "x" * 201}, 422),
        ({"ids": ["1; DROP TABLE alert"], "action": "ack"}, 422),
    ):
        r = bulk(op, body)
        assert r.status_code == status, (body, r.text)
    for params in ({"sort": "random"}, {"offset": -1}, {"min_age_h": "nan"}, {"status": "x"}):
        assert c.get("/api/v1/alerts", params=params, headers=bearer(op)).status_code == 422
    r = c.get("/api/v1/alerts", params={"owner": "\u202e\U0001f4a9' OR 1=1"}, headers=bearer(op))
    assert r.status_code == 200 and r.json()["total"] == 0


@pytest.mark.slow
def test_every_state_change_reaches_the_webhooks(db_url: str, engine: Engine) -> None:
    with Receiver() as hook:
        app = create_app(Settings(db=db_url, webhook_urls=[hook.url]), engine=engine)
        with Session(engine) as s:
            gw = create_token(s, name="gw-1", role="gateway", site="store-1")
            op = bearer(create_token(s, name="op", role="operator")) | ORIGIN
        with TestClient(app) as client:
            batch = {"gateway": "gw-1", "events": [feedback(seq=1, score=3)]}
            client.post("/api/v1/ingest", json=batch, headers=bearer(gw))
            wait_until(lambda: len(hook.requests) == 1, what="the new case's webhook")
            aid = hook.bodies()[0]["id"]
            client.post(f"/api/v1/alerts/{aid}/ack", headers=op)
            client.post(f"/api/v1/alerts/{aid}/assign", json={"assignee": "maria"}, headers=op)
            client.post(f"/api/v1/alerts/{aid}/close", json={"action": "reset"}, headers=op)
            wait_until(lambda: len(hook.requests) == 4, what="three changes' webhooks")
    told = [(b["event"], b["by"], b["status"]) for b in hook.bodies()]
    assert told == [
        ("opened", None, "open"),
        ("acknowledged", "op", "acknowledged"),
        ("assigned", "op", "acknowledged"),
        ("closed", "op", "closed"),
    ]
    assert hook.bodies()[-1]["close_action"] == "reset"
