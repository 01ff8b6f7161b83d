"""POST /api/v1/ingest against the contract: every rejection, duplicates, auth, size, shape."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from psycopg.errors import NotNullViolation
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from contract.protocol import MAX_BODY_BYTES
from server.analytics import rollups
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.db.engine import write_session
from server.db.sql import insert_all_new, table_of
from server.ingest import batch as ingest
from server.ingest import join
from server.ingest.prepare import fact
from server.models import DeadLetter, Feedback, Telemetry
from server.settings import Settings
from tests.server.factory import T0, Api, feedback, telemetry

# (mutation, field the error must name): one per rule of the contract.
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("v is 2", {"v": 2}, "v"),
    ("id not device:seq", {"id": "nps-aaa111:999"}, "id"),
    ("id not a string", {"id": 5}, "id"),
    ("device pattern", {"device": "NPS_BAD", "id": "NPS_BAD:1"}, "device"),
    ("site pattern", {"site": "Store 1"}, "site"),
    ("seq zero", {"seq": 0, "id": "nps-aaa111:0"}, "seq"),
    ("seq a string", {"seq": "1"}, "seq"),
    ("boot negative", {"boot": -1}, "boot"),
    ("up_ms a float", {"up_ms": 1.5}, "up_ms"),
    ("ts a string", {"ts": "1795000000"}, "ts"),
    ("ts infinite-ish", {"ts": 1e300}, "ts"),
    ("fw missing", {"fw": None}, "fw"),
    ("type unknown", {"type": "status"}, "type"),
    ("outcome unknown", {"outcome": "skipped"}, "outcome"),
    ("score true", {"score": True}, "score"),
    ("score 7.0", {"score": 7.0}, "score"),
    ("score '7'", {"score": "7"}, "score"),
    ("score 11", {"score": 11}, "score"),
    ("score -1", {"score": -1}, "score"),
    ("score missing when answered", {"score": None}, "score"),
    ("score present on timeout", {"outcome": "timeout"}, "score"),
    ("trigger not an object", {"trigger": "walkup"}, "trigger"),
    ("trigger kind not a string", {"trigger": {"kind": 3}}, "trigger"),
    ("answer_ms negative", {"answer_ms": -5}, "answer_ms"),
    ("ctx rssi a float", {"ctx": {"rssi": -50.5, "battery_mv": None}}, "ctx"),
    ("rx_ts missing", {"rx_ts": None}, "rx_ts"),
    ("seq beyond 2^53", {"seq": 2**60, "id": f"nps-aaa111:{2**60}"}, "seq"),
]


def test_each_contract_violation_rejects_that_event_only(api: Api, engine: Engine) -> None:
    """One batch: every bad event between two good ones; each bad one is named and kept."""
    batch: list[dict[str, Any]] = []
    for k, (_, change, _) in enumerate(BAD):
        seq = 1000 + 3 * k
        batch.append(feedback(seq=seq, score=9))
        batch.append(feedback(seq=seq + 1) | change)
    batch.append(feedback(seq=5000, score=0))
    out = api.ingest(batch)
    assert out["accepted"] == len(BAD) + 1
    assert out["duplicates"] == 0
    rejected = {r["index"]: r for r in out["rejected"]}
    assert sorted(rejected) == [2 * k + 1 for k in range(len(BAD))]
    for k, (name, _, field) in enumerate(BAD):
        rej, sent = rejected[2 * k + 1], batch[2 * k + 1]
        assert field in rej["error"], (name, rej["error"])
        assert rej["id"] == (sent["id"] if isinstance(sent["id"], str) else None), name
    with Session(engine) as s:
        letters = s.execute(select(DeadLetter).order_by(DeadLetter.index)).scalars().all()  # type: ignore[arg-type]
        assert [(d.index, d.error) for d in letters] == [
            (i, rejected[i]["error"]) for i in sorted(rejected)
        ]
        assert json.loads(letters[0].payload)["v"] == 2
    figures = api.get("/api/v1/nps")
    assert (figures["promoters"], figures["detractors"]) == (len(BAD), 1)


def test_telemetry_violations_and_non_objects(api: Api) -> None:
    out = api.ingest(
        [
            telemetry(seq=1, battery_mv=cast(Any, "3.9V")),  # wrong types on purpose
            telemetry(seq=2, errors=cast(Any, {"wifi": 1.5})),
            "not an object",
            {"v": 1},
            telemetry(seq=5),
        ]
    )
    assert out["accepted"] == 1
    errors = {r["index"]: r["error"] for r in out["rejected"]}
    assert "battery_mv" in errors[0]
    assert "errors" in errors[1]
    assert "JSON object" in errors[2]
    assert "type" in errors[3]


def test_unknown_fields_are_accepted_and_ignored(api: Api) -> None:
    out = api.ingest(
        [feedback(seq=1, colour="blue", ctx={"rssi": -50, "battery_mv": None, "x": 1})]
    )
    assert out == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_resending_a_batch_returns_duplicates_and_counts_once(api: Api, engine: Engine) -> None:
    batch = [feedback(seq=i, score=i % 11) for i in range(1, 21)] + [telemetry(seq=21)]
    assert api.ingest(batch)["accepted"] == 21
    again = api.ingest(batch)
    assert again == {"accepted": 0, "duplicates": 21, "rejected": []}
    within = api.ingest([feedback(seq=30), feedback(seq=30)])
    assert within == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert api.get("/api/v1/nps")["shown"] == 21
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Feedback)).scalar_one() == 21
        assert s.execute(select(func.count()).select_from(Telemetry)).scalar_one() == 1


def test_a_resent_batch_is_not_worked_out_again(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway resends a batch whose answer it missed: the stored events are found by
    one lookup, and only the events that are new are worked out."""
    worked_out: list[list[str]] = []
    real = ingest.prepare

    def counting(session: Any, events: list[Any], **kw: Any) -> Any:
        worked_out.append([ev.id for ev in events])
        return real(session, events, **kw)

    monkeypatch.setattr(ingest, "prepare", counting)
    batch = [feedback(seq=i, score=i % 11) for i in range(1, 11)] + [telemetry(seq=11)]
    assert api.ingest(batch)["accepted"] == 11
    assert api.ingest(batch) == {"accepted": 0, "duplicates": 11, "rejected": []}
    grown = [*batch, feedback(seq=12, score=3)]  # resent with one more event
    assert api.ingest(grown) == {"accepted": 1, "duplicates": 11, "rejected": []}
    assert worked_out == [[ev["id"] for ev in batch], ["nps-aaa111:12"]]
    assert api.get("/api/v1/nps")["shown"] == 11


def _telemetry_row(seq: int, **change: Any) -> dict[str, Any]:
    return {
        "id": f"d1:{seq}", "device": "d1", "site": "s", "seq": seq, "boot": 1, "up_ms": seq,
        "rx_ts": T0, "fw": "1.0", "t": T0, "errors": {}, "errors_total": 0, "errors_delta": 0,
    } | change  # fmt: skip


def test_insert_all_new_writes_all_or_nothing_and_only_a_taken_key_is_a_duplicate(
    engine: Engine,
) -> None:
    table = table_of(Telemetry)
    with write_session(engine) as s:
        assert insert_all_new(s, [(table, [_telemetry_row(1), _telemetry_row(2)])])
        # One taken key: neither row of the call stays, the first call's rows do.
        assert not insert_all_new(s, [(table, [_telemetry_row(2), _telemetry_row(3)])])
        # Any other fault is not a duplicate: it is raised.
        with pytest.raises((IntegrityError, NotNullViolation)):
            insert_all_new(s, [(table, [_telemetry_row(4, site=None)])])
        s.commit()
    with Session(engine) as s:
        stored = s.execute(select(table.c.seq).order_by(table.c.seq)).scalars().all()
    assert stored == [1, 2]


def test_a_taken_key_that_no_stored_id_explains_is_raised_not_retried_forever(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "_store_events", lambda session, plan: False)
    with pytest.raises(RuntimeError, match="no event id is stored"):
        ingest.ingest_batch(
            engine, gateway="gw-1", events=[feedback(seq=1)], settings=settings, site="store-1"
        )


def test_a_batch_mixing_good_bad_and_duplicate_events(api: Api) -> None:
    api.ingest([feedback(seq=1, score=10)])
    out = api.ingest(
        [feedback(seq=1, score=10), feedback(seq=2, score=True), feedback(seq=3, score=0)]
    )
    assert out["accepted"] == 1 and out["duplicates"] == 1
    assert [r["index"] for r in out["rejected"]] == [1]
    figures = api.get("/api/v1/nps")
    assert (figures["promoters"], figures["detractors"], figures["n"]) == (1, 1, 2)


def _post(client: TestClient, body: bytes | str, token: str | None, **headers: str) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/api/v1/ingest", content=body, headers=headers)


def test_missing_wrong_or_operator_token_is_401(api: Api) -> None:
    body = json.dumps({"gateway": "gw-1", "events": [feedback()]})
    for token in (None, "npsg_not-a-real-token", api.tokens["operator"]):
        r = _post(api.client, body, token)
        assert r.status_code == 401
        assert r.json()["detail"]
    assert api.get("/api/v1/nps")["shown"] == 0


def test_too_large_is_413(api: Api) -> None:
    gw = api.tokens["gateway"]
    big = json.dumps({"gateway": "gw-1", "events": [feedback(seq=1, pad="x" * MAX_BODY_BYTES)]})
    r = _post(api.client, big, gw)
    assert r.status_code == 413 and "2 MiB" in r.json()["detail"]
    many = json.dumps({"gateway": "gw-1", "events": [feedback(seq=i) for i in range(1, 1002)]})
    r = _post(api.client, many, gw)
    assert r.status_code == 413 and "1000" in r.json()["detail"]
    assert api.get("/api/v1/nps")["shown"] == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{not json", "not JSON"),
        ("[]", "IngestRequest"),
        ('{"events": []}', "gateway"),
        ('{"gateway": "gw-1", "events": {}}', "events"),
        ('{"gateway": "", "events": []}', "gateway"),
    ],
)
def test_a_body_of_the_wrong_shape_is_422(api: Api, body: str, says: str) -> None:
    r = _post(api.client, body, api.tokens["gateway"], **{"Content-Type": "application/json"})
    assert r.status_code == 422
    assert says in r.json()["detail"]


def test_time_rebuilt_from_boot_anchor_and_rx_ts(api: Api) -> None:
    # Boot 2 has one event with ts: it anchors the boot start for the others.
    api.ingest(
        [
            feedback(seq=1, boot=2, up_ms=10_000, ts=T0 + 10.0, score=9),
            feedback(seq=2, boot=2, up_ms=7_210_000, ts=None, rx_ts=T0 + 9000, score=0),
        ]
    )
    # Boot 3 has none: start <= min(rx_ts - up_ms); the newest event lands at its rx_ts.
    api.ingest(
        [
            feedback(seq=3, boot=3, up_ms=1_000, ts=None, rx_ts=T0 + 20_000, score=5),
            feedback(seq=4, boot=3, up_ms=3_601_000, ts=None, rx_ts=T0 + 23_600, score=10),
        ]
    )
    items = {i["id"]: i["ts"] for i in api.get("/api/v1/feedback", limit=10)["items"]}
    assert items["nps-aaa111:2"] == pytest.approx(T0 + 7210.0)
    assert items["nps-aaa111:3"] == pytest.approx(T0 + 20_000 - 0.0)
    assert items["nps-aaa111:4"] == pytest.approx(T0 + 23_600)


def test_a_worse_anchor_never_replaces_a_better_one_in_sql(api: Api, engine: Engine) -> None:
    """The boot upsert applies timebase.merge in SQL, for writers racing on one boot."""
    from server.db.sql import table_of, upsert
    from server.ingest.batch import _merge_boot
    from server.models import BootRecord

    api.ingest([feedback(seq=1, boot=4, up_ms=5_000, ts=T0)])  # exact: start = T0 - 5
    row = {"device": "nps-aaa111", "boot": 4, "errors_max": 0}
    with Session(engine) as s:
        for worse in (
            {"start": T0 - 100.0, "exact": False, "anchor_up_ms": 0},  # an estimate
            {"start": T0 - 50.0, "exact": True, "anchor_up_ms": 1_000},  # an older clock
        ):
            upsert(s, table_of(BootRecord), [row | worse], ("device", "boot"), _merge_boot)
        s.commit()
        boot = s.get(BootRecord, ("nps-aaa111", 4))
        assert boot is not None and (boot.start, boot.exact) == (T0 - 5.0, True)
        newer = {"start": T0 - 7.0, "exact": True, "anchor_up_ms": 9_000}
        upsert(s, table_of(BootRecord), [row | newer], ("device", "boot"), _merge_boot)
        s.commit()
        s.refresh(boot)
        assert boot.start == T0 - 7.0


def _history(device: str, site: str) -> list[dict[str, Any]]:
    """Telemetry with errors, three boots (one without a clock) and answers between them.

    Clocks agree with uptimes (boot 3 starts at T0 + 299.5), so no later anchor moves
    an earlier event's time, which would make batching matter by the time rule.
    """
    kw: dict[str, Any] = {"device": device, "site": site}
    # ctx empty: the join fills it from telemetry
    quiet: dict[str, Any] = {"rssi": None, "battery_mv": None}
    return [
        telemetry(seq=1, ts=T0, rssi=-80, battery_mv=3300, errors={"i2c": 1}, **kw),
        feedback(seq=2, score=9, up_ms=61_000, ts=T0 + 60, **quiet, **kw),
        telemetry(seq=3, boot=2, up_ms=1000, ts=T0 + 120, rssi=-82, errors={"i2c": 2}, **kw),
        feedback(seq=4, score=3, boot=2, up_ms=61_000, ts=T0 + 180, **quiet, **kw),
        telemetry(seq=5, boot=3, up_ms=500, ts=None, rx_ts=T0 + 300, errors={"i2c": 5}, **kw),
        feedback(seq=6, score=5, boot=3, up_ms=2000, ts=None, rx_ts=T0 + 302, **quiet, **kw),
        feedback(seq=7, score=1, boot=3, up_ms=100_500, ts=T0 + 400, rssi=-50, **kw),
        *(feedback(seq=s, score=s - 8, boot=3, up_ms=s * 60_000 - 299_500, ts=T0 + 60 * s, **kw)
          for s in (8, 9, 10)),
    ]  # fmt: skip


def test_health_join_and_alerts_do_not_depend_on_batching(api: Api, engine: Engine) -> None:
    """A device's history sent as one batch or one event at a time is stored alike: the
    batch's own telemetry and boots take part in its joins, its answers in the site check."""
    api.ingest(_history("nps-one111", "site-one"))
    for event in _history("nps-each11", "site-each"):
        api.ingest([event])

    def rows(device: str) -> list[dict[str, Any]]:
        with Session(engine) as s:
            same_device = table_of(Feedback).c.device == device
            found = s.execute(select(Feedback).where(same_device)).scalars()
            # time_source says "boot" where the batch held a clocked event of that boot
            out = [f.model_dump(exclude={"device", "site", "id", "time_source"}) for f in found]
        for r in out:
            r["telemetry_id"] = (r["telemetry_id"] or "").rpartition(":")[2]
        return sorted(out, key=lambda r: r["seq"])

    one, each = rows("nps-one111"), rows("nps-each11")
    assert one == each
    by_seq = {r["seq"]: r for r in one}
    assert (by_seq[2]["rssi_band"], by_seq[2]["battery_band"], by_seq[2]["errors_24h"]) == (
        "weak", "critical", 1,
    )  # fmt: skip
    assert (by_seq[4]["telemetry_id"], by_seq[4]["errors_24h"], by_seq[4]["reboots_24h"]) == (
        "3", 3, 2,
    )  # fmt: skip
    assert by_seq[6]["t"] == pytest.approx(T0 + 301.5)
    assert (by_seq[6]["errors_24h"], by_seq[6]["reboots_24h"]) == (8, 3)
    assert by_seq[7]["rssi_band"] == "strong"  # the event's own reading wins

    alerts = api.get("/api/v1/alerts", limit=100)["items"]
    kinds = {
        site: sorted(a["kind"] for a in alerts if a["site"] == site)
        for site in ("site-one", "site-each")
    }
    assert kinds["site-one"] == kinds["site-each"]
    assert kinds["site-one"].count("site_nps") == 1 and kinds["site-one"].count("battery") == 1
    for group in ("health", "rssi_band", "battery_band"):
        figures = [
            api.get("/api/v1/nps", group_by=group, site=s) for s in ("site-one", "site-each")
        ]
        assert figures[0]["groups"] == figures[1]["groups"]


def _shifted(events: list[dict[str, Any]], by_s: float) -> list[dict[str, Any]]:
    return [
        ev | {"rx_ts": ev["rx_ts"] + by_s, "ts": None if ev.get("ts") is None else ev["ts"] + by_s}
        for ev in events
    ]


def test_a_backlog_spread_over_days_joins_as_each_event_alone(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose answers span more than two days (a gateway's backlog after an
    outage) reads each device's stored history in its own span (`join._each_span`), not
    one range for all; its joins are those of the same answers sent one at a time."""
    days = 3 * 86400.0
    spans: list[int] = []
    each_span = join._each_span

    def counted(
        by_device: dict[str, tuple[float, float]], back: Mapping[str, float]
    ) -> join.Within:
        spans.append(len(by_device))
        return each_span(by_device, back)

    monkeypatch.setattr(join, "_each_span", counted)

    def backlog(old: str, new: str, site: str) -> tuple[list[dict[str, Any]], ...]:
        events = _history(old, site) + _shifted(_history(new, site), days)
        return tuple([e for e in events if (e["type"] == "telemetry") == tel] for tel in (1, 0))

    readings, answers = backlog("nps-old111", "nps-new111", "site-one")
    api.ingest(readings)  # stored first: the answers' joins read them from the database
    api.ingest(answers)
    assert spans == [2]  # one batch, its two devices each in their own span
    readings, answers = backlog("nps-old222", "nps-new222", "site-two")
    for event in readings + answers:
        api.ingest([event])
    assert spans == [2]  # an answer sent alone is recent: one range

    def joined(device: str) -> list[tuple[Any, ...]]:
        with Session(engine) as s:
            found = s.execute(select(Feedback).where(table_of(Feedback).c.device == device))
            return sorted(
                (f.seq, f.t, f.rssi_band, f.battery_band, f.errors_24h, f.reboots_24h,
                 f.health, (f.telemetry_id or "").rpartition(":")[2])
                for f in found.scalars()
            )  # fmt: skip

    for batched, alone in (("nps-old111", "nps-old222"), ("nps-new111", "nps-new222")):
        assert joined(batched) == joined(alone)
        assert len(joined(batched)) == 7
    assert [r[4:6] for r in joined("nps-new111") if r[0] == 6] == [(8, 3)]


def test_every_rollup_table_equals_the_python_reference(api: Api, engine: Engine) -> None:
    """What ingest adds in SQL (rollups.rollup_sql) equals rollups.aggregate over the rows
    stored, table by table, for answers spread over days, hours and dimensions."""
    rng = random.Random(5)
    events = [
        feedback(
            device=f"nps-dev{d:03d}", seq=s, score=rng.choice([None, *range(11)]),
            ts=T0 + rng.uniform(0, 3 * 86400), site=f"site-{d % 3}", fw=rng.choice(["1.0", "1.1"]),
            kind=rng.choice(["walkup", "refill"]), rssi=rng.choice([None, -50, -70, -90]),
            reason=rng.choice([None, "slow"]), up_ms=s,
        )
        for d in range(6) for s in range(1, 41)
    ]  # fmt: skip
    for start in range(0, len(events), 70):
        api.ingest(events[start : start + 70])
    expected = _rollups_equal_the_reference(engine, 240)
    assert len(expected[("programme_full", rollups.HOUR)]) > 100


def test_rollups_of_a_fleet_batch_equal_the_python_reference(api: Api, engine: Engine) -> None:
    """A fleet-shaped batch: many devices, one answer each, in one hour and a few
    dimension values, so the cuboids without the device sum several devices per row
    (on PostgreSQL from the batch's counts summed over devices first, `rollups.condensed_sql`)."""
    rng = random.Random(6)
    events = [
        feedback(device=f"nps-fleet{d:03d}", seq=1, score=rng.choice([None, 3, 8, 10]),
                 ts=T0 + d, site=f"site-{d % 2}", kind=rng.choice(["walkup", "refill"]))
        | ({"survey": "relationship"} if d % 7 == 0 else {})
        for d in range(120)
    ]  # fmt: skip
    api.ingest(events)
    expected = _rollups_equal_the_reference(engine, 120)
    assert max(c[3] for c in expected[("fleet", rollups.HOUR)].values()) > 90


def _rollups_equal_the_reference(engine: Engine, count: int) -> dict[Any, Any]:
    """Every rollup table equals `rollups.aggregate` of the `count` stored feedback rows;
    that reference."""
    with Session(engine) as s:
        stored = [r._asdict() for r in s.execute(select(table_of(Feedback)))]
        expected = rollups.aggregate([fact(r) for r in stored])
        for (name, grain), table in ROLLUP_TABLES.items():
            dims = dict(rollups.CUBOIDS)[name]
            got = {
                (*(r[d] for d in dims), r["bucket"]): [r[c] for c in rollups.COUNTS]
                for r in s.execute(table.select()).mappings()
            }
            assert got == expected[(name, grain)], table.name
    assert len(stored) == count
    return expected
