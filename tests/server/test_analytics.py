"""Heat map, drivers (with the significance test), filters, feedback pages and export."""

from __future__ import annotations

import csv
import io
import json

from contract.nps import Tally, compare
from tests.server.factory import T0, Api, feedback


def _fleet(api: Api) -> None:
    # strong Wi-Fi: 30 promoters, 10 detractors; weak Wi-Fi: 8 promoters, 32 detractors.
    evs = [feedback(seq=i, score=10 if i <= 30 else 2, rssi=-50) for i in range(1, 41)]
    evs += [
        feedback("nps-bbb222", i, 9 if i <= 8 else 0, rssi=-90, ts=T0 + 3600 * 26)
        for i in range(1, 41)
    ]
    api.ingest(evs)


def test_drivers_compare_each_band_with_the_largest(api: Api) -> None:
    _fleet(api)
    features = {f["feature"]: f for f in api.get("/api/v1/drivers")["features"]}
    rssi = features["rssi_band"]
    assert [g["key"] for g in rssi["groups"]] == ["strong", "weak"]
    [cmp] = rssi["comparisons"]
    expected = compare(Tally(8, 0, 32, 40), Tally(30, 0, 10, 40))
    assert (cmp["a"], cmp["b"]) == ("weak", "strong")  # a tie in size: first in band order
    assert cmp["diff"] == round(expected.diff or 0, 2) == -110.0
    assert cmp["significant"] is True and cmp["p"] < 0.001
    assert features["health"]["groups"][0]["key"] == "healthy"


def test_two_sample_test_is_not_significant_for_small_equal_groups() -> None:
    c = compare(Tally(3, 1, 2, 6), Tally(2, 2, 2, 6))
    assert c.significant is False and c.p is not None and c.p > 0.5
    assert compare(Tally(), Tally(1, 0, 0, 1)).z is None


def test_heatmap_has_168_cells_in_utc(api: Api) -> None:
    _fleet(api)
    cells = api.get("/api/v1/heatmap")["cells"]
    assert len(cells) == 168
    # T0 is Wednesday 11:06 UTC; T0 + 26 h is Thursday 13:06 UTC.
    busy = {(c["weekday"], c["hour"]): (c["n"], c["nps"]) for c in cells if c["n"]}
    assert busy == {(2, 11): (40, 50.0), (3, 13): (40, -60.0)}


def test_filters_list_the_values_seen(api: Api) -> None:
    api.ingest(
        [feedback(seq=1, kind="walkup", prompt="service"), feedback("nps-bbb222", 1, site="b")]
    )
    values = api.get("/api/v1/filters")
    assert values["sites"] == ["b", "store-1"]
    assert values["triggers"] == ["cycle_complete", "walkup"]
    assert values["prompts"] == ["nps", "service"]
    assert values["devices"] == ["nps-aaa111", "nps-bbb222"]


def test_feedback_pages_newest_first(api: Api) -> None:
    api.ingest([feedback(seq=i, score=i % 11, ts=T0 + i) for i in range(1, 8)])
    first = api.get("/api/v1/feedback", limit=3)["items"]
    assert [i["id"] for i in first] == ["nps-aaa111:7", "nps-aaa111:6", "nps-aaa111:5"]
    nxt = api.get("/api/v1/feedback", limit=3, before=first[-1]["id"])["items"]
    assert [i["id"] for i in nxt] == ["nps-aaa111:4", "nps-aaa111:3", "nps-aaa111:2"]
    assert first[0]["category"] == "passive" and first[0]["rssi_band"] == "strong"


def test_export_streams_every_matching_row_with_health(api: Api) -> None:
    api.ingest([feedback(seq=i, score=i % 11, ts=T0 + i) for i in range(1, 6)])
    api.ingest([feedback("nps-bbb222", 1, 3, site="other")])
    r = api.client.get(
        "/api/v1/export",
        params={"format": "csv", "site": "store-1"},
        headers={"Authorization": f"Bearer {api.tokens['operator']}"},
    )
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["id"] for row in rows] == [f"nps-aaa111:{i}" for i in range(1, 6)]
    assert rows[0]["health"] == "healthy" and rows[0]["errors_24h"] == "0"
    # ISO 8601 UTC first (T0 + 1 is 2026-11-18T11:06:41Z), unix seconds kept beside.
    assert list(rows[0])[:2] == ["time", "rx_time"]
    assert (rows[0]["time"], float(rows[0]["ts"])) == ("2026-11-18T11:06:41Z", T0 + 1)
    assert rows[0]["rx_time"] == "2026-11-18T11:06:42Z"
    r = api.client.get(
        "/api/v1/export",
        params={"format": "json"},
        headers={"Authorization": f"Bearer {api.tokens['operator']}"},
    )
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 6 and lines[0]["device"] == "nps-bbb222"  # oldest first
