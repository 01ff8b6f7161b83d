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
