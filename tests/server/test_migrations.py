"""Alembic migrations: up and down on SQLite and PostgreSQL, and the models match them."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import server.models  # noqa: F401
import server.rollup_tables  # noqa: F401
from server.db import downgrade, make_engine, upgrade


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_upgrade_then_downgrade_leaves_nothing(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"feedback", "telemetry", "event", "device", "alert", "rollup_fleet_day"} <= tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)  # and up again from nothing
    assert "feedback" in inspect(engine).get_table_names()
    engine.dispose()


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
