"""Month partitions of feedback and telemetry on PostgreSQL (server/db/partitions.py):
ids stay unique across partitions, nothing is rejected, retention drops whole months
and leaves the figures of the months it keeps (and the rollups) as they were."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session
from typer.testing import CliRunner

from nps_edge.cli import app as cli
from server.db.engine import WRITE, downgrade, make_engine, upgrade
from server.db.partitions import (
    Month,
    create_month,
    ensure_partitions,
    id_table,
    months,
    retention,
)
from server.db.sql import insert_all_new, table_of
from server.models import Feedback
from tests.server import test_figures_property as figures
from tests.server.factory import T0, Api, feedback, telemetry

pytestmark = pytest.mark.postgres

DAY = 86400.0
NOV = Month.of(T0)  # T0: 2026-11-18


@pytest.fixture
def db_url(postgres_url: str) -> str:
    """A database of its own, migrated (the shared one keeps partitions across tests)."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    return postgres_url


def where(engine: Engine, table: str, event_id: str) -> list[str]:
    """The partitions holding `event_id`, one per stored copy."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :i"), {"i": event_id}
            ).scalars()
        )


def test_upkeep_makes_only_the_missing_months(engine: Engine) -> None:
    with engine.connect() as conn:
        had = set(months(conn, "feedback"))  # made at migration: this month and 3 more
    wanted = [NOV.plus(i) for i in (-1, 0, 1)]
    made = ensure_partitions(engine, now=T0, back=1, ahead=1)
    missing = [m for m in wanted if m not in had]
    assert made == [m.name(t) for t in ("feedback", "telemetry") for m in missing]
    assert ensure_partitions(engine, now=T0, back=1, ahead=1) == []


def test_a_resent_id_whose_time_moves_to_another_month_is_stored_once(
    api: Api, engine: Engine
) -> None:
    ensure_partitions(engine, now=T0, back=1, ahead=1)
    late = T0 + 20 * DAY  # December: the first copy arrived late, through a slow gateway
    first = [feedback(seq=1, score=9, ts=None, rx_ts=late), telemetry(seq=2, ts=None, rx_ts=late)]
    assert api.ingest(first)["accepted"] == 2
    # The same events through another gateway that got them on time, between new ones
    # (so no lookup spots a resent batch first): without a clock on the device their
    # times are rebuilt from the earlier rx_ts, in November, another partition.
    again = [dict(ev, rx_ts=T0) for ev in first]
    news = [feedback(seq=3, ts=None, rx_ts=T0), feedback(seq=4, ts=None, rx_ts=T0)]
    got = api.ingest([news[0], *again, news[1]])
    assert got == {"accepted": 2, "duplicates": 2, "rejected": []}
    assert where(engine, "feedback", "nps-aaa111:3") == [NOV.name("feedback")]
    assert where(engine, "feedback", "nps-aaa111:1") == [Month.of(late).name("feedback")]
    assert where(engine, "telemetry", "nps-aaa111:2") == [Month.of(late).name("telemetry")]


def test_a_taken_id_fails_the_insert_whatever_its_time(engine: Engine) -> None:
    ensure_partitions(engine, now=T0, back=1, ahead=1)
    row = stored_row("nps-aaa111:1", T0)
    with Session(engine) as session:
        assert insert_all_new(session, [(table_of(Feedback), [row])])
        session.commit()
        other_month = row | {"t": T0 + 40 * DAY}
        assert not insert_all_new(session, [(table_of(Feedback), [other_month])])
    assert where(engine, "feedback", "nps-aaa111:1") == [NOV.name("feedback")]


def test_events_no_partition_covers_go_to_the_default_and_move_in_later(
    api: Api, engine: Engine
) -> None:
    old = 1_581_000_000.0  # 2020-02-06: plausible, and long before any partition
    assert api.ingest([feedback(seq=1, ts=old, rx_ts=T0)])["accepted"] == 1
    future = stored_row("nps-aaa111:2", 1_900_000_000.0)  # 2030: ingest would refuse it
    with Session(engine) as session:
        assert insert_all_new(session, [(table_of(Feedback), [future])])
        session.commit()
    assert where(engine, "feedback", "nps-aaa111:1") == ["feedback_default"]
    assert where(engine, "feedback", "nps-aaa111:2") == ["feedback_default"]
    with engine.begin() as conn:
        create_month(conn, "feedback", Month.of(old))
    assert where(engine, "feedback", "nps-aaa111:1") == ["feedback_y2020m02"]
    # Moved rows keep their ids taken.
    assert api.ingest([feedback(seq=1, ts=old, rx_ts=T0)])["duplicates"] == 1


def test_retention_drops_whole_old_months_and_keeps_the_figures(api: Api, engine: Engine) -> None:
    ensure_partitions(engine, now=T0, back=3, ahead=1)
    times = {NOV.plus(-2): T0 - 60 * DAY, NOV.plus(-1): T0 - 30 * DAY, NOV: T0}
    events = [
        feedback(seq=10 * i + k, score=(3 * i + k) % 11, ts=t + k * 3600)
        for i, t in enumerate(times.values())
        for k in range(1, 6)
    ]
    assert api.ingest(events)["accepted"] == len(events)
    kept = {"from": NOV.plus(-1).start, "to": NOV.end}
    everything = {"from": NOV.plus(-3).start, "to": NOV.end, "group_by": "day"}
    before = [api.get("/api/v1/nps", **kept), api.get("/api/v1/nps", **everything)]

    planned, _ = retention(engine, keep_months=1, now=T0, dry_run=True)
    assert {d.name for d in planned} == {"feedback_y2026m08", "feedback_y2026m09",
                                         "telemetry_y2026m08", "telemetry_y2026m09"}  # fmt: skip
    with engine.connect() as conn:
        assert NOV.plus(-2) in months(conn, "feedback")  # a dry run drops nothing
    dropped, stray = retention(engine, keep_months=1, now=T0)
    assert [(d.name, d.rows) for d in dropped if d.rows] == [("feedback_y2026m09", 5)]
    assert stray == 0
    with engine.connect() as conn:
        assert months(conn, "feedback")[0] == NOV.plus(-1)
        left = conn.exec_driver_sql("SELECT count(*) FROM feedback").scalar()
    assert left == 10
    # Whole days come from the rollups, which retention leaves: every figure stands.
    assert [api.get("/api/v1/nps", **kept), api.get("/api/v1/nps", **everything)] == before


def test_figures_equal_scratch_with_events_in_month_partitions(api: Api, engine: Engine) -> None:
    """The property test of every figure, its events in November's partition (the shared
    database of the other PostgreSQL tests only has partitions from the current month)."""
    ensure_partitions(engine, now=T0, back=1, ahead=1)
    figures.test_nps_equals_scratch_computation(api=api, engine=engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM feedback_default").scalar() == 0


def test_retention_command_says_what_it_drops_and_dry_run_drops_nothing(
    db_url: str, engine: Engine, sqlite_url: str
) -> None:
    with engine.begin() as conn:
        create_month(conn, "feedback", Month(2020, 1))
    runner = CliRunner()
    args = ["db", "retention", "--db", db_url, "--keep-months", "1"]
    planned = runner.invoke(cli, [*args, "--dry-run"])
    assert planned.exit_code == 0, planned.output
    assert "would drop feedback_y2020m01: feedback of 2020-01, 0 rows" in planned.stdout
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert "dropped feedback_y2020m01: feedback of 2020-01, 0 rows" in done.stdout
    with engine.connect() as conn:
        assert Month(2020, 1) not in months(conn, "feedback")
    unknown = runner.invoke(cli, [*args, "--table", "alert"])
    assert unknown.exit_code == 2
    assert "only feedback and telemetry are partitioned" in unknown.stderr
    refused = runner.invoke(cli, ["db", "retention", "--db", sqlite_url, "--keep-months", "1"])
    assert refused.exit_code == 2
    assert "needs PostgreSQL" in refused.stderr


def test_migration_keeps_rows_both_ways(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine, "0008")
    with Session(engine) as session:
        rows = [stored_row("nps-aaa111:1", T0), stored_row("nps-aaa111:2", T0 - 90 * DAY)]
        assert insert_all_new(session, [(table_of(Feedback), rows)])
        session.commit()
    upgrade(engine)
    assert where(engine, "feedback", "nps-aaa111:2") == [Month.of(T0 - 90 * DAY).name("feedback")]
    with Session(engine) as session:  # the ledger was filled from the rows copied in
        assert not insert_all_new(session, [(table_of(Feedback), rows[:1])])
    downgrade(engine, "0008")
    assert where(engine, "feedback", "nps-aaa111:1") == ["feedback"]
    with engine.connect() as conn:
        key = conn.exec_driver_sql(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'feedback_pkey'"
        ).scalar()
        assert conn.exec_driver_sql("SELECT count(*) FROM feedback").scalar() == 2
    assert key == "PRIMARY KEY (id)"
    engine.dispose()


def test_id_table_is_looked_up_once_per_engine_and_again_after_a_migration(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine, "0008")
    lookups: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "to_regclass" in statement:
            lookups.append(statement)

    def where_ids(on: Engine) -> str:
        with on.connect() as conn:
            return id_table(conn, "feedback")

    assert where_ids(engine) == "feedback"
    assert where_ids(engine.execution_options(**WRITE)) == "feedback"  # ingest's engine
    assert len(lookups) == 1
    upgrade(engine)  # partitions it: the ledger from now on
    assert where_ids(engine) == "feedback_ids"
    assert where_ids(engine) == "feedback_ids"
    assert len(lookups) == 2
    downgrade(engine, "0008")
    assert where_ids(engine) == "feedback"
    other = make_engine(postgres_url)  # another engine asks for itself
    assert where_ids(other) == "feedback"
    other.dispose()
    engine.dispose()


def stored_row(event_id: str, t: float) -> dict[str, Any]:
    device, seq = event_id.split(":")
    return {
        "id": event_id, "device": device, "site": "store-1", "seq": int(seq), "boot": 1,
        "up_ms": 1000, "ts": t, "rx_ts": t + 1, "fw": "1.0.0", "t": t, "time_source": "ts",
        "outcome": "answered", "score": 9, "category": "promoter", "prompt": "nps",
        "trigger_kind": "walkup", "trigger_ref": None, "reason": None, "answer_ms": 1500,
        "rssi": None, "battery_mv": None, "telemetry_id": None, "errors_24h": 0,
        "reboots_24h": 1, "offline_min_24h": 0.0, "rssi_band": "none", "battery_band": "none",
        "health": "healthy", "survey": "transactional", "role": None, "gateway": "gw-1",
    }  # fmt: skip
