"""Least privilege for people (issue 12): each role does only what it may, a token
limited to a site sees and touches only that site, a revoked token stops at once."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from server.alerts.routing import add_rule
from server.api import stream
from server.identity.registry import mosquitto_hash
from server.identity.tokens import create_token, revoke_token
from server.models import RegisteredDevice
from server.people.accounts import add_person
from tests.server.factory import Api, feedback, telemetry
from tests.server.live import serve, sse_events

ORIGIN = {"Origin": "http://testserver"}
# The least role each state-changing route needs; ingest and presence take gateways,
# the session is the login itself. A new write route must be added here (the test
# below fails on a route missing from this table).
WRITES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/alerts/{alert_id}/ack"): "operator",
    ("POST", "/api/v1/alerts/{alert_id}/assign"): "operator",
    ("POST", "/api/v1/alerts/{alert_id}/comment"): "operator",
    ("POST", "/api/v1/alerts/{alert_id}/close"): "operator",
    ("POST", "/api/v1/alerts/bulk"): "operator",
    ("POST", "/api/v1/routing"): "admin",
    ("DELETE", "/api/v1/routing/{rule_id}"): "admin",
    ("POST", "/api/v1/people"): "admin",
    ("PATCH", "/api/v1/people/{person_id}"): "admin",
    ("POST", "/api/v1/registry/devices"): "admin",
    ("PUT", "/api/v1/devices/{device}/config"): "operator",  # fleet: after the device exists
    ("POST", "/api/v1/devices/{device}/reboot"): "operator",
    ("PUT", "/api/v1/sites/{site}/config"): "operator",
    ("POST", "/api/v1/registry/devices/{device}/revoke"): "admin",
    ("POST", "/api/v1/markers"): "operator",
    ("DELETE", "/api/v1/markers/{marker_id}"): "operator",  # after the POST, on the id it made
    ("PUT", "/api/v1/benchmarks/active"): "admin",
    ("PUT", "/api/v1/northstar"): "admin",
    ("PUT", "/api/v1/targets"): "operator",
}
NOT_PEOPLE = {"/api/v1/ingest", "/api/v1/presence", "/api/v1/session", "/api/v1/people/accept",
              "/api/v1/people/reset", "/api/v1/people/reset-request"}  # fmt: skip
BODIES = {
    "assign": {"assignee": "bob"}, "comment": {"text": "seen"}, "close": {"note": "done"},
    "devices": {"site": "store-1", "device": "nps-new001"},
    "markers": {"at": 1_795_000_000, "title": "refit"},
    "config": {"set": {"timeouts": {"prompt_s": 20}}},
    "active": {"set": "enterprise_b2b"}, "northstar": {"metric": "answers"},
    "targets": {"target": 20},
    "bulk": {"ids": ["{alert_id}"], "action": "ack"}, "routing": {"assignee": "maria"},
    "people": {"email": "new@example.com", "role": "viewer"}, "{person_id}": {"notify": True},
}  # fmt: skip
RANK = ("viewer", "operator", "admin")


@pytest.fixture
def people(engine: Engine, tokens: dict[str, str]) -> dict[str, str]:
    """A token per role for every site, and an operator and a viewer and an admin of store-1."""
    with Session(engine) as s:
        return {
            "viewer": create_token(s, name="vera", role="viewer"),
            "operator": tokens["operator"],
            "admin": create_token(s, name="ada", role="admin"),
            "op-store-1": create_token(s, name="olly", role="operator", site="store-1"),
            "viewer-store-1": create_token(s, name="vic", role="viewer", site="store-1"),
            "admin-store-1": create_token(s, name="al", role="admin", site="store-1"),
            "viewer-store-2": create_token(s, name="val", role="viewer", site="store-2"),
        }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def two_sites(api: Api) -> dict[str, int]:
    """A detractor alert on store-1 and on store-2 (each through its own site's gateway)."""
    api.ingest([feedback("nps-aaa111", 1, 0, site="store-1"), telemetry("nps-aaa111", 2)])
    api.ingest([feedback("nps-bbb222", 1, 1, site="store-2")])
    alerts = api.get("/api/v1/alerts")["items"]
    return {a["site"]: a["id"] for a in alerts}


def write_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every state-changing route the API documents (the dashboard's pages are all GET)."""
    return {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path not in NOT_PEOPLE
        for method in item
        if method in ("post", "put", "patch", "delete")
    }


def call(client: TestClient, method: str, path: str, headers: dict[str, str], **ids: Any) -> Any:
    body = BODIES.get(path.rsplit("/", 1)[-1])
    if body is not None:  # ids known only now stand in the body as "{name}"
        body = json.loads(json.dumps(body).replace('"{alert_id}"', str(ids["alert_id"])))
    return client.request(method, path.format(**ids), json=body, headers=headers | ORIGIN)


def test_every_write_route_refuses_a_lower_role_with_403(
    app: FastAPI, api: Api, people: dict[str, str], engine: Engine
) -> None:
    assert write_routes(app) == set(WRITES), "a write route without a role in WRITES"
    ids: dict[str, Any] = {
        "alert_id": two_sites(api)["store-1"], "device": "nps-new001", "marker_id": 1,
        "site": "store-1",
    }  # fmt: skip
    with Session(engine) as s:
        ids["rule_id"] = add_rule(s, assignee="maria").id
        ids["person_id"] = add_person(s, email="pat@example.com", role="viewer").id
    for (method, path), needed in WRITES.items():
        for role in RANK[: RANK.index(needed)]:
            r = call(api.client, method, path, bearer(people[role]), **ids)
            assert r.status_code == 403, (role, method, path, r.text)
            assert f"a {role} cannot do this" in r.json()["detail"]
        # A gateway token is nobody's login: 401, as for no token at all.
        r = call(api.client, method, path, bearer(api.tokens["gateway"]), **ids)
        assert r.status_code == 401, (method, path, r.text)
        assert call(api.client, method, path, {}, **ids).status_code == 401
    # ... and the role that may, can (in this order: the device exists before its revoke).
    for (method, path), needed in WRITES.items():
        r = call(api.client, method, path, bearer(people[needed]), **ids)
        assert r.status_code in (200, 201, 204), (needed, method, path, r.text)
        if (method, path) == ("POST", "/api/v1/markers"):
            ids["marker_id"] = r.json()["id"]  # the DELETE after it removes this one


def test_the_same_by_the_dashboard_cookie(api: Api, people: dict[str, str]) -> None:
    aid = two_sites(api)["store-1"]
    viewer = api.client
    assert viewer.post("/api/v1/session", json={"token": people["viewer"]}).status_code == 200
    assert viewer.get("/api/v1/session").json() == {"name": "vera", "role": "viewer", "site": None}
    assert viewer.get(f"/api/v1/alerts/{aid}").status_code == 200
    r = viewer.post(f"/api/v1/alerts/{aid}/ack", headers=ORIGIN)
    assert r.status_code == 403 and "needs operator or admin" in r.json()["detail"]
    r = viewer.get("/api/v1/registry/devices")
    assert r.status_code == 403


def test_login_takes_people_only(api: Api, people: dict[str, str]) -> None:
    for role in ("viewer", "operator", "admin"):
        r = api.client.post("/api/v1/session", json={"token": people[role]}, headers=ORIGIN)
        assert r.status_code == 200 and r.json()["role"] == role
    r = api.client.post("/api/v1/session", json={"token": people["op-store-1"]}, headers=ORIGIN)
    assert r.json() == {"name": "olly", "role": "operator", "site": "store-1"}
    gateway = api.client.post(
        "/api/v1/session", json={"token": api.tokens["gateway"]}, headers=ORIGIN
    )
    assert gateway.status_code == 401


def test_a_site_limited_operator_cannot_read_or_act_on_another_site(
    api: Api, people: dict[str, str]
) -> None:
    alerts = two_sites(api)
    olly = bearer(people["op-store-1"])
    c = api.client

    def get(path: str, **params: Any) -> Any:
        return c.get(path, params=params, headers=olly)

    other = alerts["store-2"]
    assert get(f"/api/v1/alerts/{other}").status_code == 403
    for action in ("ack", "assign", "comment", "close"):
        r = c.post(f"/api/v1/alerts/{other}/{action}", json=BODIES.get(action), headers=olly)
        assert r.status_code == 403 and "limited to site store-1" in r.json()["detail"], action
    assert api.get(f"/api/v1/alerts/{other}")["status"] == "open"  # untouched
    assert c.post(f"/api/v1/alerts/{alerts['store-1']}/ack", headers=olly).status_code == 200

    for path in ("", "/gaps", "/telemetry"):
        assert get(f"/api/v1/devices/nps-bbb222{path}").status_code == 403, path
        assert get(f"/api/v1/devices/nps-aaa111{path}").status_code == 200, path
    for path in ("/api/v1/nps", "/api/v1/heatmap", "/api/v1/drivers", "/api/v1/feedback",
                 "/api/v1/export", "/api/v1/devices", "/api/v1/alerts"):  # fmt: skip
        r = get(path, site="store-2")
        assert r.status_code == 403, path
        if path not in ("/api/v1/devices", "/api/v1/alerts"):  # these have no device filter
            assert get(path, device="nps-bbb222").status_code == 403, path

    # Without a site filter, everything is store-1's alone.
    assert get("/api/v1/nps").json()["n"] == 1 == api.get("/api/v1/nps", site="store-1")["n"]
    assert api.get("/api/v1/nps")["n"] == 2
    assert [d["device"] for d in get("/api/v1/devices").json()] == ["nps-aaa111"]
    assert {a["site"] for a in get("/api/v1/alerts", status="all").json()["items"]} == {"store-1"}
    assert get("/api/v1/alerts", status="all").json()["counts"]["open"] == 0
    assert [i["site"] for i in get("/api/v1/feedback").json()["items"]] == ["store-1"]
    assert "nps-bbb222" not in get("/api/v1/export", format="json").text
    values = get("/api/v1/filters").json()
    assert values["sites"] == ["store-1"] and values["devices"] == ["nps-aaa111"]
    assert get("/api/v1/feedback", before="nps-bbb222:1").status_code == 404  # no probing
    # The unlimited operator sees both.
    assert {d["device"] for d in api.get("/api/v1/devices")} == {"nps-aaa111", "nps-bbb222"}


def test_a_revoked_token_stops_at_the_next_request(
    api: Api, engine: Engine, people: dict[str, str]
) -> None:
    c = api.client
    assert c.post("/api/v1/session", json={"token": people["viewer"]}).status_code == 200
    assert c.get("/api/v1/nps").status_code == 200
    assert c.get("/api/v1/nps", headers=bearer(people["admin"])).status_code == 200
    with Session(engine) as s:
        revoke_token(s, name="vera")
        revoke_token(s, name="ada")
    r = c.get("/api/v1/nps")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert c.get("/", follow_redirects=False).status_code == 303  # the pages too
    assert c.get("/api/v1/nps", headers=bearer(people["admin"])).status_code == 401
    c.cookies.clear()
    assert c.post("/api/v1/session", json={"token": people["viewer"]}).status_code == 401


def test_admins_register_list_and_revoke_devices(api: Api, people: dict[str, str]) -> None:
    c, ada = api.client, bearer(people["admin"])
    r = c.post("/api/v1/registry/devices", json={"site": "store-2"}, headers=ada)
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["device"].startswith("nps-") and added["username"] == added["device"]
    assert len(added["password"]) >= 32
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        stored = s.get(RegisteredDevice, added["device"])
        assert stored is not None and added["password"] not in stored.password_hash
        _, _, iterations, salt, _ = stored.password_hash.split("$")
        again = mosquitto_hash(
            added["password"], salt=base64.b64decode(salt), iterations=int(iterations)
        )
        assert again == stored.password_hash  # the shown password is the one the broker takes

    listed = c.get("/api/v1/registry/devices", headers=ada).json()
    assert [d["device"] for d in listed] == [added["device"]]
    assert "password" not in json.dumps(listed) and "$7$" not in json.dumps(listed)
    dup = c.post(
        "/api/v1/registry/devices", json={"site": "store-2", "device": added["device"]}, headers=ada
    )
    assert dup.status_code == 409
    bad = c.post("/api/v1/registry/devices", json={"site": "Store 2!"}, headers=ada)
    assert bad.status_code == 422

    # A store-1 admin: neither sees, adds to nor revokes store-2's.
    al = bearer(people["admin-store-1"])
    assert c.get("/api/v1/registry/devices", headers=al).json() == []
    r = c.post("/api/v1/registry/devices", json={"site": "store-2"}, headers=al)
    assert r.status_code == 403
    r = c.post(f"/api/v1/registry/devices/{added['device']}/revoke", headers=al)
    assert r.status_code == 403
    assert c.get("/api/v1/webhooks/deliveries", headers=al).status_code == 403

    revoked = c.post(f"/api/v1/registry/devices/{added['device']}/revoke", headers=ada)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert c.post("/api/v1/registry/devices/nps-nobody/revoke", headers=ada).status_code == 404


def test_a_site_limited_admin_cannot_register_another_sites_device(
    api: Api, people: dict[str, str]
) -> None:
    """Registering binds a device to a site ahead of where it was first seen: a store-1
    admin registering store-2's unregistered device would take it over (store-2's
    gateway refused, store-1's let in)."""
    assert (
        api.ingest([feedback("nps-bbb222", 1, 9, site="store-2")], gateway="gw-2")["accepted"] == 1
    )
    al = bearer(people["admin-store-1"])
    r = api.client.post(
        "/api/v1/registry/devices", json={"site": "store-1", "device": "nps-bbb222"}, headers=al
    )
    assert r.status_code == 403, r.text
    assert "store-2" in r.json()["detail"]
    out = api.ingest([feedback("nps-bbb222", 2, 9, site="store-2")], gateway="gw-2")
    assert out["accepted"] == 1  # store-2's gateway still speaks for it
    # An admin of every site may still move it (that is what registering is for).
    ada = bearer(people["admin"])
    r = api.client.post(
        "/api/v1/registry/devices", json={"site": "store-1", "device": "nps-bbb222"}, headers=ada
    )
    assert r.status_code == 201, r.text


def test_rejections_across_sites_are_listed_with_their_reason(
    api: Api, people: dict[str, str]
) -> None:
    api.ingest([feedback("nps-aaa111", 1, 9, site="store-1")])
    # store-2's gateway speaks for store-1's device: refused per event.
    out = api.ingest([feedback("nps-aaa111", 2, 9, site="store-2")], gateway="gw-2", site="store-2")
    assert out["accepted"] == 0 and out["rejected"][0]["error"].startswith("site:")
    got = api.get("/api/v1/rejections", reason_class="site")
    assert got["count"] == 1
    [item] = got["items"]
    assert (item["gateway"], item["site"], item["event_id"]) == ("gw-2", "store-2", "nps-aaa111:2")
    assert "first seen through site store-1" in item["error"]
    mine = api.client.get("/api/v1/rejections", headers=bearer(people["viewer-store-2"])).json()
    assert mine["count"] == 1
    theirs = api.client.get("/api/v1/rejections", headers=bearer(people["viewer-store-1"])).json()
    assert theirs == {"count": 0, "items": []}


@pytest.mark.slow
def test_the_live_stream_shows_only_the_callers_site_and_ends_on_revocation(
    app: FastAPI, api: Api, engine: Engine, people: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.2)  # the revocation check runs at each one
    gateways = {site: api.gateway_token("gw-1" if site == "store-1" else "gw-2", site)
                for site in ("store-1", "store-2")}  # fmt: skip
    with serve(app) as base:
        url = f"{base}/api/v1/stream"
        with httpx.stream("GET", url, headers=bearer(people["viewer-store-2"]), timeout=10) as r:
            lines = r.iter_lines()
            assert next(lines) == ": connected"
            for site, device in (("store-1", "nps-aaa111"), ("store-2", "nps-bbb222")):
                batch = {"gateway": "gw-1" if site == "store-1" else "gw-2",
                         "events": [feedback(device, 1, 0, site=site)]}  # fmt: skip
                sent = httpx.post(
                    f"{base}/api/v1/ingest", json=batch, headers=bearer(gateways[site])
                )
                assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text
            seen = sse_events(lines, 2)
            assert [(k, d["site"]) for k, d in seen] == [
                ("feedback", "store-2"),
                ("alert", "store-2"),
            ]
            with Session(engine) as s:
                revoke_token(s, name="val")
            rest = list(lines)  # the server ends the stream
            assert "event: revoked" in rest
