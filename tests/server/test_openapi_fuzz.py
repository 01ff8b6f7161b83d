"""schemathesis against the server's own OpenAPI: no input makes it answer 5xx.

Every operation is called as every role (a valid token of each) and without a
token, so generated input reaches the code behind authentication; then the
hostile requests of issue 12 (which answered 500 on main, 3cf5ecb) and generated
paths for the dashboard routes outside the schema. On SQLite and on PostgreSQL
(which found the 32-bit alert id). Derandomized and bounded for CI: MEANT requests
per operation as its role and OTHERS as each other caller; 23 s on SQLite and 39 s
on PostgreSQL in CI on 2 cores (December 2026; ~30 s in all when it had fewer routes).
"""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from sqlmodel import Session

from server.app import create_app
from server.db.engine import make_engine
from server.identity.tokens import ROLES, create_token
from server.settings import Settings
from tests.server.conftest import emptied
from tests.server.factory import T0, feedback

TOKENS: dict[str, str] = {}
SITE = "store-1"
# Requests per operation: as the role it is meant for, and as each other caller.
MEANT, OTHERS = 25, 5
# What answers without a token: probes, and logging in and out.
PUBLIC = {("GET", "/healthz"), ("GET", "/metrics"), ("POST", "/api/v1/session"),
          ("DELETE", "/api/v1/session")}  # fmt: skip
FUZZ = settings(
    derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def _token(session: Session, role: str) -> str:
    # Gateway tokens belong to a site once the registry lands (contract, Dec 2026).
    site = {"site": SITE} if "site" in inspect.signature(create_token).parameters else {}
    return create_token(session, name=f"fuzz-{role}", role=role, **site)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    """The app on a SQLite file, then on PostgreSQL (which refuses NUL in text)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "nps.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = emptied(request.getfixturevalue("postgres_shared"))
    engine = make_engine(url)
    key = tmp_path_factory.mktemp("key") / "command.key"  # not the working directory's
    app = create_app(Settings(db=url, command_key=str(key)), engine=engine)
    with Session(engine) as session:
        for role in ROLES:
            TOKENS[role] = _token(session, role)
    with TestClient(app) as client:  # some data, so reads have something to chew on
        r = client.post(
            "/api/v1/ingest",
            json={"gateway": "fuzz-gateway", "events": [
                feedback(seq=i, score=i % 11, kind=f"k{i % 3}") for i in range(1, 30)
            ]},
            headers={"Authorization": f"Bearer {TOKENS['gateway']}"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
    yield app
    engine.dispose()


def _meant_for(path: str) -> str:
    return "gateway" if path in ("/api/v1/ingest", "/api/v1/presence") else "operator"


def _no_5xx(response: Any, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:500])
    if response.status_code >= 400 and "json" in str(response.headers.get("content-type")):
        assert "detail" in response.json(), response.text


Calls = dict[str | None, list[tuple[str, str, int]]]  # caller -> (method, path, status)


def _fuzz(operation: Any, caller: str | None, calls: Calls) -> Any:
    """A hypothesis test calling `operation` as `caller` (None: no token)."""
    meant = caller == _meant_for(operation.path)
    auth = {} if caller is None else {"Authorization": f"Bearer {TOKENS[caller]}"}

    @given(case=operation.as_strategy())
    @settings(FUZZ, max_examples=MEANT if meant else OTHERS)
    def check(case: Any) -> None:
        response = case.call(headers=auth)
        calls.setdefault(caller, []).append((case.method, operation.path, response.status_code))
        _no_5xx(response, (caller, case.method, case.path, case.body))

    return check


def _operation(
    result: Ok[schemathesis.APIOperation] | Err[InvalidSchema],
) -> schemathesis.APIOperation:
    """The operation, or its schema error raised (narrows schemathesis' Ok | Err)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_no_generated_request_gets_a_5xx(fuzzed_app: FastAPI) -> None:
    """Every operation, as every role and anonymously; valid and invalid input."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app).exclude(
        path="/api/v1/stream"  # endless by design; tested in test_alerts
    )
    operations = [_operation(result) for result in schema.get_all_operations()]
    assert len(operations) > 20
    calls: Calls = {}
    for operation in operations:
        for caller in (None, *ROLES):
            _fuzz(operation, caller, calls)()
    assert 500 <= sum(map(len, calls.values())) <= 3000
    anonymous_ok = {(m, p) for m, p, status in calls[None] if status < 400}
    assert anonymous_ok <= PUBLIC, anonymous_ok - PUBLIC  # nothing else without a token
    operator = [status for _, _, status in calls["operator"]]
    assert 200 in operator and 422 in operator


PRESENCE = {"device": "nps-aaa111", "online": True, "fw": "1.0.0", "boot": 1, "rx_ts": T0}
DEEP = b"[" * 5000 + b"]" * 5000


def _presence(**update: Any) -> bytes:
    return json.dumps({"gateway": "g", "updates": [PRESENCE | update]}).encode()


HOSTILE = [
    ("POST", "/api/v1/ingest", DEEP),
    ("POST", "/api/v1/presence", b'{"gateway": "g", "updates": ' + DEEP + b"}"),
    ("POST", "/api/v1/ingest", b'{"gateway": "g", "events": [' + b"9" * 5000 + b"]}"),
    ("POST", "/api/v1/presence", _presence(boot=2**63)),
    ("POST", "/api/v1/presence", _presence(rx_ts=float("nan"))),
    ("GET", "/ui/app.js%00.png", b""),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), HOSTILE)
def test_the_hostile_requests_of_issue_12_get_a_4xx(
    fuzzed_app: FastAPI, method: str, path: str, body: bytes
) -> None:
    with TestClient(fuzzed_app, raise_server_exceptions=False) as client:
        r = client.request(
            method, path, content=body or None,
            headers={"Authorization": f"Bearer {TOKENS['gateway']}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


@settings(FUZZ, max_examples=150)
@given(
    route=st.sampled_from(["/ui/", "/fleet/", "/login?next=", "/ui/vendor/"]),
    tail=st.text(max_size=300),
)
def test_no_dashboard_path_gets_a_5xx(fuzzed_app: FastAPI, route: str, tail: str) -> None:
    """The routes outside the schema (pages and assets), with any percent-encoded text."""
    with TestClient(fuzzed_app, raise_server_exceptions=False) as client:
        r = client.get(route + quote(tail, safe="/"), follow_redirects=False)
    assert r.status_code < 500 or r.status_code == 503 and "chart.js" in r.text, r.text[:300]
