"""The programme's routes (issue 15): band sets with their meaning, targets and gaps,
coverage by role per site, the north star; who may write, which site each sees, and
hostile values refused with a 4xx."""

from __future__ import annotations

import time

from server.analytics.northstar import week_start
from tests.server.factory import Api, as_, feedback


def test_band_sets_are_shipped_and_an_admin_alone_chooses(api: Api, people: dict[str, str]) -> None:
    c = api.client
    got = c.get("/api/v1/benchmarks", headers=as_(people["viewer"])).json()
    assert got["active"] == "consumer" and got["chosen_by"] is None
    b2b = next(s for s in got["sets"] if s["id"] == "enterprise_b2b")
    assert [(b["min"], b["label"]) for b in b2b["bands"]] == [
        (10, "strong"), (0, "doing well"), (-15, "missing follow-on sales"),
        (-35, "serious changes needed"), (None, "business at risk"),
    ]  # fmt: skip
    for who in ("viewer", "operator"):
        r = c.put(
            "/api/v1/benchmarks/active", json={"set": "enterprise_b2b"}, headers=as_(people[who])
        )
        assert r.status_code == 403, who
    for body in ({"set": "nope"}, {"set": "x" * 10_000}, {"set": 5}, {"set": "consumer", "x": 1}):
        r = c.put("/api/v1/benchmarks/active", json=body, headers=as_(people["admin"]))
        assert r.status_code == 422, body
    r = c.put(
        "/api/v1/benchmarks/active", json={"set": "enterprise_b2b"}, headers=as_(people["admin"])
    )
    assert r.status_code == 200 and r.json()["active"] == "enterprise_b2b"
    assert r.json()["chosen_by"] == "ada"


def test_target_gap_and_band_for_the_filter(api: Api, people: dict[str, str]) -> None:
    now = time.time()
    # store-1: 2 promoters, 1 passive, 2 detractors: NPS 0.
    scores = (10, 9, 8, 3, 0)
    api.ingest([feedback("nps-aaa111", i + 1, s, ts=now - 60) for i, s in enumerate(scores)])
    c = api.client
    r = c.put(
        "/api/v1/targets",
        json={"site": "store-1", "target": 20, "benchmark": 10, "benchmark_label": "category"},
        headers=as_(people["op-store-1"]),
    )
    assert r.status_code == 200 and r.json()["set_by"] == "olly"
    c.put("/api/v1/benchmarks/active", json={"set": "enterprise_b2b"}, headers=as_(people["admin"]))
    got = c.get("/api/v1/targets", params={"site": "store-1"}, headers=as_(people["viewer"])).json()
    assert got["figures"]["nps"] == 0.0
    assert got["band"]["label"] == "doing well" and "0 to +10" in got["band"]["meaning"]
    assert (got["gap_to_target"], got["gap_to_benchmark"]) == (-20.0, -10.0)
    assert got["target"]["benchmark_label"] == "category"
    # A site without its own target reads the fleet's.
    c.put("/api/v1/targets", json={"target": 5}, headers=as_(people["operator"]))
    other = c.get("/api/v1/targets", params={"site": "store-9"}, headers=as_(people["viewer"]))
    assert other.json()["target"]["target"] == 5 and other.json()["gap_to_target"] is None
    history = c.get(
        "/api/v1/targets/history", params={"site": "store-1"}, headers=as_(people["viewer"])
    ).json()
    assert [(h["target"], h["set_by"]) for h in history] == [(20, "olly")]


def test_targets_refuse_the_wrong_role_site_and_hostile_values(
    api: Api, people: dict[str, str]
) -> None:
    c = api.client
    put = lambda body, who: c.put("/api/v1/targets", json=body, headers=as_(people[who]))  # noqa: E731
    assert put({"target": 10}, "viewer").status_code == 403
    assert put({"target": 10, "site": "store-2"}, "op-store-1").status_code == 403
    assert put({"target": 10}, "op-store-1").status_code == 403  # the fleet is not its site
    for body in (
        {"target": 101}, {"target": -1e308}, {"benchmark": "high"}, {"site": "../x"},
        {"survey": "weekly"}, {"benchmark_label": "x" * 65}, {"target": 1, "extra": True},
        {"site": "s" * 65},
    ):  # fmt: skip
        assert put(body, "operator").status_code == 422, body
    r = c.post("/api/v1/targets", content=b"\xff\x00not json", headers=as_(people["operator"]))
    assert 400 <= r.status_code < 500
    r = c.get(
        "/api/v1/targets/history", params={"site": "store-1"}, headers=as_(people["viewer-store-2"])
    )
    assert r.status_code == 403


def test_coverage_names_the_missing_roles_and_keeps_to_the_callers_site(
    api: Api, people: dict[str, str]
) -> None:
    now = time.time()
    api.ingest([
        feedback("nps-aaa111", 1, 9, ts=now - 60, role="operator", survey="relationship"),
        feedback("nps-aaa111", 2, 3, ts=now - 60, role="technician"),
        feedback("nps-aaa111", 3, 7, ts=now - 60),
    ])  # fmt: skip
    api.ingest([feedback("nps-bbb222", 1, 10, ts=now - 60, site="store-2", role="end_user")])
    c = api.client
    got = c.get("/api/v1/coverage", headers=as_(people["viewer"])).json()
    cells = {(x["site"], x["role"]): x for x in got["cells"]}
    assert cells[("store-1", "operator")]["surveys"]["relationship"]["n"] == 1
    assert cells[("store-1", "operator")]["surveys"]["transactional"]["n"] == 0
    assert cells[("store-1", "technician")]["answered"] == 1
    assert cells[("store-1", None)]["answered"] == 1
    assert "store-1 has no answers from buyers this quarter" in got["missing"]
    assert "store-2 has no answers from technicians this quarter" in got["missing"]
    assert not any(m.startswith("store-2 has no answers from end users") for m in got["missing"])
    bound = c.get("/api/v1/coverage", headers=as_(people["viewer-store-2"])).json()
    assert {x["site"] for x in bound["cells"]} == {"store-2"}
    assert all(m.startswith("store-2 ") for m in bound["missing"])
    r = c.get("/api/v1/coverage", params={"site": "store-1"}, headers=as_(people["viewer-store-2"]))
    assert r.status_code == 403
    assert c.get("/api/v1/coverage").status_code == 401
    r = c.get("/api/v1/coverage", params={"from": "yesterday"}, headers=as_(people["viewer"]))
    assert r.status_code == 422


def test_north_star_counts_transactions_on_healthy_devices_per_week(
    api: Api, people: dict[str, str]
) -> None:
    now = time.time()
    this_week = week_start(now)
    t = this_week - 3 * 86400 + 3600  # in last week
    api.ingest([
        feedback("nps-aaa111", 1, 9, ts=t),  # healthy, a transaction: counted
        feedback("nps-aaa111", 2, None, ts=t + 1),  # shown, not answered: still a transaction
        feedback("nps-aaa111", 3, 9, ts=t + 2, kind="walkup"),  # no transaction
        feedback("nps-aaa111", 4, 9, ts=t + 3, battery_mv=3100),  # faulty device
        feedback("nps-aaa111", 5, 9, ts=t + 4, survey="relationship"),  # not a transaction
    ])  # fmt: skip
    c = api.client
    got = c.get("/api/v1/northstar", params={"weeks": 4}, headers=as_(people["viewer"])).json()
    assert got["metric"]["id"] == "healthy_transactions"
    assert [w["value"] for w in got["weeks"]] == [0, 0, 2, 0]
    assert [w["complete"] for w in got["weeks"]] == [True, True, True, False]
    assert got["change_pct"] is None  # the week before had none
    r = c.put("/api/v1/northstar", json={"metric": "answers"}, headers=as_(people["operator"]))
    assert r.status_code == 403
    for body in ({"metric": "revenue"}, {"metric": None}, {}):
        assert (
            c.put("/api/v1/northstar", json=body, headers=as_(people["admin"])).status_code == 422
        )
    assert (
        c.put(
            "/api/v1/northstar", json={"metric": "transactions"}, headers=as_(people["admin"])
        ).status_code
        == 200
    )
    got = c.get("/api/v1/northstar", params={"weeks": 4}, headers=as_(people["viewer"])).json()
    assert [w["value"] for w in got["weeks"]] == [0, 0, 3, 0]
    for weeks in ("0", "1000", "many"):
        r = c.get("/api/v1/northstar", params={"weeks": weeks}, headers=as_(people["viewer"]))
        assert r.status_code == 422
    bound = c.get("/api/v1/northstar", headers=as_(people["viewer-store-2"])).json()
    assert bound["site"] == "store-2" and sum(w["value"] for w in bound["weeks"]) == 0


def test_the_overview_call_holds_every_panel_and_keeps_to_the_site(
    api: Api, people: dict[str, str]
) -> None:
    now = time.time()
    api.ingest([
        feedback("nps-aaa111", 1, 10, ts=now - 60, role="end_user"),
        feedback("nps-aaa111", 2, 2, ts=now - 60, role="sponsor", survey="relationship"),
    ])  # fmt: skip
    api.ingest([feedback("nps-bbb222", 1, 0, ts=now - 60, site="store-2", role="end_user")])
    c = api.client
    got = c.get("/api/v1/programme", headers=as_(people["viewer"])).json()
    assert got["standing"]["figures"]["n"] == 2  # transactional, both sites
    assert got["relationship"]["n"] == 1 and got["relationship"]["nps"] == -100.0
    assert [g["key"] for g in got["relationship"]["groups"]] == ["sponsor"]
    assert {g["key"] for g in got["roles"]["groups"]} == {"end_user"}
    assert got["bands"]["active"] == "consumer" and got["northstar"]["weeks"]
    assert {c["site"] for c in got["coverage"]["cells"]} == {"store-1", "store-2"}
    bound = c.get("/api/v1/programme", headers=as_(people["viewer-store-2"])).json()
    assert bound["standing"]["figures"]["nps"] == -100.0 and bound["relationship"]["n"] == 0
    assert {c["site"] for c in bound["coverage"]["cells"]} == {"store-2"}
    assert bound["northstar"]["site"] == "store-2"
    r = c.get(
        "/api/v1/programme", params={"site": "store-1"}, headers=as_(people["viewer-store-2"])
    )
    assert r.status_code == 403
    r = c.get("/api/v1/programme", params={"role": "boss"}, headers=as_(people["viewer"]))
    assert r.status_code == 422
