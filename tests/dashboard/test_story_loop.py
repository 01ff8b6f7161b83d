"""The demo's inbox (issue 16): the demo's month of history, worked by `story_loop`, leaves
a handful of cases, store-3's site case on top (in-process server, SQLite)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from nps_edge import story_loop
from nps_edge.story import Story, generate, scenario_events
from nps_edge.story_loop import ACTIONS, plan, work_the_month
from server.app import create_app
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token
from server.settings import Settings


def test_plan_works_oldest_first_and_keeps_site_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(story_loop, "STILL_OPEN", 1)
    now = 1_000_000.0
    cases = [
        {
            "id": 1,
            "kind": "detractor",
            "site": "store-3",
            "assignee": None,
            "created_at": now,
            "answered_at": now - 3 * 86400,
            "detail": {"trigger": {"kind": "service_visit"}},
        },
        {
            "id": 2,
            "kind": "detractor",
            "site": "store-1",
            "assignee": None,
            "created_at": now,
            "answered_at": now - 600,
            "detail": {"trigger": {"kind": "walkup"}},
        },
        {
            "id": 3,
            "kind": "site_nps",
            "site": "store-3",
            "assignee": None,
            "created_at": now - 9 * 86400,
            "detail": {},
        },
    ]
    action, note = ACTIONS["service_visit"]
    assert plan(cases) == [
        {"ids": [1], "action": "close", "action_taken": action, "note": note},
        {"ids": [2], "action": "assign", "assignee": "maria@demo.example"},
        {"ids": [3], "action": "assign", "assignee": "sam@demo.example"},
    ]


def test_the_demo_inbox_opens_with_a_handful_of_cases_store_3_on_top(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = make_engine(url)
    upgrade(engine)
    now = time.time()
    story = Story(
        end=now,
        days=30,
        seed=1,
        sites=3,
        devices_per_site=4,
        prompts_per_day=14.0,
        telemetry_minutes=(60.0, 90.0),
    )  # the demo's (nps_edge/demo.py)
    events = sorted(
        (e for s in generate(story) for e in scenario_events(s)), key=lambda e: e["rx_ts"]
    )
    with Session(engine) as s:
        admin = create_token(s, name="demo-loop", role="admin")
        gateways = {
            site: create_token(s, name=f"gw-{site}", role="gateway", site=site)
            for site in sorted({e["site"] for e in events})
        }
    app = create_app(Settings(db=url), engine=engine)
    with TestClient(
        app, base_url="http://testserver/api/v1", headers={"Authorization": f"Bearer {admin}"}
    ) as api:
        for site, token in gateways.items():
            mine = [e for e in events if e["site"] == site]
            for i in range(0, len(mine), 1000):
                r = api.post(
                    "/ingest",
                    json={"gateway": f"gw-{site}", "events": mine[i : i + 1000]},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200 and not r.json()["rejected"]
        before = api.get("/alerts", params={"status": "active"}).json()["total"]
        left = work_the_month(api)
        inbox = api.get("/alerts", params={"status": "active", "sort": "urgency"}).json()
        report = api.get("/alerts/report").json()
    assert before > 20 and left <= story_loop.STILL_OPEN + 3, (before, left)
    top = inbox["items"][0]
    assert (top["kind"], top["site"], top["assignee"]) == (
        "site_nps",
        "store-3",
        "sam@demo.example",
    )
    assert all(c["assignee"] for c in inbox["items"])
    assert sum(report["actions"].values()) == before - left
    engine.dispose()
