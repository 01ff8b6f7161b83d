"""GET /api/v1/devices, /devices/{id}, /gaps, /telemetry and presence."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from server.identity.tokens import create_token
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


SAMPLING = {"sampled_out": 6, "throttled": 1, "expired": 0}


def _ignored(api: Api) -> float:
    text = api.client.get("/metrics").text
    found = re.search(r'^nps_edge_ingest_fields_ignored_total{field="sampling"} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_telemetry_keeps_the_devices_sampling_counters(api: Api, engine: Engine) -> None:
    """What the 1-in-k sampling left unasked reaches the operator (it was dropped before)."""
    api.ingest(
        [
            telemetry(seq=1, ts=T0, sampling=SAMPLING),
            telemetry(seq=2, ts=T0 + 60),  # firmware that sends none
            telemetry(seq=3, ts=T0 + 120, sampling={"sampled_out": 9}),
        ]
    )
    points = api.get("/api/v1/devices/nps-aaa111/telemetry")["points"]
    assert [p["sampling"] for p in points] == [SAMPLING, None, {"sampled_out": 9}]
    assert _ignored(api) == 0
    # Another site's viewer may not read them.
    with Session(engine) as s:
        other = create_token(s, name="vera", role="viewer", site="store-2")
    r = api.client.get(
        "/api/v1/devices/nps-aaa111/telemetry", headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 403 and "sampling" not in r.text


@pytest.mark.parametrize(
    "hostile",
    [
        "lots",
        [6, 1, 0],
        {"sampled_out": -1},
        {"sampled_out": True},
        {"sampled_out": 1.5},
        {"sampled_out": "6"},
        {"sampled_out": 2**53},
        {"s" * 33: 1},
        {"": 1},
        {"sampled\x00out": 1},
        {f"kind{i}": 1 for i in range(9)},
        {"sampled_out": {"nested": 1}},
    ],
)
def test_a_sampling_value_the_server_cannot_keep_is_dropped_and_counted(
    api: Api, hostile: Any
) -> None:
    """Not a contract field: the event and its health readings are stored without it."""
    before = _ignored(api)
    out = api.ingest([telemetry(seq=1, rssi=-48, sampling=hostile), feedback(seq=2)])
    assert (out["accepted"], out["rejected"]) == (2, [])
    [point] = api.get("/api/v1/devices/nps-aaa111/telemetry")["points"]
    assert (point["rssi"], point["sampling"]) == (-48, None)
    assert _ignored(api) == before + 1
