"""A flood cannot bury the inbox: detractors collapse per device and trigger kind.

Issue 12: 50,000 forged detractors opened 50,000 alerts. Now a device's detractors
fold into its one active alert per trigger kind; closing it lets the next open.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from nps_edge.processes import wait_until
from server.app import create_app
from server.identity.tokens import create_token
from server.ingest.batch import ingest_batch
from server.models import Alert
from server.settings import Settings
from tests.server.factory import T0, Api, feedback
from tests.server.live import Receiver


def _detractors(device: str, seqs: range, kind: str = "service_visit") -> list[dict[str, Any]]:
    return [
        feedback(device=device, seq=s, score=s % 7, kind=kind, ts=T0 + s, rx_ts=T0 + s + 1)
        for s in seqs
    ]


def test_a_thousand_detractors_from_one_device_make_one_alert(api: Api) -> None:
    api.ingest(_detractors("nps-aaa111", range(1, 2)))  # opens it
    api.ingest(_detractors("nps-aaa111", range(2, 1001)))  # 999 attached in one batch
    out = api.get("/api/v1/alerts", kind="detractor")
    assert out["counts"]["open"] == 1
    [alert] = out["items"]
    detail = alert["detail"]
    assert detail["count"] == 1000
    assert alert["title"] == "1000 detractors at nps-aaa111 after service_visit"
    assert (detail["first_ts"], detail["last_ts"]) == (T0 + 1, T0 + 1000)
    assert [a["id"] for a in detail["latest"]] == [f"nps-aaa111:{s}" for s in range(991, 1001)]
    assert [a["score"] for a in detail["latest"]] == [s % 7 for s in range(991, 1001)]
    assert alert["feedback_id"] == "nps-aaa111:1"  # the one that opened it


def test_one_alert_per_device_and_trigger_kind(api: Api) -> None:
    api.ingest(
        _detractors("nps-aaa111", range(1, 4))
        + _detractors("nps-bbb222", range(1, 3))
        + _detractors("nps-bbb222", range(3, 5), kind="cycle_complete")
    )
    items = api.get("/api/v1/alerts", kind="detractor")["items"]
    got = sorted((a["device"], a["detail"]["trigger"]["kind"], a["detail"]["count"]) for a in items)
    assert got == [
        ("nps-aaa111", "service_visit", 3),
        ("nps-bbb222", "cycle_complete", 2),
        ("nps-bbb222", "service_visit", 2),
    ]
    one = next(a for a in items if a["device"] == "nps-aaa111")
    assert one["title"] == "3 detractors at nps-aaa111 after service_visit"


def test_a_relationship_detractor_never_folds_into_a_transactions_alert(api: Api) -> None:
    api.ingest(_detractors("nps-aaa111", range(1, 3), kind="relationship"))
    api.ingest([_relationship_answer(3, 1, "end_user")])
    assert _by_survey(api) == [
        ("relationship", 1, "Relationship score 1 from end user at store-1 (nps-aaa111)"),
        ("transactional", 2, "2 detractors at nps-aaa111 after relationship"),
    ]
    # Later answers of each survey fold into that survey's open alert, never the other's.
    api.ingest(
        [_relationship_answer(4, 2, "sponsor")]
        + _detractors("nps-aaa111", range(5, 6), kind="relationship")
    )
    assert _by_survey(api) == [
        ("relationship", 2, "2 relationship detractors at nps-aaa111"),
        ("transactional", 3, "3 detractors at nps-aaa111 after relationship"),
    ]


def _relationship_answer(seq: int, score: int, role: str) -> dict[str, Any]:
    """nps-aaa111's relationship answer `seq`, given at T0 + 2 * seq - 3."""
    at = T0 + 2 * seq - 3
    return feedback(device="nps-aaa111", seq=seq, score=score, kind="relationship",
                    survey="relationship", role=role, ts=at, rx_ts=at + 1)  # fmt: skip


def _by_survey(api: Api) -> list[tuple[str, int, str]]:
    """The detractor alerts as (survey, answers folded, title), sorted."""
    items = api.get("/api/v1/alerts", kind="detractor")["items"]
    return sorted((a["detail"].get("survey"), a["detail"]["count"], a["title"]) for a in items)


def test_closing_it_lets_the_next_detractor_open_a_new_one(api: Api) -> None:
    api.ingest(_detractors("nps-aaa111", range(1, 3)))
    [first] = api.get("/api/v1/alerts", kind="detractor")["items"]
    api.post(f"/api/v1/alerts/{first['id']}/ack")
    api.ingest(_detractors("nps-aaa111", range(3, 4)))  # acknowledged is still active
    assert api.get(f"/api/v1/alerts/{first['id']}")["detail"]["count"] == 3
    api.post(f"/api/v1/alerts/{first['id']}/close")
    api.ingest(_detractors("nps-aaa111", range(4, 6)))
    [second] = api.get("/api/v1/alerts", kind="detractor")["items"]
    assert second["id"] != first["id"]
    assert second["detail"]["count"] == 2 and second["feedback_id"] == "nps-aaa111:4"
    assert api.get(f"/api/v1/alerts/{first['id']}")["detail"]["count"] == 3


def test_two_writers_at_once_open_one_alert(engine: Engine, settings: Settings, api: Api) -> None:
    """The scope lock: two ingesting threads, each 5 batches of 10 detractors of one device."""
    start = threading.Barrier(2)

    def writer(n: int) -> None:
        start.wait()
        for b in range(5):
            first = 1 + n * 50 + b * 10
            ingest_batch(
                engine, gateway="gw-1", events=_detractors("nps-aaa111", range(first, first + 10)),
                settings=settings, site="store-1", now=T0 + 2000,
            )  # fmt: skip

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    [alert] = api.get("/api/v1/alerts", kind="detractor")["items"]
    assert alert["detail"]["count"] == 100


def test_a_webhook_fires_for_the_first_detractor_only(db_url: str, engine: Engine) -> None:
    """Attached answers notify nobody: the next webhook is another device's new alert."""
    with Receiver() as hook:
        settings = Settings(db=db_url, webhook_urls=[hook.url], webhook_backoff_s=0.01)
        app = create_app(settings, engine=engine)
        with Session(engine) as s:
            gw = create_token(s, name="gw", role="gateway", site="store-1")
        with TestClient(app) as client:

            def ingest(events: list[dict[str, Any]]) -> None:
                r = client.post(
                    "/api/v1/ingest", json={"gateway": "gw", "events": events},
                    headers={"Authorization": f"Bearer {gw}"},
                )  # fmt: skip
                assert r.status_code == 200, r.text

            ingest(_detractors("nps-aaa111", range(1, 2)))
            for first in range(2, 200, 50):
                ingest(_detractors("nps-aaa111", range(first, first + 50)))
            ingest(_detractors("nps-bbb222", range(1, 2)))  # deliveries go in order

            def detractors() -> list[dict[str, Any]]:
                sent = (json.loads(body) for _, body in hook.requests)
                return [a for a in sent if a["kind"] == "detractor"]

            wait_until(lambda: len(detractors()) >= 2, what="two webhooks", interval=0.01)
    sent = detractors()  # the site's NPS alert (another kind) is told once too
    assert [(a["device"], a["feedback_id"]) for a in sent] == [
        ("nps-aaa111", "nps-aaa111:1"),
        ("nps-bbb222", "nps-bbb222:1"),
    ]


def test_a_late_older_answer_keeps_times_and_latest_in_order(api: Api) -> None:
    """A gateway's backlog: answers older than the alert's last arrive after it."""
    api.ingest(_detractors("nps-aaa111", range(50, 53)))
    api.ingest(_detractors("nps-aaa111", range(1, 3)))
    [alert] = api.get("/api/v1/alerts", kind="detractor")["items"]
    detail = alert["detail"]
    assert detail["count"] == 5
    assert (detail["first_ts"], detail["last_ts"]) == (T0 + 1, T0 + 52)
    assert [a["id"] for a in detail["latest"]] == [f"nps-aaa111:{s}" for s in (1, 2, 50, 51, 52)]


def test_an_alert_opened_before_the_collapse_counts_as_one(api: Api, engine: Engine) -> None:
    """An upgrade meets active detractor alerts without `count`: each is one answer."""
    api.ingest(_detractors("nps-aaa111", range(1, 2)))
    with Session(engine) as s:  # as the code before this change stored it
        alert = s.exec(select(Alert)).one()
        alert.detail = {k: v for k, v in alert.detail.items()
                        if k not in ("count", "first_ts", "last_ts", "latest")}  # fmt: skip
        s.add(alert)
        s.commit()
    api.ingest(_detractors("nps-aaa111", range(2, 3)))
    [got] = api.get("/api/v1/alerts", kind="detractor")["items"]
    assert got["detail"]["count"] == 2
    assert [a["id"] for a in got["detail"]["latest"]] == ["nps-aaa111:1", "nps-aaa111:2"]


def test_attaching_changes_the_newest_active_alert_of_the_key_and_nothing_else(
    api: Api, engine: Engine
) -> None:
    """The fold writes only detail, title and updated_at (`store._attach_detractors`):
    a closed alert, another trigger kind's, an older active one of the same key and
    every column a person set stay as they were."""
    api.ingest(_detractors("nps-aaa111", range(1, 2)))
    api.ingest(_detractors("nps-aaa111", range(2, 3), kind="walkup"))
    with Session(engine) as s:
        first = s.exec(select(Alert).where(Alert.feedback_id == "nps-aaa111:1")).one()
        first.status, first.closed_at, first.closed_by = "closed", T0 + 10, "ops@example.com"
        s.add(first)
        s.commit()
    api.ingest(_detractors("nps-aaa111", range(3, 4)))  # opens the key's next one
    with Session(engine) as s:
        older = s.exec(select(Alert).where(Alert.feedback_id == "nps-aaa111:3")).one()
        older.status, older.assignee = "acknowledged", "ops@example.com"
        older.first_response_at, older.escalated_at = T0 + 20, T0 + 30
        s.add(older)
        # A second active alert of the same key (one stored before the per-key lock
        # was taken): the newest gets the answers.
        s.add(Alert(**older.model_dump(exclude={"id"}) | {"feedback_id": "nps-aaa111:3b"}))
        s.commit()
    before = _alert_rows(engine)
    newest = max(before)
    api.ingest(_detractors("nps-aaa111", range(4, 6)))
    after = _alert_rows(engine)
    assert sorted(after) == sorted(before)  # no detractor alert opened
    assert {i: r for i, r in after.items() if i != newest} == {
        i: r for i, r in before.items() if i != newest
    }
    changed = {k for k, v in after[newest].items() if before[newest][k] != v}
    assert changed == {"detail", "title", "updated_at"}
    detail = after[newest]["detail"]
    assert (detail["count"], detail["first_ts"], detail["last_ts"]) == (3, T0 + 3, T0 + 5)
    assert [a["id"] for a in detail["latest"]] == ["nps-aaa111:3", "nps-aaa111:4", "nps-aaa111:5"]
    assert after[newest]["title"] == "3 detractors at nps-aaa111 after service_visit"
    assert after[newest]["updated_at"] > before[newest]["updated_at"]


def _alert_rows(engine: Engine) -> dict[int, dict[str, Any]]:
    """The detractor alerts by id (the site's NPS alert may open beside them)."""
    with Session(engine) as s:
        found = s.exec(select(Alert).where(Alert.kind == "detractor"))
        return {a.id: a.model_dump() for a in found if a.id is not None}
