"""Markers (release markers derived from the data, events operators record) and the
before/after comparison behind them; people may read and write, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest

from contract.nps import Tally, compare
from server.analytics.markers import first_seen
from tests.server.factory import T0, Api, feedback

DAY = 86400.0


def call(api: Api, token: str, method: str, path: str, **kw: Any) -> Any:
    return api.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)


def test_release_is_a_version_first_seen_after_the_data_began() -> None:
    rows = [("a", "1.4", 100.0), ("b", "1.4", 200.0), ("a", "1.5", 500.0), ("b", "1.5", 300.0)]
    assert first_seen(rows) == {"1.5": 300.0}
    assert first_seen([]) == {}


def _history(api: Api) -> None:
    """store-1 on 1.0.0 for two days, then 1.1.0 (worse); store-2 stays on 1.0.0."""
    evs = [feedback(seq=i, score=10 if i % 4 else 5, ts=T0 + i * 3000) for i in range(1, 50)]
    evs += [
        feedback(seq=i, score=3 if i % 4 else 9, ts=T0 + 2 * DAY + i * 3000, fw="1.1.0")
        for i in range(50, 100)
    ]
    evs += [feedback("nps-bbb222", i, 9, ts=T0 + i * 5000, site="store-2") for i in range(1, 40)]
    api.ingest(evs)


def test_markers_list_releases_and_recorded_events(api: Api, people: dict[str, str]) -> None:
    _history(api)
    r = call(
        api,
        people["operator"],
        "POST",
        "/api/v1/markers",
        json={"at": T0 + DAY, "site": "store-1", "title": "Door moved", "note": "by the till"},
    )
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["kind"] == "event" and event["created_by"] == "otto" and event["id"] >= 1
    call(
        api, people["operator"], "POST", "/api/v1/markers", json={"at": T0, "title": "Price change"}
    )
    fleet = api.get("/api/v1/markers")
    releases = [m for m in fleet if m["kind"] == "release"]
    assert [(m["fw"], m["site"]) for m in releases] == [("1.1.0", None)]
    assert releases[0]["at"] == (T0 + 2 * DAY + 50 * 3000) // 3600 * 3600  # its first hour
    assert [m["title"] for m in fleet if m["kind"] == "event"] == ["Price change", "Door moved"]
    store2 = api.get("/api/v1/markers", site="store-2")
    assert [m["title"] for m in store2] == ["Price change"]  # no release there, fleet event
    windowed = api.get("/api/v1/markers", **{"from": str(T0 + DAY / 2)})
    assert [m["title"] for m in windowed][0] == "Door moved"


def test_before_after_uses_the_same_test_as_the_drivers(api: Api) -> None:
    _history(api)
    at = (T0 + 2 * DAY + 50 * 3000) // 3600 * 3600
    got = api.get("/api/v1/compare", at=str(at), window_s=str(5 * DAY), site="store-1")
    before, after = Tally(*_counts(got["before"])), Tally(*_counts(got["after"]))
    assert before.n == 49 and after.n == 50
    assert got["diff"] == round(compare(after, before).diff or 0, 2) < -50
    assert got["significant"] is True


def _counts(f: dict[str, Any]) -> tuple[int, int, int, int]:
    return f["promoters"], f["passives"], f["detractors"], f["shown"]


def test_viewers_read_operators_write_and_sites_stay_apart(
    api: Api, people: dict[str, str]
) -> None:
    body = {"at": T0, "site": "store-2", "title": "Refit"}
    assert call(api, people["viewer"], "POST", "/api/v1/markers", json=body).status_code == 403
    assert call(api, people["op-store-1"], "POST", "/api/v1/markers", json=body).status_code == 403
    own = call(api, people["op-store-1"], "POST", "/api/v1/markers", json={"at": T0, "title": "x"})
    assert own.status_code == 201 and own.json()["site"] == "store-1"  # forced to its site
    other = call(api, people["operator"], "POST", "/api/v1/markers", json=body).json()
    fleetwide = call(
        api, people["operator"], "POST", "/api/v1/markers", json={"at": T0, "title": "all"}
    ).json()
    seen = call(api, people["viewer-store-2"], "GET", "/api/v1/markers").json()
    assert {m["title"] for m in seen} == {"Refit", "all"}
    assert (
        call(
            api, people["viewer-store-2"], "GET", "/api/v1/markers", params={"site": "store-1"}
        ).status_code
        == 403
    )
    for target in (other["id"], fleetwide["id"]):
        r = call(api, people["op-store-1"], "DELETE", f"/api/v1/markers/{target}")
        assert r.status_code == 403, r.text
    assert (
        call(api, people["viewer"], "DELETE", f"/api/v1/markers/{other['id']}").status_code == 403
    )
    assert (
        call(api, people["operator"], "DELETE", f"/api/v1/markers/{other['id']}").status_code == 204
    )
    assert (
        call(api, people["operator"], "DELETE", f"/api/v1/markers/{other['id']}").status_code == 404
    )
    assert api.client.get("/api/v1/markers").status_code == 401
    # before/after of another site: refused like /nps; the own site's: answered
    params = {"at": str(T0), "site": "store-1"}
    assert (
        call(api, people["viewer-store-2"], "GET", "/api/v1/compare", params=params).status_code
        == 403
    )
    mine = call(api, people["viewer-store-2"], "GET", "/api/v1/compare", params={"at": str(T0)})
    assert mine.status_code == 200 and mine.json()["before"]["n"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"at": T0, "title": ""},
        {"at": T0, "title": "x" * 121},
        {"at": T0, "title": "bell\x07"},
        {"at": T0, "title": "ok", "site": "../etc"},
        {"at": T0, "title": "ok", "site": "x" * 65},
        {"at": 1e30, "title": "ok"},
        {"at": "yesterday", "title": "ok"},
        {"at": T0, "title": "ok", "note": "n" * 2001},
        {"title": "no time"},
        [1, 2, 3],
    ],
)
def test_hostile_marker_bodies_are_422(api: Api, people: dict[str, str], body: Any) -> None:
    r = call(api, people["operator"], "POST", "/api/v1/markers", json=body)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "params",
    [
        {"at": "soon"},
        {"at": "1e30"},
        {"at": str(T0), "window_s": "0"},
        {"at": str(T0), "window_s": "1e12"},
        {},
    ],
)
def test_bad_compare_parameters_are_422(api: Api, params: dict[str, str]) -> None:
    r = call(api, api.tokens["operator"], "GET", "/api/v1/compare", params=params)
    assert r.status_code == 422, r.text


def test_bad_marker_ids_are_422(api: Api, people: dict[str, str]) -> None:
    for bad in ("0", "-1", "abc", str(2**31), str(2**63)):
        assert call(api, people["operator"], "DELETE", f"/api/v1/markers/{bad}").status_code == 422
