"""Hostile requests get a 4xx with a reason, never a 5xx; the database file is private.

Each case here answered 500 on main (3cf5ecb), issue 12: whoever holds a
gateway token (or, for `/ui`, anyone) could make the server fail a request.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from server.db.engine import make_engine, upgrade
from tests.server.factory import T0, feedback, telemetry

DEEP = b"[" * 5000 + b"]" * 5000
HUGE_INT = b"9" * 5000


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client that shows the 500 a server error answers instead of raising it."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _post(client: TestClient, token: str, path: str, body: bytes) -> Any:
    return client.post(
        path,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _ingested(client: TestClient, token: str, *events: str) -> Any:
    """The answer to a batch of events given as JSON text (escapes kept as written)."""
    body = f'{{"gateway": "gw-1", "events": [{", ".join(events)}]}}'.encode()
    r = _post(client, token, "/api/v1/ingest", body)
    assert r.status_code == 200, r.text
    return r.json()


def _refused(client: TestClient) -> float:
    return sum(
        s.value
        for m in client.app.state.metrics.registry.collect()  # type: ignore[attr-defined]
        if m.name == "nps_edge_requests_refused"
        for s in m.samples
        if s.name.endswith("_total")
    )


@pytest.mark.parametrize("path", ["/api/v1/ingest", "/api/v1/presence"])
@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"gateway": "gw-1", "events": ' + DEEP + b"}",
        b'{"gateway": "gw-1", "events": [], "x": ' + HUGE_INT + b"}",
        b'{"gateway": "gw-1", "updates": [{"device": "nps-aaa111", "online": true, "boot": '
        + HUGE_INT
        + b', "rx_ts": 1}]}',
    ],
    ids=["deep", "deep-inside", "huge-int", "huge-int-in-update"],
)
def test_deep_or_huge_json_is_refused_with_a_reason(
    client: TestClient, tokens: dict[str, str], path: str, body: bytes
) -> None:
    before = _refused(client)
    r = _post(client, tokens["gateway"], path, body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]
    assert _refused(client) == before + 1


def test_nesting_within_the_limit_is_still_parsed(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """Brackets inside strings do not count: a reason full of `[` is an ordinary event."""
    ev = feedback(seq=1, score=9, reason="[" * 30 + "{" * 30)
    r = client.post(
        "/api/v1/ingest",
        json={"gateway": "gw-1", "events": [ev]},
        headers={"Authorization": f"Bearer {tokens['gateway']}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    "update",
    [
        {"boot": 2**63},
        {"boot": 2**53},
        {"rx_ts": math.nan},
        {"rx_ts": math.inf},
        {"rx_ts": -1e308},
        {"fw": "x" * 10_000},
    ],
    ids=["boot-2^63", "boot-2^53", "rx_ts-nan", "rx_ts-inf", "rx_ts-negative", "fw-10k"],
)
def test_a_presence_update_out_of_bounds_is_refused(
    client: TestClient, tokens: dict[str, str], update: dict[str, Any]
) -> None:
    """The contract leaves presence integers and times open; storage bounds them."""
    body = {"device": "nps-aaa111", "online": True, "fw": "1.0.0", "boot": 1, "rx_ts": T0}
    raw = json.dumps({"gateway": "gw-1", "updates": [body | update]}).encode()
    r = _post(client, tokens["gateway"], "/api/v1/presence", raw)
    assert r.status_code == 422, r.text
    field = next(iter(update))
    assert field in r.json()["detail"]


def test_an_event_with_rx_ts_nan_is_rejected_alone(
    client: TestClient, tokens: dict[str, str]
) -> None:
    bad = json.dumps(feedback(seq=2)).replace('"rx_ts": ', '"rx_ts": NaN, "x": ')
    raw = f'{{"gateway": "gw-1", "events": [{json.dumps(feedback(seq=1))}, {bad}]}}'.encode()
    r = _post(client, tokens["gateway"], "/api/v1/ingest", raw)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] == 1
    [rejected] = out["rejected"]
    assert rejected["index"] == 1 and rejected["error"].startswith("rx_ts")


@pytest.mark.parametrize(
    "path",
    [
        "/ui/app.js%00.png",
        "/ui/app.js%00",
        "/ui/%00",
        "/ui/" + "a" * 5000 + ".js",
        "/ui/" + "a/" * 3000 + "b.js",
        "/ui/..%2f..%2fpyproject.toml",
        "/ui/%2e%2e/%2e%2e/pyproject.toml",
        "/ui/app%0a.js",
        "/ui/%5c..%5capp.js",
    ],
    ids=[
        "nul-png",
        "nul",
        "only-nul",
        "long-name",
        "deep-path",
        "dotdot",
        "dotdot-encoded",
        "newline",
        "backslash",
    ],  # fmt: skip
)
def test_static_route_refuses_bad_paths(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (400, 404), (r.status_code, r.text[:200])
    assert "detail" in r.json()


def test_static_route_still_serves_assets(client: TestClient) -> None:
    r = client.get("/ui/app.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]


def test_the_sqlite_file_and_its_companions_are_private(tmp_path: Path) -> None:
    """The database holds answers and token hashes: owner-only, whatever the umask."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "db" / "nps.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        with engine.begin() as conn:  # WAL and shared-memory files exist while connected
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
            files = sorted(p.name for p in path.parent.iterdir())
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        engine.dispose()
    finally:
        os.umask(old)
    assert {"nps.db", "nps.db-wal", "nps.db-shm"} <= set(files)
    assert modes == dict.fromkeys(files, 0o600), modes


def test_an_existing_world_readable_sqlite_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "nps.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_parser_error_anywhere_answers_400_but_our_own_value_error_stays_500(
    app: FastAPI,
) -> None:
    """The app-level net: narrow (innermost frame in a parser), not a hider of our bugs."""

    @app.get("/test/parse")
    def parse() -> Any:
        return json.loads("[" * 100_000)

    @app.get("/test/bug")
    def bug() -> Any:
        raise ValueError("our bug")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/test/parse")
        assert r.status_code == 400 and "RecursionError" in r.json()["detail"]
        r = c.get("/test/bug")
        assert r.status_code == 500


# PostgreSQL text cannot hold NUL (psycopg.DataError): each of these answered 500 there.
@pytest.mark.parametrize(
    "query",
    ["site=%00", "site=a%00b&device=x", "fw=%00", "trigger=%00", "prompt=%00"],
)
def test_nul_in_a_query_is_refused(client: TestClient, tokens: dict[str, str], query: str) -> None:
    for path in ("/api/v1/nps", "/api/v1/feedback", "/api/v1/alerts", "/api/v1/devices"):
        r = client.get(f"{path}?{query}", headers={"Authorization": f"Bearer {tokens['operator']}"})
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert "NUL" in r.json()["detail"]


def test_an_event_with_nul_in_a_string_is_rejected_alone(
    client: TestClient, tokens: dict[str, str]
) -> None:
    events = [
        feedback(seq=1),
        feedback(seq=2, reason="slow\x00"),
        feedback(seq=3, fw="1.0\x00"),
        feedback(seq=4, kind="a\x00"),
        feedback(seq=5, prompt="\x00"),
    ]
    r = client.post(
        "/api/v1/ingest",
        json={"gateway": "gw-1", "events": events},
        headers={"Authorization": f"Bearer {tokens['gateway']}"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] == 1
    reasons = {x["index"]: x["error"] for x in out["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4]
    assert [reasons[i].split(":")[0] for i in (1, 2, 3, 4)] == [
        "reason", "fw", "trigger.kind", "prompt",
    ]  # fmt: skip
    assert all("NUL" in e for e in reasons.values())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/ingest", {"gateway": "gw\x00", "events": []}),
        ("/api/v1/presence", {"gateway": "gw\x00", "updates": []}),
        ("/api/v1/presence", {"gateway": "gw-1", "updates": [
            {"device": "nps-aaa111", "online": True, "fw": "\x00", "rx_ts": T0}
        ]}),
    ],
)  # fmt: skip
def test_nul_in_a_batch_envelope_is_refused(
    client: TestClient, tokens: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    r = client.post(path, json=body, headers={"Authorization": f"Bearer {tokens['gateway']}"})
    assert r.status_code == 422, r.text


def test_nul_in_an_alert_step_is_refused(client: TestClient, tokens: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {tokens['operator']}"}
    client.post(
        "/api/v1/ingest",
        json={"gateway": "gw-1", "events": [feedback(seq=1, score=0)]},
        headers={"Authorization": f"Bearer {tokens['gateway']}"},
    )
    [alert] = client.get("/api/v1/alerts", headers=auth).json()["items"]
    for step, body in (
        ("assign", {"assignee": "bo\x00b"}),
        ("comment", {"text": "\x00"}),
        ("close", {"note": "x\x00"}),
    ):
        r = client.post(f"/api/v1/alerts/{alert['id']}/{step}", json=body, headers=auth)
        assert r.status_code == 422, (step, r.status_code, r.text)
        assert "NUL" in r.json()["detail"]


def test_a_nul_that_reaches_postgresql_is_a_422_and_other_data_errors_stay_500(
    app: FastAPI, engine: Engine
) -> None:
    """The net behind the checks: only PostgreSQL refuses NUL, so only it can show it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores NUL; the net is for PostgreSQL's DataError")

    @app.get("/test/nul")
    def store_nul() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT CAST(:x AS text)"), {"x": "a\x00b"}).scalar()

    @app.get("/test/overflow")
    def overflow() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT CAST(:x AS smallint)"), {"x": 10**6}).scalar()

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/test/nul")
        assert r.status_code == 422 and "NUL" in r.json()["detail"]
        assert c.get("/test/overflow").status_code == 500


def test_an_alert_id_past_the_column_is_no_such_alert(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """`alert.id` is 32-bit on PostgreSQL; the API takes ids up to 2^62 (found by fuzzing)."""
    auth = {"Authorization": f"Bearer {tokens['operator']}"}
    for big in (2**31, 2952878389, 2**62):
        assert client.get(f"/api/v1/alerts/{big}", headers=auth).status_code == 404
        assert client.post(f"/api/v1/alerts/{big}/ack", headers=auth).status_code == 404


def test_a_rejected_event_with_nul_in_its_id_is_dead_lettered(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """Its id and the reason quoting it go to `dead_letter` (text columns) NUL-free."""
    bad = feedback(seq=2) | {"id": "nps-aaa111:\x002"}
    r = client.post(
        "/api/v1/ingest",
        json={"gateway": "gw-1", "events": [feedback(seq=1), bad, {"id": "\x00", "v": "\x00"}]},
        headers={"Authorization": f"Bearer {tokens['gateway']}"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] == 1 and [x["index"] for x in out["rejected"]] == [1, 2]
    assert not any("\x00" in (x["id"] or "") + x["error"] for x in out["rejected"])


def test_lone_surrogates_are_rejected_per_event_not_a_500(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """JSON can send `\\ud800`, which UTF-8 (SQLite, PostgreSQL, the answer) cannot encode."""
    good = json.dumps(feedback(seq=1))
    in_reason = json.dumps(feedback(seq=2, score=2, reason="SURR")).replace("SURR", "\\ud800")
    in_id = json.dumps(feedback(seq=3)).replace('"nps-aaa111:3"', '"\\udfff"')
    out = _ingested(client, tokens["gateway"], good, in_reason, in_id)
    assert out["accepted"] == 1 and [x["index"] for x in out["rejected"]] == [1, 2]


def test_a_lone_surrogate_in_a_name_is_one_bad_event_not_a_stuck_site(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """An object's names are the one place pydantic lets `\\ud800` through: in `errors`
    it failed the whole batch with a 500 (the gateway then retried it for ever); in
    `sampling` (not a contract field) the counters are dropped, the reading kept."""
    good = json.dumps(feedback(seq=1))
    bad_errors = json.dumps(telemetry(seq=2, errors={"SURR": 1})).replace("SURR", "\\ud800")
    bad_sampling = json.dumps(telemetry(seq=3, sampling={"SURR": 4})).replace("SURR", "\\udfff")
    out = _ingested(client, tokens["gateway"], good, bad_errors, bad_sampling)
    assert out["accepted"] == 2 and [x["index"] for x in out["rejected"]] == [1]
    assert out["rejected"][0]["error"].startswith("errors")


@pytest.mark.parametrize(
    "errors",
    [{"x" * 65: 1}, {f"e{i}": 1 for i in range(65)}],
    ids=["name-65-chars", "65-names"],
)
def test_the_contracts_bounds_on_error_names_hold_at_the_server(
    client: TestClient, tokens: dict[str, str], errors: dict[str, int]
) -> None:
    """A name of at most 64 characters, at most 64 of them (contract): the gateway checks
    them, and so does the server for a sender that does not (it stored them before)."""
    good = json.dumps(feedback(seq=1))
    out = _ingested(client, tokens["gateway"], good, json.dumps(telemetry(seq=2, errors=errors)))
    assert out["accepted"] == 1 and [x["index"] for x in out["rejected"]] == [1]
    assert out["rejected"][0]["error"].startswith("errors")
