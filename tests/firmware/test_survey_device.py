"""The NPS programme on a simulated device, end to end through the broker.

Sampling, throttling, expiry, the relationship calendar, roles and the voice QR
code; every event is checked against the contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
import zxingcpp
from sqlmodel import Session

from server.analytics import northstar
from server.db.engine import make_engine, upgrade
from server.ingest.batch import ingest_batch
from server.ingest.validation import StoredTelemetry, validate
from server.settings import Settings
from tests.firmware.test_qr import oled_image

T0 = 1793000000000  # unix ms at boot (scripted clock)
KEY = bytes(range(32))
BASE_URL = "http://10.0.0.5:8000"
DEVICE = "nps-a1b2c3"
PERSON = "9f86d081884c7d659a2feaa0c55ad015"
ROLES = {"end_user", "operator", "technician", "buyer", "sponsor"}  # contract additions, Dec 2026


def programme_config(config: Any, broker: Any) -> dict[str, Any]:
    return config(
        broker,
        reasons=[],
        sim={"start_ms": T0},
        sampling={
            "cycle_complete": {"every": 3},
            "badge": {"every": 1, "person_window_s": 3600},
            "*": {"every": 1},
        },
        survey={"relationship": {"every_days": 90, "role": "operator", "text": "Overall?"}},
        voice={"after": "detractor", "base_url": BASE_URL, "key": base64.b64encode(KEY).decode()},
    )


def link_for(seq: int) -> str:
    mac = hmac.new(KEY, f"{DEVICE}:{seq}".encode(), hashlib.sha256).digest()
    return f"{BASE_URL}/v/{DEVICE}/{seq}/" + base64.urlsafe_b64encode(mac[:8]).rstrip(b"=").decode()


@pytest.mark.slow
def test_programme_on_the_device(devices, config, mqtt_broker, subscriber, tmp_path) -> None:
    folder = devices.folder("d", programme_config(config, mqtt_broker))
    dev = devices.start(folder)
    dev.wait_for("acked t 1")
    # The wall clock is known at boot and no relationship answer exists: it is asked now.
    dev.wait_for("screen prompt")
    dev.send("turn 1", "turn -2", "press")  # 3: a detractor, so the one-time link follows
    dev.wait_for("saved f 2")
    dev.send(f"dump {tmp_path / 'qr.fb'}")
    dev.wait_for("dumped")
    found = zxingcpp.read_barcodes(oled_image((tmp_path / "qr.fb").read_bytes()))
    assert [r.text for r in found] == [link_for(2)]
    dev.send("press")  # any press dismisses the code

    t = T0 + 60_000
    now_s = t // 1000
    dev.send(
        f"at {t}",
        "trigger cycle_complete tx-1",  # transaction 0 of its kind: prompted
        "long",
        "trigger cycle_complete tx-2",  # sampled out
        "trigger cycle_complete tx-3",  # sampled out
        "trigger cycle_complete tx-4",  # prompted
        "long",
        f"trigger badge person={PERSON}",  # prompted
        "long",
        f"trigger badge person={PERSON}",  # throttled: the same person within the hour
        f"trigger service_visit ref=sv-1 at={now_s - 49 * 3600}",  # expired
        f"trigger service_visit ref=sv-2 role=technician at={now_s - 47 * 3600}",  # prompted
        "turn 1",
        "turn 4",
        "press",  # 9: a promoter, no link
        "trigger badge person=zz",  # a bad line: counted, never a prompt
        "telemetry",
    )
    events = subscriber.wait_for(lambda evs: sum(e["type"] == "telemetry" for e in evs) >= 2)
    feedback = [e for e in events if e["type"] == "feedback"]
    assert [(e["trigger"]["kind"], e["outcome"]) for e in feedback] == [
        ("schedule", "answered"),
        ("cycle_complete", "dismissed"),
        ("cycle_complete", "dismissed"),
        ("badge", "dismissed"),
        ("service_visit", "answered"),
    ]
    assert [e["trigger"]["ref"] for e in feedback[1:3]] == ["tx-1", "tx-4"]
    rel, promoter = feedback[0], feedback[-1]
    assert (rel["survey"], rel["role"], rel["score"]) == ("relationship", "operator", 3)
    assert (promoter["survey"], promoter["role"], promoter["score"]) == (
        "transactional",
        "technician",
        9,
    )
    for e in feedback:  # the contract's values, until contract/protocol.py checks them itself
        assert e["survey"] in ("transactional", "relationship")
        assert e["role"] is None or e["role"] in ROLES
    telemetry = [e for e in events if e["type"] == "telemetry"][-1]
    assert telemetry["sampling"] == {"sampled_out": 2, "throttled": 1, "expired": 1}
    # The server keeps them as the device sent them (they are not a contract field).
    good, bad, _ = validate([telemetry | {"rx_ts": now_s + 1.0}], now=now_s + 2.0)
    assert bad == [] and isinstance(good[0], StoredTelemetry)
    assert good[0].sampling == telemetry["sampling"]
    assert telemetry["errors"].get("input_unknown") == 1
    # Through the server's ingest, the north star counts the transactions, not the prompts:
    # 4 prompted (the relationship prompt is not a transaction) and the 4 not prompted.
    engine = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
    upgrade(engine)
    received = [e | {"rx_ts": now_s + 1.0} for e in events]
    out = ingest_batch(engine, gateway="gw-1", events=received, settings=Settings(), site=None,
                       now=now_s + 2.0)  # fmt: skip
    assert out.accepted == len(events) and not out.rejected
    with Session(engine) as session:
        week = northstar.weekly(session, northstar.Metric.TRANSACTIONS, site=None, weeks=2,
                                now=now_s + 2.0)[-1]  # fmt: skip
    engine.dispose()
    assert (week.value, week.unprompted) == (8, 4)
    dev.close_input()
    assert dev.wait() == 0
