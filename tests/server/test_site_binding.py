"""Issue 12's attacks on gateway identity: another site's gateway, a borrowed name,
a revoked or a person's token. Each must be refused and leave the device as it was."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from server.identity.registry import add_device, revoke_device
from server.identity.tokens import create_token, digest, revoke_token
from server.ingest import batch as ingest
from server.metrics import Metrics
from server.models import DeadLetter, Device, Feedback, Token
from server.settings import Settings
from tests.server.factory import T0, Api, feedback, telemetry

X, Y = "store-1", "store-2"  # gw-1 (the `api` fixture's gateway token) is of store-1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def device(engine: Engine, device_id: str) -> Device | None:
    with Session(engine) as s:
        return s.get(Device, device_id)


def dead_letters(engine: Engine) -> list[tuple[str | None, str, str]]:
    with Session(engine) as s:
        rows = s.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars()  # type: ignore[arg-type]
        return [(d.event_id, d.reason_class, d.error) for d in rows]


def presence(api: Api, token: str, gateway: str, updates: list[dict[str, Any]]) -> Any:
    r = api.client.post(
        "/api/v1/presence",
        json={"gateway": gateway, "updates": updates},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.text
    return r.json()


def metrics(api: Api) -> Metrics:
    """The app's counters (its own registry, server/metrics.py)."""
    return api.client.app.state.metrics  # type: ignore[attr-defined]


def site_rejections(api: Api) -> float:
    return metrics(api).events_rejected.labels(reason="site")._value.get()


def test_another_sites_gateway_cannot_speak_for_a_registered_device(
    api: Api, engine: Engine
) -> None:
    with Session(engine) as s:
        add_device(s, site=X, device_id="nps-reg001")
    assert api.ingest([feedback("nps-reg001", 1, score=9, fw="1.0.0")])["accepted"] == 1
    before = device(engine, "nps-reg001")
    counted = site_rejections(api)
    # gw-y of store-2: the registered device's events (claiming either site), and one of
    # its own devices in the same batch, which must still be stored.
    out = api.ingest(
        [
            feedback("nps-reg001", 2, score=0, site=Y, fw="6.6.6"),
            telemetry("nps-reg001", 3, site=X),
            feedback("nps-own001", 1, site=Y),
        ],
        gateway="gw-y",
        site=Y,
    )
    assert (out["accepted"], out["duplicates"]) == (1, 0)  # each event counted once
    assert [(r["index"], r["id"]) for r in out["rejected"]] == [
        (0, "nps-reg001:2"), (1, "nps-reg001:3"),
    ]  # fmt: skip
    reason = (
        "site: device nps-reg001 is registered to site store-1, not store-2 (this gateway's site)"
    )
    assert {r["error"] for r in out["rejected"]} == {reason}
    assert dead_letters(engine) == [
        ("nps-reg001:2", "site", reason),
        ("nps-reg001:3", "site", reason),
    ]
    assert site_rejections(api) == counted + 2
    ignored = metrics(api).presence_ignored.labels(reason="site")._value.get()
    answer = presence(
        api, api.gateway_token("gw-y", Y), "gw-y",
        [{"device": "nps-reg001", "online": False, "fw": "6.6.6", "boot": 9, "rx_ts": T0 + 60},
         {"device": "nps-own001", "online": True, "fw": "2.0.0", "boot": 1, "rx_ts": T0 + 60}],
    )  # fmt: skip
    assert answer == {
        "accepted": 1,
        "ignored": [{"index": 0, "device": "nps-reg001", "error": reason}],
    }
    assert metrics(api).presence_ignored.labels(reason="site")._value.get() == ignored + 1
    after = device(engine, "nps-reg001")
    assert before is not None and after is not None
    assert (after.site, after.fw, after.online, after.max_seq, after.received) == (
        X, "1.0.0", None, 1, 1
    )  # fmt: skip
    assert device(engine, "nps-own001").online is True  # type: ignore[union-attr]
    # and its own site's gateway still may
    assert api.ingest([feedback("nps-reg001", 4, site=X)])["accepted"] == 1


def test_an_unregistered_device_is_bound_to_the_first_gateways_site(
    api: Api, engine: Engine
) -> None:
    assert api.ingest([feedback("nps-new001", 1, site=X)])["accepted"] == 1
    assert device(engine, "nps-new001").site == X  # type: ignore[union-attr]
    out = api.ingest([feedback("nps-new001", 2, site=Y, fw="6.6.6")], gateway="gw-y", site=Y)
    assert out["accepted"] == 0
    assert out["rejected"][0]["error"] == (
        "site: device nps-new001 was first seen through site store-1, not store-2"
        " (this gateway's site)"
    )
    answer = presence(
        api, api.gateway_token("gw-y", Y), "gw-y",
        [{"device": "nps-new001", "online": False, "fw": "6.6.6", "boot": 2, "rx_ts": T0 + 60}],
    )  # fmt: skip
    assert (
        answer["accepted"] == 0
        and "first seen through site store-1" in answer["ignored"][0]["error"]
    )
    dev = device(engine, "nps-new001")
    assert dev is not None and (dev.site, dev.fw, dev.online, dev.max_seq) == (X, "1.0.0", None, 1)


def test_an_event_claiming_another_site_is_refused_even_for_a_new_device(api: Api) -> None:
    hostile: list[Any] = [{"id": [1]}, {"id": {"a": 1}}, 7, None]  # ids that are no keys
    out = api.ingest(
        [*hostile, feedback("nps-new002", 1, site=Y), feedback("nps-new003", 1, site=X)],
        gateway="gw-1",
        site=X,
    )
    assert out["accepted"] == 1
    assert [r["index"] for r in out["rejected"]] == [0, 1, 2, 3, 4]
    assert out["rejected"][4] == {
        "index": 4, "id": "nps-new002:1",
        "error": "site: event says site store-2, not store-1 (this gateway's site)",
    }  # fmt: skip


def test_a_revoked_registered_device_is_refused(api: Api, engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        add_device(s, site=X, device_id="nps-rev001")
        revoke_device(s, device_id="nps-rev001")
    out = api.ingest([feedback("nps-rev001", 1), feedback("nps-ok0001", 1)])
    assert out["accepted"] == 1
    assert out["rejected"] == [
        {"index": 0, "id": "nps-rev001:1",
         "error": "device: revoked (nps-rev001 was revoked from the device registry)"}
    ]  # fmt: skip
    assert dead_letters(engine)[0][1] == "device"
    assert device(engine, "nps-rev001") is None


@pytest.mark.parametrize("path", ["/api/v1/ingest", "/api/v1/presence"])
def test_the_bodys_gateway_must_be_the_tokens_name(api: Api, path: str) -> None:
    body: dict[str, Any] = {"gateway": "gw-other"}
    body |= {"events": [feedback()]} if path.endswith("ingest") else {"updates": []}
    r = api.client.post(path, json=body, headers=bearer(api.tokens["gateway"]))
    assert r.status_code == 403
    assert "'gw-other'" in r.json()["detail"] and "'gw-1'" in r.json()["detail"]


def test_a_revoked_token_is_refused_on_the_next_request(api: Api, engine: Engine) -> None:
    with Session(engine) as s:
        token = create_token(s, name="gw-rev", role="gateway", site=X)
    body = {"gateway": "gw-rev", "events": [feedback(seq=1)]}
    assert api.client.post("/api/v1/ingest", json=body, headers=bearer(token)).status_code == 200
    with Session(engine) as s:
        revoke_token(s, name="gw-rev")
    r = api.client.post("/api/v1/ingest", json=body, headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_a_persons_token_cannot_ingest(api: Api, engine: Engine, role: str) -> None:
    with Session(engine) as s:
        token = create_token(s, name="gw-1", role=role, site=X)
    for path, body in (
        ("/api/v1/ingest", {"gateway": "gw-1", "events": [feedback()]}),
        ("/api/v1/presence", {"gateway": "gw-1", "updates": []}),
    ):
        r = api.client.post(path, json=body, headers=bearer(token))
        assert r.status_code == 401 and "needs a gateway token" in r.json()["detail"]
    assert device(engine, "nps-aaa111") is None


def test_a_siteless_gateway_token_from_before_sites_is_told_to_recreate_it(
    api: Api, engine: Engine
) -> None:
    with Session(engine) as s:  # as migration 0005 leaves a v1 gateway token
        s.add(Token(name="gw-old", role="gateway", token_hash=digest("npsg_old"), created_at=T0))
        s.commit()
    r = api.client.post(
        "/api/v1/ingest",
        json={"gateway": "gw-old", "events": [feedback()]},
        headers=bearer("npsg_old"),
    )
    assert r.status_code == 401 and "--site" in r.json()["detail"]


def test_last_use_is_recorded_at_most_once_a_minute(api: Api, engine: Engine) -> None:
    def last_used() -> float | None:
        with Session(engine) as s:
            row = s.execute(select(Token).where(Token.name == "gw-1")).scalar_one()  # type: ignore[arg-type]
            return row.last_used_at

    assert last_used() is None
    api.ingest([feedback(seq=1)])
    first = last_used()
    assert first is not None
    api.ingest([feedback(seq=2)])
    assert last_used() == first  # within the minute: not written again


def test_a_first_sighting_is_checked_again_under_the_write_lock(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite works a batch out before taking the write lock: a device first seen in it
    may have been bound by another site's batch meanwhile (here: inside that window)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL checks inside the write transaction")
    real_prepare = ingest.prepare

    def prepare_while_another_site_binds(*args: Any, **kw: Any) -> Any:
        monkeypatch.setattr(ingest, "prepare", real_prepare)
        other = ingest.ingest_batch(
            engine, gateway="gw-y", events=[feedback("nps-race01", 1, site=Y)],
            settings=settings, site=Y,
        )  # fmt: skip
        assert other.accepted == 1
        return real_prepare(*args, **kw)

    monkeypatch.setattr(ingest, "prepare", prepare_while_another_site_binds)
    out = ingest.ingest_batch(
        engine, gateway="gw-1", settings=settings, site=X,
        events=[feedback("nps-race01", 2, site=X), feedback("nps-race02", 1, site=X)],
    )  # fmt: skip
    assert out.accepted == 1
    assert [r.error for r in out.rejected] == [
        "site: device nps-race01 was first seen through site store-2, not store-1"
        " (this gateway's site)"
    ]
    dev = device(engine, "nps-race01")
    assert dev is not None and (dev.site, dev.max_seq) == (Y, 1)


def test_a_dashboard_session_dies_with_its_revoked_token(api: Api, engine: Engine) -> None:
    with Session(engine) as s:
        token = create_token(s, name="olga", role="operator")
    assert api.client.post("/api/v1/session", json={"token": token}).status_code == 200
    assert api.client.get("/api/v1/session").status_code == 200  # by the cookie
    with Session(engine) as s:
        revoke_token(s, name="olga")
    assert api.client.get("/api/v1/session").status_code == 401


def test_presence_from_another_site_before_the_first_event_does_not_count(
    api: Api, engine: Engine
) -> None:
    """A presence report for a device not bound yet binds nothing; once a gateway of
    another site binds it, that earlier report must not count for it: store-2's gateway
    saying store-1's device was offline for hours before its first answer would make
    it faulty in every figure joined to that answer."""
    answer = presence(
        api, api.gateway_token("gw-y", Y), "gw-y",
        [{"device": "nps-pre001", "online": False, "fw": "6.6.6", "boot": 1, "rx_ts": T0 - 10800}],
    )  # fmt: skip
    assert answer["accepted"] == 0 and "not bound to a site yet" in answer["ignored"][0]["error"]
    assert api.ingest([feedback("nps-pre001", 1, score=9, site=X)])["accepted"] == 1
    with Session(engine) as s:
        row = s.get(Feedback, "nps-pre001:1")
    assert row is not None and (row.offline_min_24h, row.health) == (0.0, "healthy"), answer
    dev = device(engine, "nps-pre001")
    assert dev is not None and (dev.site, dev.online, dev.fw) == (X, None, "1.0.0")
