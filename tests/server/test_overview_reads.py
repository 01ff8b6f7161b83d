"""What the overview's calls read: rollups and indexed ranges, never raw feedback across
all time nor, for a transactional figure, the far larger every-survey rollups.

The dashboard's overview must stay fast at 10 M answers (docs/benchmarks.md); these
rules are what keeps it so, checked on the SQL each call sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.server.factory import T0, Api, feedback

DAY = 86400.0
# The overview's calls for all time (server/dashboard/static/pages/overview.js and the
# modules it loads); bench/dashboard_overview.py catches the same from the page.
TRANSACTIONAL = [
    "/api/v1/filters",
    "/api/v1/nps?group_by=day",
    "/api/v1/nps?group_by=trigger",
    "/api/v1/nps?group_by=site",
    "/api/v1/heatmap",
    "/api/v1/themes",
    "/api/v1/markers",
    f"/api/v1/compare?at={int(T0 // DAY * DAY)}&window_s={int(2 * DAY)}",
]
EVERY_SURVEY = ["/api/v1/programme"]  # roles, relationship NPS, coverage: both surveys
LISTS = ["/api/v1/feedback?limit=12"]
TABLES = re.compile(r'\b(?:FROM|JOIN)\s+"?(\w+)"?', re.IGNORECASE)


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL sent on `engine` while the test runs."""
    sent: list[str] = []

    def note(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        sent.append(sql)

    event.listen(engine, "before_cursor_execute", note)
    yield sent
    event.remove(engine, "before_cursor_execute", note)


def _history(api: Api) -> None:
    """Three weeks of answers at two sites, two firmware versions, a few reasons."""
    evs = [
        feedback(
            "nps-aaa111" if i % 2 else "nps-bbb222", i, i % 11, ts=T0 - 21 * DAY + i * 7000,
            site="store-1" if i % 2 else "store-2", fw="1.0.0" if i < 150 else "1.1.0",
            reason="price" if i % 11 < 4 else None,
        )
        for i in range(1, 260)
    ]  # fmt: skip
    for e in evs[::9]:
        e["survey"] = "relationship"
    api.ingest(evs)


def _read(api: Api, statements: list[str], path: str) -> list[str]:
    statements.clear()
    r = api.client.get(path, headers={"Authorization": f"Bearer {api.tokens['operator']}"})
    assert r.status_code == 200, (path, r.text)
    return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def _tables(sql: str) -> set[str]:
    return {m.lower() for m in TABLES.findall(sql)}


def test_transactional_figures_read_only_the_transactional_rollups(
    api: Api, statements: list[str]
) -> None:
    _history(api)
    for path in TRANSACTIONAL:
        read = _read(api, statements, path)
        assert read, path
        programme = [s for s in read if any(t.startswith("rollup_programme") for t in _tables(s))]
        assert not programme, (path, programme)


def test_no_call_reads_raw_feedback_outside_a_time_range(api: Api, statements: list[str]) -> None:
    _history(api)
    for path in TRANSACTIONAL + EVERY_SURVEY + LISTS:
        for sql in _read(api, statements, path):
            if "feedback" not in _tables(sql):
                continue
            ranged = re.search(r"feedback\.t\s*>=", sql) is not None
            joined = "voice_comment" in _tables(sql)  # a comment's own answer, by its id
            limited = re.search(r"\bLIMIT\b", sql, re.IGNORECASE) is not None  # newest first
            assert ranged or joined or limited, (path, sql)


def test_release_markers_read_hours_only_within_one_day(api: Api, statements: list[str]) -> None:
    _history(api)
    for path in ("/api/v1/markers", "/api/v1/markers?site=store-1"):
        hourly = [
            s for s in _read(api, statements, path) if any(t.endswith("_hour") for t in _tables(s))
        ]
        assert hourly, path  # the first hour of each version
        for sql in hourly:
            assert re.search(r"bucket\s*>=", sql) and re.search(r"bucket\s*<", sql), sql
