"""Alembic migrations: up and down on SQLite and PostgreSQL, and the models match them."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlmodel import Session, SQLModel

import server.models  # noqa: F401
from server.analytics.figures import Filters, figures
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.db.engine import downgrade, make_engine, upgrade
from server.db.partitions import partition_names
from server.ingest.join import histories


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_upgrade_then_downgrade_leaves_nothing(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"feedback", "telemetry", "device", "alert", "rollup_fleet_day"} <= tables
    assert "event" not in tables  # the ledger went in 0003
    with engine.connect() as conn:
        extra = partition_names(conn)  # PostgreSQL's partitions and id ledgers (0011)
        opts = {"include_object": lambda o, name, kind, *_: _not_in(extra, o, name, kind)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)  # and up again from nothing
    assert "feedback" in inspect(engine).get_table_names()
    engine.dispose()


def _not_in(names: set[str], obj: Any, name: str | None, kind: str) -> bool:
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in names


def test_0002_fills_the_single_dimension_rollups_from_existing_counts(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine, "0001")
    dims = "device, site, prompt, trigger, fw, reason, rssi_band, battery_band, health"
    with engine.begin() as conn:
        for device, health, counts in (
            ("d1", "healthy", (3, 1, 1, 6)),
            ("d2", "faulty", (0, 1, 4, 5)),
        ):
            conn.exec_driver_sql(
                f"INSERT INTO rollup_full_day ({dims}, bucket, promoters, passives, detractors,"
                f" shown) VALUES (?, 's', 'nps', 'walkup', '1.0', '', 'ok', 'none', ?, 86400,"
                f" ?, ?, ?, ?)",
                (device, health, *counts),
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT health, promoters, passives, detractors, shown FROM rollup_by_health_day"
            " ORDER BY health"
        ).all()
        fw = conn.exec_driver_sql("SELECT fw, shown FROM rollup_by_fw_day").all()
    assert [tuple(r) for r in rows] == [("faulty", 0, 1, 4, 5), ("healthy", 3, 1, 1, 6)]
    assert [tuple(r) for r in fw] == [("1.0", 11)]
    engine.dispose()


def test_0003_down_rebuilds_the_ledger_from_stored_events(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    envelope = "device, site, seq, boot, up_ms, rx_ts, fw"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO device (id, site, fw, gateway, boot, first_seen, last_seen, max_seq,"
            " received, promoters, passives, detractors, shown) VALUES"
            " ('d1', 's', '1.0', 'gw-2', 1, 0, 0, 3, 2, 0, 0, 1, 1)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO feedback (id, {envelope}, t, time_source, outcome, score, category,"
            " prompt, trigger_kind, errors_24h, reboots_24h, offline_min_24h, rssi_band,"
            " battery_band, health, gateway) VALUES ('d1:1', 'd1', 's', 1, 1, 5, 10.5, '1.0',"
            " 10.5, 'ts', 'answered', 3, 'detractor', 'nps', 'walkup', 0, 0, 0, 'ok', 'ok',"
            " 'healthy', 'gw-1')"
        )
        conn.exec_driver_sql(
            f"INSERT INTO telemetry (id, {envelope}, t, errors, errors_total, errors_delta)"
            " VALUES ('d1:3', 'd1', 's', 3, 1, 9, 11.5, '1.0', 11.5, '{}', 0, 0)"
        )
    downgrade(engine, "0002")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, device, seq, type, rx_ts, gateway FROM event ORDER BY seq"
        ).all()
    assert [tuple(r) for r in rows] == [
        ("d1:1", "d1", 1, "feedback", 10.5, "gw-1"),
        ("d1:3", "d1", 3, "telemetry", 11.5, "gw-2"),
    ]
    upgrade(engine)
    assert "event" not in inspect(engine).get_table_names()
    engine.dispose()


def test_0004_leaves_room_on_rollup_pages_on_postgres(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)

    def options() -> set[tuple[str, object]]:
        with engine.connect() as conn:
            return {
                (name, tuple(opts or ()))
                for name, opts in conn.exec_driver_sql(
                    "SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'rollup_%%'"
                    " AND relkind = 'r'"
                )
            }

    got = options()
    assert len(got) == len(ROLLUP_TABLES) and {opts for _, opts in got} == {("fillfactor=70",)}
    downgrade(engine, "0003")
    assert {opts for _, opts in options()} == {()}
    engine.dispose()


def test_0005_keeps_revoked_tokens_revoked_both_ways(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO token (name, role, token_hash, created_at, revoked) VALUES"
            " ('old', 'gateway', 'h1', 100.0, 1), ('live', 'operator', 'h2', 200.0, 0)"
        )
    upgrade(engine)
    with engine.begin() as conn:
        rows = conn.exec_driver_sql(
            "SELECT name, site, revoked_at, last_used_at FROM token ORDER BY name"
        ).all()
        assert [tuple(r) for r in rows] == [("live", None, None, None), ("old", None, 100.0, None)]
        conn.exec_driver_sql("UPDATE token SET revoked_at = 300.0 WHERE name = 'live'")
    downgrade(engine, "0004")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, revoked FROM token ORDER BY name").all()
    assert [tuple(r) for r in rows] == [("live", 1), ("old", 1)]
    assert "registered_device" not in inspect(engine).get_table_names()
    engine.dispose()


def test_0006_counts_stored_answers_as_transactional_with_no_role(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine, "0005")
    dims = "device, site, prompt, trigger, fw, reason, rssi_band, battery_band, health"
    with engine.begin() as conn:
        for device, site, counts in (("d1", "s1", (3, 1, 1, 6)), ("d2", "s1", (0, 1, 4, 5))):
            for grain, bucket in (("hour", 3600), ("day", 0)):
                conn.exec_driver_sql(
                    f"INSERT INTO rollup_full_{grain} ({dims}, bucket, promoters, passives,"
                    f" detractors, shown) VALUES (?, ?, 'nps', 'walkup', '1.0', '', 'ok', 'none',"
                    f" 'healthy', ?, ?, ?, ?, ?)",
                    (device, site, bucket, *counts),
                )
                conn.exec_driver_sql(
                    f"INSERT INTO rollup_site_{grain} (site, bucket, promoters, passives,"
                    f" detractors, shown) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, bucket)"
                    f" DO UPDATE SET shown = rollup_site_{grain}.shown + excluded.shown,"
                    f" promoters = rollup_site_{grain}.promoters + excluded.promoters,"
                    f" passives = rollup_site_{grain}.passives + excluded.passives,"
                    f" detractors = rollup_site_{grain}.detractors + excluded.detractors",
                    (site, bucket, *counts),
                )
    upgrade(engine)
    with engine.connect() as conn:
        by_site = conn.exec_driver_sql(
            "SELECT site, survey, role, promoters, passives, detractors, shown"
            " FROM rollup_programme_day"
        ).all()
        full = conn.exec_driver_sql(
            "SELECT device, survey, role, shown FROM rollup_programme_full_hour ORDER BY device"
        ).all()
    assert [tuple(r) for r in by_site] == [("s1", "transactional", "", 3, 2, 5, 11)]
    assert [tuple(r) for r in full] == [
        ("d1", "transactional", "", 6),
        ("d2", "transactional", "", 5),
    ]
    downgrade(engine, "0005")
    assert "rollup_programme_day" not in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_0012_indexes_the_telemetry_rows_with_new_errors(
    kind: str, request: pytest.FixtureRequest
) -> None:
    engine = make_engine(
        request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    )
    upgrade(engine)

    def errors_index() -> list[str]:
        found = inspect(engine).get_indexes("telemetry")
        return [str(i["dialect_options"].get(f"{kind.replace('postgres', 'postgresql')}_where"))
                for i in found if i["name"] == "ix_telemetry_device_t_errors"]  # fmt: skip

    assert [w.strip("()") for w in errors_index()] == ["errors_delta > 0"]
    if kind == "postgres":  # the lookup's own statement takes it (its filter is a literal)
        session = Session(engine)
        partial = set(
            session.connection()
            .exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'telemetry%%'"
                " AND indexdef LIKE '%%WHERE (errors_delta > 0)'"
            )
            .scalars()
        )  # the partitioned table's and each partition's
        plans: list[str] = []
        event.listen(engine, "before_cursor_execute", _explained(plans))
        session.connection().exec_driver_sql("SET enable_seqscan = off")
        histories(session, {f"d{i}": (1000.0, 2000.0) for i in range(3)}, 600.0)
        session.close()
        used = {w for p in plans for w in p.split() if w in partial}
        assert len(plans) == 1 and used, (plans, partial)
    downgrade(engine, "0011")
    assert errors_index() == []
    engine.dispose()


def _explained(plans: list[str]) -> Any:
    """A cursor hook that keeps the plan of the error lookup before it runs."""

    def hook(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "errors_delta >" in statement and not statement.startswith("EXPLAIN"):
            cursor.execute(f"EXPLAIN {statement}", params)
            plans.append("\n".join(r[0] for r in cursor.fetchall()))

    return hook


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_0013_reads_full_from_programme_full_hours_and_rebuilds_it_down(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """`rollup_full_*` and `rollup_programme_full_day` go; the figures they served come from
    `rollup_programme_full_hour` (transactional rows, summed over role and hours), and a
    downgrade rebuilds the three tables from it."""
    engine = make_engine(
        request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    )
    upgrade(engine, "0012")
    dims = "device, site, prompt, trigger, fw, reason, rssi_band, battery_band, health"
    hours = [  # (survey, role, hour, counts): two hours of one day, and the next day
        ("transactional", "", 3600, (3, 1, 1, 6)),
        ("transactional", "buyer", 7200, (1, 0, 2, 3)),
        ("relationship", "buyer", 7200, (0, 0, 5, 5)),
        ("transactional", "", 86400 + 3600, (2, 0, 0, 2)),
    ]
    with engine.begin() as conn:
        for survey, role, hour, counts in hours:
            conn.exec_driver_sql(
                f"INSERT INTO rollup_programme_full_hour ({dims}, survey, role, bucket, promoters,"
                f" passives, detractors, shown) VALUES ('d1', 's', 'nps', 'walkup', '1.0', '',"
                f" 'ok', 'good', 'healthy', %s, %s, %s, %s, %s, %s, %s)".replace(
                    "%s", "?" if kind == "sqlite" else "%s"
                ),
                (survey, role, hour, *counts),
            )
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert not tables & {"rollup_full_hour", "rollup_full_day", "rollup_programme_full_day"}
    with Session(engine) as session:
        day = Filters(lo=0.0, hi=86400.0, device="d1", trigger="walkup")
        total, by_hour = figures(session, day, "hour")
    assert (total.promoters, total.passives, total.detractors, total.shown) == (4, 1, 3, 9)
    assert sorted(by_hour) == ["1970-01-01T01:00Z", "1970-01-01T02:00Z"]
    downgrade(engine, "0012")
    with engine.connect() as conn:
        full_day = conn.exec_driver_sql(
            "SELECT bucket, promoters, passives, detractors, shown FROM rollup_full_day"
            " ORDER BY bucket"
        ).all()
        full_hour = conn.exec_driver_sql("SELECT COUNT(*), SUM(shown) FROM rollup_full_hour").one()
        every_day = conn.exec_driver_sql(
            "SELECT bucket, survey, role, shown FROM rollup_programme_full_day"
            " ORDER BY bucket, survey, role"
        ).all()
    assert [tuple(r) for r in full_day] == [(0, 4, 1, 3, 9), (86400, 2, 0, 0, 2)]
    assert tuple(full_hour) == (3, 11)
    assert [tuple(r) for r in every_day] == [
        (0, "relationship", "buyer", 5),
        (0, "transactional", "", 6),
        (0, "transactional", "buyer", 3),
        (86400, "transactional", "", 2),
    ]
    engine.dispose()
