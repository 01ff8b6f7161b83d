"""Times outside the plausible window are rebuilt, flagged and counted, not taken as sent.

Issue 12: a `ts` from 1970 or 2099 was stored as the answer's time (and rolled
up there). The window (docs/server.md): `ts` in [2020-01-01, rx_ts + 1 day],
`rx_ts` in [2020-01-01, server now + 1 day].
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session

from server.ingest import timebase
from server.models import Feedback
from tests.server.factory import T0, Api, feedback

Y1970, Y2099 = 0.0, 4_070_908_800.0


@pytest.mark.parametrize(
    ("ts", "rx_ts", "plausible"),
    [
        (T0, T0 + 1, True),
        (timebase.TS_MIN, T0, True),
        (timebase.TS_MIN - 1, T0, False),
        (T0 + 86_400, T0, True),  # a day ahead of the gateway: time zones, skew
        (T0 + 86_401, T0, False),
        (Y1970, T0, False),
        (Y2099, T0, False),
    ],
)
def test_the_window_for_ts(ts: float, rx_ts: float, plausible: bool) -> None:
    assert timebase.plausible_ts(ts, rx_ts) is plausible


def _rows(engine: Engine) -> dict[int, Feedback]:
    with Session(engine) as s:
        return {f.seq: f for f in s.execute(select(Feedback)).scalars()}


def _counted(client: TestClient, field: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^nps_edge_implausible_ts_total{{field="{field}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_implausible_ts_is_rebuilt_from_the_boot_and_counted(api: Api, engine: Engine) -> None:
    before = _counted(api.client, "ts")
    out = api.ingest(
        [
            feedback(seq=1, up_ms=10_000, ts=T0, rx_ts=T0 + 1),  # anchors the boot: T0 - 10
            feedback(seq=2, up_ms=20_000, ts=Y1970, rx_ts=T0 + 11),  # clock lost
            feedback(seq=3, up_ms=30_000, ts=Y2099, rx_ts=T0 + 21),  # clock far ahead
        ]
    )
    assert (out["accepted"], out["rejected"]) == (3, [])  # not dropped
    rows = _rows(engine)
    assert [(rows[s].t, rows[s].time_source) for s in (1, 2, 3)] == [
        (T0, "ts"), (T0 + 10, "boot"), (T0 + 20, "boot"),
    ]  # fmt: skip
    assert (rows[2].ts, rows[3].ts) == (Y1970, Y2099)  # kept as sent: the flag
    assert _counted(api.client, "ts") == before + 2


def test_an_implausible_ts_does_not_anchor_its_boot(api: Api, engine: Engine) -> None:
    """Alone in its boot, a 1970 `ts` leaves the estimate from `rx_ts`."""
    api.ingest([feedback(seq=1, up_ms=5_000, ts=Y1970, rx_ts=T0)])
    row = _rows(engine)[1]
    assert (row.t, row.time_source) == (T0, "rx")


def test_an_implausible_rx_ts_becomes_the_servers_receipt_time(api: Api, engine: Engine) -> None:
    before = _counted(api.client, "rx_ts")
    start = time.time()
    api.ingest([feedback(seq=1, up_ms=0, ts=None, rx_ts=Y2099)])
    row: Any = _rows(engine)[1]
    assert start <= row.rx_ts <= time.time()
    assert (row.time_source, row.t) == ("rx", row.rx_ts)
    assert _counted(api.client, "rx_ts") == before + 1


def test_a_presence_report_from_2099_does_not_freeze_the_device(api: Api) -> None:
    """The newest report is the device's state: a far-future one would win forever."""
    api.ingest([feedback(seq=1)])
    before = _counted(api.client, "presence.rx_ts")

    def report(online: bool, rx_ts: float) -> None:
        r = api.client.post(
            "/api/v1/presence",
            json={"gateway": "gw-1", "updates": [
                {"device": "nps-aaa111", "online": online, "rx_ts": rx_ts}
            ]},
            headers={"Authorization": f"Bearer {api.tokens['gateway']}"},
        )  # fmt: skip
        assert r.status_code == 200, r.text

    report(False, Y2099)  # taken as received now
    report(True, time.time() + 1)
    assert api.get("/api/v1/devices")[0]["online"] is True
    assert _counted(api.client, "presence.rx_ts") == before + 1
