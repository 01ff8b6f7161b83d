"""GET /api/v1/devices, /devices/{id}, /gaps, /telemetry and presence."""

from __future__ import annotations

from tests.server.factory import T0, Api, feedback, telemetry


def test_gaps_list_every_seq_never_received(api: Api) -> None:
    api.ingest([feedback(seq=s) for s in (3, 4, 7, 10)] + [telemetry(seq=11)])
    gaps = api.get("/api/v1/devices/nps-aaa111/gaps")
    assert gaps == {
        "device": "nps-aaa111",
        "max_seq": 11,
        "received": 5,
        "missing": [[1, 2], [5, 6], [8, 9]],
    }
    api.ingest([feedback(seq=s) for s in (1, 2, 5, 6, 8, 9)])
    assert api.get("/api/v1/devices/nps-aaa111/gaps")["missing"] == []


def test_device_rows_carry_contract_fields(api: Api) -> None:
    api.ingest(
        [
            feedback("nps-bbb222", 1, 10, site="store-2"),
            feedback("nps-bbb222", 2, 0, site="store-2"),
            telemetry("nps-bbb222", 4, ts=T0 + 60, site="store-2", rssi=-70, battery_mv=3600),
            feedback("nps-aaa111", 1, 9, fw="2.0.0"),
        ]
    )
    rows = {r["device"]: r for r in api.get("/api/v1/devices")}
    b = rows["nps-bbb222"]
    assert set(b) == {
        "device",
        "site",
        "fw",
        "online",
        "last_seen",
        "battery_mv",
        "rssi",
        "nps",
        "n",
        "missing",
    }
    assert (b["site"], b["n"], b["nps"], b["missing"]) == ("store-2", 2, 0.0, 1)
    assert (b["rssi"], b["battery_mv"]) == (-70, 3600)
    assert rows["nps-aaa111"]["fw"] == "2.0.0"
    detail = api.get("/api/v1/devices/nps-bbb222")
    assert (
        detail["gateway"] == "gw-1" and detail["boot"] == 1 and detail["first_seen"] == T0
    )  # first event's time, not its receipt
    points = api.get("/api/v1/devices/nps-bbb222/telemetry")["points"]
    assert [p["rssi"] for p in points] == [-70]


def test_unknown_device_is_404_with_a_message(api: Api) -> None:
    for path in ("", "/gaps", "/telemetry"):
        r = api.client.get(
            f"/api/v1/devices/nps-nobody{path}",
            headers={"Authorization": f"Bearer {api.tokens['operator']}"},
        )
        assert r.status_code == 404
        assert "nps-nobody" in r.json()["detail"]


def test_presence_sets_online_state(api: Api) -> None:
    api.ingest([feedback(seq=1)])
    r = api.client.post(
        "/api/v1/presence",
        json={"gateway": "gw-1", "updates": [
            {"device": "nps-aaa111", "online": True, "fw": "1.0.0", "boot": 1, "rx_ts": T0},
            {"device": "nps-aaa111", "online": False, "fw": None, "boot": None, "rx_ts": T0 + 5},
        ]},
        headers={"Authorization": f"Bearer {api.tokens['gateway']}"},
    )  # fmt: skip
    assert r.json() == {"accepted": 2, "ignored": []}
    assert api.get("/api/v1/devices")[0]["online"] is False


def test_the_device_list_follows_the_filters_of_nps(api: Api) -> None:
    """NPS and n per device are those of the window asked for, as `GET /api/v1/nps` has
    them; a device without answers there is still listed, with n 0."""
    api.ingest([feedback(seq=i, score=10, ts=T0 - 10 * 86400 + i) for i in range(1, 5)])
    api.ingest([feedback(seq=i, score=0, ts=T0 + i) for i in range(5, 7)])
    api.ingest([feedback("nps-bbb222", 1, 9, ts=T0 - 10 * 86400)])
    rows = {r["device"]: r for r in api.get("/api/v1/devices", **{"from": str(T0 - 3600)})}
    assert (rows["nps-aaa111"]["n"], rows["nps-aaa111"]["nps"]) == (2, -100.0)
    assert (rows["nps-bbb222"]["n"], rows["nps-bbb222"]["nps"]) == (0, None)
    window = api.get("/api/v1/nps", device="nps-aaa111", **{"from": str(T0 - 3600)})
    assert window["n"] == 2 and window["nps"] == -100.0
    everything = {r["device"]: r["n"] for r in api.get("/api/v1/devices")}
    assert everything == {"nps-aaa111": 6, "nps-bbb222": 1}
