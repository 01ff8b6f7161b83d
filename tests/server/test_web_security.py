"""The dashboard's session against a browser-borne attacker (issue 12): forged writes
from another site, the Secure cookie over HTTPS, and guessing tokens at the login."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from server.api.deps import COOKIE
from server.api.login_limit import TableLimiter, limit_key
from server.app import create_app
from server.db.engine import make_engine
from server.db.sql import table_of
from server.identity.tokens import create_token
from server.models import LoginFailure
from server.settings import Settings
from tests.server.factory import feedback

ORIGIN = "http://testserver"
FOREIGN = "https://evil.example"
PROXY = "10.0.0.2"


@pytest.fixture
def app(migrated_sqlite_url: str) -> Iterator[FastAPI]:
    settings = Settings(db=migrated_sqlite_url, trusted_proxies=[PROXY])
    engine = make_engine(settings.db)
    yield create_app(settings, engine=engine)
    engine.dispose()


@pytest.fixture
def tokens(app: FastAPI) -> dict[str, str]:
    with Session(app.state.engine) as session:
        return {
            "gateway": create_token(session, name="gw-test", role="gateway", site="store-1"),
            "operator": create_token(session, name="alice", role="operator"),
        }


def counted(app: FastAPI, name: str, **labels: str) -> float:
    """A counter's value now, in the app's registry (tests compare before and after)."""
    return app.state.metrics.registry.get_sample_value(name, labels) or 0.0


def client_from(app: FastAPI, address: str, *, https: bool = False) -> TestClient:
    """A client whose TCP peer address is `address` (the limit counts by it)."""
    base = "https://testserver" if https else ORIGIN
    return TestClient(app, base_url=base, client=(address, 50000))


def logged_in(app: FastAPI, token: str, address: str = "192.0.2.10") -> TestClient:
    client = client_from(app, address)
    r = client.post("/api/v1/session", json={"token": token}, headers={"Origin": ORIGIN})
    assert r.status_code == 200, r.text
    return client


def an_alert(app: FastAPI, tokens: dict[str, str]) -> int:
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/ingest",
            json={"gateway": "gw-test", "events": [feedback(seq=1, score=0)]},
            headers={"Authorization": f"Bearer {tokens['gateway']}"},
        )
        assert r.status_code == 200, r.text
        r = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {tokens['operator']}"})
        alert_id: int = r.json()["items"][0]["id"]
        return alert_id


# --- cross-site request forgery ---------------------------------------------------------


def test_a_write_with_the_cookie_needs_this_servers_origin(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    aid = an_alert(app, tokens)
    client = logged_in(app, tokens["operator"])
    ack = f"/api/v1/alerts/{aid}/ack"
    forged_before = counted(app, "nps_edge_requests_forged_total")

    foreign = client.post(ack, headers={"Origin": FOREIGN})
    assert foreign.status_code == 403
    assert "cross-site request refused" in foreign.json()["detail"]
    assert FOREIGN in foreign.json()["detail"]
    assert client.post(ack, headers={"Origin": "null"}).status_code == 403
    # Same host, other scheme or port: another origin (RFC 6454).
    assert client.post(ack, headers={"Origin": "https://testserver"}).status_code == 403
    assert client.post(ack, headers={"Origin": "http://testserver:8080"}).status_code == 403
    assert client.post(ack, headers={"Referer": f"{FOREIGN}/page"}).status_code == 403
    bare = client.post(ack)
    assert bare.status_code == 403 and "Origin or Referer" in bare.json()["detail"]
    logout = client.delete("/api/v1/session", headers={"Origin": FOREIGN})
    assert logout.status_code == 403
    assert client.get(f"/api/v1/alerts/{aid}").json()["status"] == "open"  # nothing happened

    assert client.post(ack, headers={"Origin": ORIGIN}).status_code == 200
    assert client.post(ack, headers={"Origin": "HTTP://TestServer:80"}).status_code == 200
    assigned = client.post(
        f"/api/v1/alerts/{aid}/assign",
        json={"assignee": "bob"},
        headers={"Referer": f"{ORIGIN}/alerts?status=open"},
    )
    assert assigned.status_code == 200
    assert counted(app, "nps_edge_requests_forged_total") - forged_before == 7


def test_bearer_token_writes_are_not_cookie_borne_and_need_no_origin(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    aid = an_alert(app, tokens)
    client = TestClient(app)
    bearer = {"Authorization": f"Bearer {tokens['operator']}"}
    assert client.post(f"/api/v1/alerts/{aid}/ack", headers=bearer).status_code == 200
    r = client.post(f"/api/v1/alerts/{aid}/close", headers=bearer | {"Origin": FOREIGN})
    assert r.status_code == 200
    # A cookie with a non-bearer Authorization header is still cookie-borne.
    cookie = logged_in(app, tokens["operator"])
    basic = cookie.post(f"/api/v1/alerts/{aid}/ack", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 403


def test_a_login_form_posted_from_another_site_is_refused(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    client = TestClient(app)
    r = client.post(
        "/api/v1/session", json={"token": tokens["operator"]}, headers={"Origin": FOREIGN}
    )
    assert r.status_code == 403 and COOKIE not in r.cookies
    # A script (no Origin, no cookie) may still log in.
    assert client.post("/api/v1/session", json={"token": tokens["operator"]}).status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_host_and_scheme_make_the_origin(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    aid = an_alert(app, tokens)
    public = "https://nps.example.com"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "nps.example.com"}
    via_proxy = client_from(app, PROXY)
    r = via_proxy.post(
        "/api/v1/session",
        json={"token": tokens["operator"]},
        headers=forwarded | {"Origin": public},
    )
    assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]
    # The proxy speaks plain HTTP to us: hand the Secure cookie on as the proxy would.
    via_proxy.cookies.set(COOKIE, r.cookies[COOKIE])
    ack = f"/api/v1/alerts/{aid}/ack"
    assert via_proxy.post(ack, headers=forwarded | {"Origin": ORIGIN}).status_code == 403
    assert via_proxy.post(ack, headers=forwarded | {"Origin": public}).status_code == 200
    # The same headers from anyone else are not believed.
    stranger = logged_in(app, tokens["operator"], address="192.0.2.77")
    assert stranger.post(ack, headers=forwarded | {"Origin": public}).status_code == 403


# --- the Secure cookie --------------------------------------------------------------------


def _cookie_header(app: FastAPI, token: str, client: TestClient, **headers: str) -> str:
    r = client.post("/api/v1/session", json={"token": token}, headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["set-cookie"]


def test_the_cookie_is_secure_when_the_browser_came_over_https(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    tok = tokens["operator"]
    plain = _cookie_header(app, tok, client_from(app, "192.0.2.1"))
    assert "HttpOnly" in plain and "SameSite=strict" in plain and "Secure" not in plain
    direct = _cookie_header(app, tok, client_from(app, "192.0.2.1", https=True))
    assert "Secure" in direct
    proxied = _cookie_header(app, tok, client_from(app, PROXY), **{"X-Forwarded-Proto": "https"})
    assert "Secure" in proxied
    # Anyone but the trusted proxy saying "https" is not believed.
    spoofed = _cookie_header(
        app, tok, client_from(app, "192.0.2.1"), **{"X-Forwarded-Proto": "https"}
    )
    assert "Secure" not in spoofed


def test_cookie_secure_setting_marks_it_secure_over_plain_http(migrated_sqlite_url: str) -> None:
    settings = Settings(db=migrated_sqlite_url, cookie_secure=True)
    app = create_app(settings)
    with Session(app.state.engine) as session:
        tok = create_token(session, name="alice", role="operator")
    assert "Secure" in _cookie_header(app, tok, TestClient(app))
    app.state.engine.dispose()


# --- the login rate limit -----------------------------------------------------------------


def test_the_eleventh_failed_login_gets_429_and_another_address_still_logs_in(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    failed_before = counted(app, "nps_edge_login_failures_total", reason="unknown")
    throttled_before = counted(app, "nps_edge_login_throttled_total")
    guesser = client_from(app, "192.0.2.66")
    for i in range(10):
        r = guesser.post("/api/v1/session", json={"token": f"npso_guess{i}"})
        assert r.status_code == 401, (i, r.text)
    eleventh = guesser.post("/api/v1/session", json={"token": "npso_guess10"})
    assert eleventh.status_code == 429
    assert 1 <= int(eleventh.headers["Retry-After"]) <= 300
    assert "too many failed logins" in eleventh.json()["detail"]
    # Blocked means blocked: even the right token waits (else guessing goes on for free).
    assert guesser.post("/api/v1/session", json={"token": tokens["operator"]}).status_code == 429
    # A gateway token is no person's login: it counts as a failure too.
    other = client_from(app, "192.0.2.67")
    assert other.post("/api/v1/session", json={"token": tokens["gateway"]}).status_code == 401
    assert other.post("/api/v1/session", json={"token": tokens["operator"]}).status_code == 200
    # Behind the trusted proxy each forwarded client counts for itself.
    proxy = client_from(app, PROXY)
    for i in range(10):
        hdr = {"X-Forwarded-For": "198.51.100.9"}
        assert (
            proxy.post("/api/v1/session", json={"token": f"x{i}"}, headers=hdr).status_code == 401
        )
    blocked = proxy.post(
        "/api/v1/session", json={"token": "x"}, headers={"X-Forwarded-For": "198.51.100.9"}
    )
    assert blocked.status_code == 429
    ok = proxy.post(
        "/api/v1/session",
        json={"token": tokens["operator"]},
        headers={"X-Forwarded-For": "198.51.100.10"},
    )
    assert ok.status_code == 200
    assert counted(app, "nps_edge_login_failures_total", reason="unknown") - failed_before == 20
    assert counted(app, "nps_edge_login_throttled_total") - throttled_before == 3


@pytest.fixture
def limiter(db_url: str) -> Iterator[TableLimiter]:
    engine = make_engine(db_url)
    yield TableLimiter(engine, max_failures=3, window_s=300)
    engine.dispose()


def test_the_limiter_slides_its_window(limiter: TableLimiter) -> None:
    for t in (0.0, 100.0, 200.0):
        assert limiter.reserve("a", now=t) == 0
    assert limiter.reserve("a", now=250.0) == pytest.approx(50.0)  # the failure at 0 leaves at 300
    assert limiter.reserve("b", now=250.0) == 0
    assert limiter.reserve("a", now=300.0) == 0
    assert limiter.reserve("a", now=301.0) == pytest.approx(99.0)


def test_the_failures_table_keeps_only_the_window(limiter: TableLimiter) -> None:
    for i in range(50):
        limiter.reserve(f"10.0.0.{i}", now=float(i))
    limiter.reserve("late", now=1000.0)
    with Session(limiter.engine) as session:
        assert session.execute(select(table_of(LoginFailure).c.key)).scalars().all() == ["late"]


def test_workers_share_the_count(db_url: str) -> None:
    """Two apps on one database (two server workers): failures at one block the other."""
    engines = [make_engine(db_url) for _ in range(2)]
    one, two = (TableLimiter(e, max_failures=2, window_s=300) for e in engines)
    assert one.reserve("192.0.2.1", now=10.0) == two.reserve("192.0.2.1", now=11.0) == 0
    assert one.reserve("192.0.2.1", now=12.0) == two.reserve("192.0.2.1", now=12.0) == 298.0
    for e in engines:
        e.dispose()


def test_tries_reserved_at_once_by_two_workers_stay_within_the_limit(db_url: str) -> None:
    """`reserve` checks and records in one transaction (PostgreSQL: under a lock per key),
    so two workers' threads at once get no more tries than the limit; `forgive` takes
    one back."""
    engines = [make_engine(db_url) for _ in range(2)]
    workers = [TableLimiter(e, max_failures=5, window_s=300) for e in engines]
    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(
            pool.map(lambda i: workers[i % 2].reserve("192.0.2.5", now=10.0 + i / 100), range(24))
        )
    assert waits.count(0.0) == 5, waits
    workers[0].forgive("192.0.2.5", now=10.0 + waits.index(0.0) / 100)
    assert workers[1].reserve("192.0.2.5", now=11.0) == 0.0
    assert workers[1].reserve("192.0.2.5", now=11.5) > 0
    for e in engines:
        e.dispose()


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    assert (
        limit_key("2001:db8:1:2:aaaa::1")
        == limit_key("2001:db8:1:2:bbbb::9")
        == "2001:db8:1:2::/64"
    )
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert limit_key("192.0.2.1") == "192.0.2.1"


def test_a_proxy_that_is_no_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="proxy.example"):
        Settings(trusted_proxies=["proxy.example"])
    assert Settings(trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies == ["10.0.0.0/8", "::1"]


def test_an_empty_bearer_header_does_not_exempt_a_cookie_borne_write(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    """`Authorization: Bearer` with no token is no bearer token: the route then logs the
    caller in by the cookie, so the write must pass the origin check like any other."""
    aid = an_alert(app, tokens)
    client = logged_in(app, tokens["operator"])
    ack = f"/api/v1/alerts/{aid}/ack"
    for empty in ("Bearer ", "bearer    ", "Bearer"):
        r = client.post(ack, headers={"Origin": FOREIGN, "Authorization": empty})
        assert r.status_code == 403, (empty, r.text)
    assert client.get(f"/api/v1/alerts/{aid}").json()["status"] == "open"


def test_failed_logins_at_once_get_no_more_tries_than_one_after_another(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    """The limit is checked before the token and the failure recorded after: guesses
    sent at once must not all pass the check before any failure is recorded."""
    guesser = client_from(app, "192.0.2.77")
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(
            pool.map(
                lambda i: guesser.post("/api/v1/session", json={"token": f"npso_g{i}"}).status_code,
                range(48),
            )
        )
    assert codes.count(401) <= 10, sorted(codes)
    assert codes.count(429) == 48 - codes.count(401)
