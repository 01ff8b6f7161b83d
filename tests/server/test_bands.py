"""`GET /api/v1/bands`: the health bands' one table (server/ingest/health.py), served to people."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from server.identity.tokens import create_token
from server.ingest import health
from tests.server.factory import Api


def expected() -> dict[str, Any]:
    """health.py's table, written out by hand in the answer's shape."""

    def reading(b: health.Bands) -> dict[str, Any]:
        rows = [{"band": name, "min": floor} for name, floor in b.floors]
        return {"unit": b.unit, "bands": [*rows, {"band": b.below, "min": None}]}

    def state(name: str, lim: health.Limits) -> dict[str, Any]:
        return {
            "state": name, "errors": lim.errors, "reboots": lim.reboots,
            "offline_min": lim.offline_min, "rssi_bands": list(lim.rssi_bands),
            "battery_bands": list(lim.battery_bands),
        }  # fmt: skip

    return {
        "rssi": reading(health.RSSI),
        "battery_mv": reading(health.BATTERY),
        "health": [state("faulty", health.FAULTY), state("degraded", health.DEGRADED)],
    }


def test_bands_answer_the_health_table_to_a_viewer(api: Api, engine: Engine) -> None:
    with Session(engine) as s:
        viewer = create_token(s, name="vera", role="viewer")
    r = api.client.get("/api/v1/bands", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200, r.text
    assert r.json() == expected()
    # The served thresholds are the ones the bands are computed with.
    assert r.json()["rssi"]["bands"][0] == {"band": "strong", "min": -60}
    assert [b["band"] for b in r.json()["battery_mv"]["bands"]] == list(health.BATTERY_BANDS[:-1])


def test_bands_need_a_person(api: Api) -> None:
    assert api.client.get("/api/v1/bands").status_code == 401
    gateway = {"Authorization": f"Bearer {api.tokens['gateway']}"}
    assert api.client.get("/api/v1/bands", headers=gateway).status_code == 401
