"""People (issue 16): accounts with argon2id passwords, invitations and resets by e-mail
through a real SMTP server, e-mail login beside token login, and the attacks on them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session

from server.app import create_app
from server.identity.tokens import create_token
from server.models import Person, PersonLink
from server.models.people import LinkPurpose
from server.people.accounts import add_person, make_link
from server.people.passwords import HASHER
from server.settings import Settings
from tests.server.factory import feedback
from tests.server.smtp import SmtpSink, body

ORIGIN = {"Origin": "http://testserver"}
GOOD = "correct horse battery"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def people_app(db_url: str, engine: Engine, smtp: SmtpSink) -> Iterator[dict[str, Any]]:
    settings = Settings(
        db=db_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="nps@example.com",
        public_url="https://nps.example.com",
        login_max_failures=10,
    )
    with Session(engine) as s:
        tokens = {
            "admin": create_token(s, name="ada", role="admin"),
            "gateway": create_token(s, name="gw-1", role="gateway", site="store-1"),
        }
    with TestClient(create_app(settings, engine=engine)) as client:
        yield {"client": client, "tokens": tokens, "engine": engine}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} | ORIGIN


def link_secret(text: str, purpose: str) -> str:
    found = re.search(rf"https://nps\.example\.com/login#{purpose}=([A-Za-z0-9_-]+)", text)
    assert found, text
    return found.group(1)


def login(client: TestClient, email: str, password: str) -> Any:
    return client.post(
        "/api/v1/session", json={"email": email, "password": password}, headers=ORIGIN
    )


def invite_and_join(
    env: dict[str, Any], smtp: SmtpSink, email: str, role: str, site: str | None = None
) -> None:
    c = env["client"]
    r = c.post(
        "/api/v1/people",
        json={"email": email, "role": role, "site": site},
        headers=bearer(env["tokens"]["admin"]),
    )
    assert r.status_code == 200, r.text
    [mail] = smtp.wait_to(email)
    secret = link_secret(body(mail), "invite")
    r = c.post("/api/v1/people/accept", json={"token": secret, "password": GOOD}, headers=ORIGIN)
    assert r.status_code == 200, r.text


def test_invitation_by_email_then_login_with_the_password(
    people_app: dict[str, Any], smtp: SmtpSink
) -> None:
    c = people_app["client"]
    admin = bearer(people_app["tokens"]["admin"])
    r = c.post(
        "/api/v1/people", json={"email": "Maria@Example.com", "role": "operator"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["mailed"] is True
    assert r.json()["person"] | {"id": 0, "created_at": 0} == {
        "id": 0,
        "email": "maria@example.com",
        "name": "maria",
        "role": "operator",
        "site": None,
        "notify": False,
        "digest": False,
        "joined": False,
        "created_at": 0,
        "disabled_at": None,
    }
    [mail] = smtp.wait_for(1)
    assert (mail["To"], mail["From"]) == ("maria@example.com", "nps@example.com")
    secret = link_secret(body(mail), "invite")
    assert link_secret(r.json()["link"], "invite") == secret
    # Not joined yet: no password logs in.
    assert login(c, "maria@example.com", "").status_code == 422
    assert login(c, "maria@example.com", GOOD).status_code == 401
    short = c.post(
        "/api/v1/people/accept", json={"token": secret, "password": "short"}, headers=ORIGIN
    )
    assert short.status_code == 422 and "at least 10" in short.json()["detail"]
    ok = c.post("/api/v1/people/accept", json={"token": secret, "password": GOOD}, headers=ORIGIN)
    assert ok.status_code == 200
    replay = c.post(
        "/api/v1/people/accept", json={"token": secret, "password": GOOD + "!"}, headers=ORIGIN
    )
    assert replay.status_code == 410 and "already used" in replay.json()["detail"]
    assert login(c, "maria@example.com", "wrong password!").status_code == 401
    r = login(c, "MARIA@example.com ", GOOD)
    assert r.status_code == 200
    assert r.json() == {"name": "maria@example.com", "role": "operator", "site": None}
    assert c.get("/api/v1/session").json()["name"] == "maria@example.com"
    # Stored: an argon2id hash with the documented parameters; the link only as a digest.
    with Session(people_app["engine"]) as s:
        person = s.execute(select(Person)).scalar_one()
        stored = s.execute(select(PersonLink)).scalar_one()
    assert person.password_hash is not None
    assert person.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert HASHER.verify(person.password_hash, GOOD)
    assert secret not in stored.token_hash and len(stored.token_hash) == 64
    # Operators read the people list (the owner picker).
    assert [p["email"] for p in c.get("/api/v1/people").json()] == ["maria@example.com"]


def test_password_reset_link_is_one_time_expiring_and_says_nothing(
    people_app: dict[str, Any], smtp: SmtpSink
) -> None:
    c, engine = people_app["client"], people_app["engine"]
    invite_and_join(people_app, smtp, "sam@example.com", "viewer")
    unknown = c.post(
        "/api/v1/people/reset-request", json={"email": "nobody@example.com"}, headers=ORIGIN
    )
    known = c.post(
        "/api/v1/people/reset-request", json={"email": "sam@example.com"}, headers=ORIGIN
    )
    assert (unknown.status_code, known.status_code) == (202, 202)
    assert unknown.json() == known.json()  # no account enumeration
    [mail] = [m for m in smtp.wait_to("sam@example.com", 2) if "Reset" in m["Subject"]]
    secret = link_secret(body(mail), "reset")
    new = "another good password"
    assert (
        c.post(
            "/api/v1/people/accept", json={"token": secret, "password": new}, headers=ORIGIN
        ).status_code
        == 400
    )  # a reset link is no invitation
    assert (
        c.post(
            "/api/v1/people/reset", json={"token": secret, "password": new}, headers=ORIGIN
        ).status_code
        == 200
    )
    replayed = c.post(
        "/api/v1/people/reset", json={"token": secret, "password": GOOD}, headers=ORIGIN
    )
    assert replayed.status_code == 410
    assert login(c, "sam@example.com", GOOD).status_code == 401
    assert login(c, "sam@example.com", new).status_code == 200
    # An expired link: made two hours ago with the hour-long lifetime.
    with Session(engine) as s:
        person = s.execute(select(Person)).scalar_one()
        old = make_link(s, person=person, purpose=LinkPurpose.RESET, ttl_s=3600, now=1.0)
    expired = c.post("/api/v1/people/reset", json={"token": old, "password": GOOD}, headers=ORIGIN)
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    forged = c.post(
        "/api/v1/people/reset", json={"token": "A" * 43, "password": GOOD}, headers=ORIGIN
    )
    assert forged.status_code == 400


def test_a_disabled_person_is_out_at_once(people_app: dict[str, Any], smtp: SmtpSink) -> None:
    c = people_app["client"]
    invite_and_join(people_app, smtp, "olga@example.com", "operator")
    assert login(c, "olga@example.com", GOOD).status_code == 200
    assert c.get("/api/v1/alerts").status_code == 200
    admin = TestClient(c.app)
    [olga] = [
        p
        for p in admin.get("/api/v1/people", headers=bearer(people_app["tokens"]["admin"])).json()
        if p["email"] == "olga@example.com"
    ]
    r = admin.patch(
        f"/api/v1/people/{olga['id']}",
        json={"disabled": True},
        headers=bearer(people_app["tokens"]["admin"]),
    )
    assert r.status_code == 200 and r.json()["disabled_at"] is not None
    assert c.get("/api/v1/alerts").status_code == 401  # her open session died with her
    assert login(c, "olga@example.com", GOOD).status_code == 401
    before = len(smtp.messages)
    c.post("/api/v1/people/reset-request", json={"email": "olga@example.com"}, headers=ORIGIN)
    assert len(smtp.messages) == before  # no reset link for a disabled account


def test_roles_and_sites_hold_for_password_logins(
    people_app: dict[str, Any], smtp: SmtpSink
) -> None:
    c = people_app["client"]
    gw = {"Authorization": f"Bearer {people_app['tokens']['gateway']}"}
    c.post(
        "/api/v1/ingest", json={"gateway": "gw-1", "events": [feedback(seq=1, score=0)]}, headers=gw
    )
    with Session(people_app["engine"]) as s:
        gw2 = create_token(s, name="gw-2", role="gateway", site="store-2")
    c.post(
        "/api/v1/ingest",
        json={"gateway": "gw-2", "events": [feedback("nps-bbb222", 1, 0, site="store-2")]},
        headers={"Authorization": f"Bearer {gw2}"},
    )
    ids = {
        a["site"]: a["id"]
        for a in c.get("/api/v1/alerts", headers=bearer(people_app["tokens"]["admin"])).json()[
            "items"
        ]
    }
    invite_and_join(people_app, smtp, "vic@example.com", "viewer")
    invite_and_join(people_app, smtp, "otto@example.com", "operator", site="store-1")
    viewer = TestClient(c.app)
    assert login(viewer, "vic@example.com", GOOD).status_code == 200
    r = viewer.post(
        "/api/v1/alerts/bulk", json={"ids": [ids["store-1"]], "action": "close"}, headers=ORIGIN
    )
    assert r.status_code == 403 and "a viewer cannot do this" in r.json()["detail"]
    otto = TestClient(c.app)
    assert login(otto, "otto@example.com", GOOD).json()["site"] == "store-1"
    r = otto.post(f"/api/v1/alerts/{ids['store-2']}/close", json={"note": "x"}, headers=ORIGIN)
    assert r.status_code == 403 and "limited to site store-1" in r.json()["detail"]
    assert otto.post(f"/api/v1/alerts/{ids['store-1']}/ack", headers=ORIGIN).status_code == 200
    assert (
        otto.post(
            "/api/v1/people", json={"email": "x@example.com", "role": "admin"}, headers=ORIGIN
        ).status_code
        == 403
    )


def test_hostile_bytes_and_throttling(people_app: dict[str, Any]) -> None:
    c = people_app["client"]
    admin = bearer(people_app["tokens"]["admin"])
    for email in (
        "a@b",
        "x\r\nBcc: evil@example.com",
        "<script>@example.com",
        "a" * 300,
        "maria\x00@example.com",
        "méria@exämple.com",
    ):
        r = c.post("/api/v1/people", json={"email": email, "role": "viewer"}, headers=admin)
        assert r.status_code == 422, (email, r.text)
    for bad in (
        {"email": "m@example.com", "role": "root"},
        {"email": "m@example.com", "role": "viewer", "site": "../etc"},
    ):
        assert c.post("/api/v1/people", json=bad, headers=admin).status_code == 422
    c.post("/api/v1/people", json={"email": "m@example.com", "role": "viewer"}, headers=admin)
    taken = c.post(
        "/api/v1/people", json={"email": "M@example.com", "role": "viewer"}, headers=admin
    )
    assert taken.status_code == 409
    for login_body in (
        {"email": "m@example.com"},
        {"token": "x", "email": "m@example.com", "password": GOOD},
        {},
        {"email": "m@example.com", "password": "x" * 2000},
    ):
        assert c.post("/api/v1/session", json=login_body, headers=ORIGIN).status_code == 422
    r = c.post(
        "/api/v1/people/accept", json={"token": "x", "password": "p\x00" * 10}, headers=ORIGIN
    )
    assert r.status_code in (400, 422)
    # Wrong passwords from one address (the limit is 10 failed tries, the bad link above
    # one of them), then 429 even for the right one.
    with Session(people_app["engine"]) as s:
        add_person(s, email="t@example.com", role="viewer", password=GOOD)
    statuses = [login(c, "t@example.com", f"wrong {i} password").status_code for i in range(10)]
    assert statuses == [401] * 9 + [429]
    refused = login(c, "t@example.com", GOOD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
