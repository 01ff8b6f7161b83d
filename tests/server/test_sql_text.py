"""The SQL text the server writes itself: quoted names, ON CONFLICT and rollup statements."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.orm import Session

from server.analytics.rollups import DAY, HOUR, rollup_sql
from server.db.sql import conflict_clause, quote, quoted, upsert

ODD = Table(
    'we"ird',
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("n", Integer),
    Column('la"bel', String),
)


def _add_n(c: Any, x: Any) -> dict[str, Any]:
    return {'la"bel': x['la"bel'], "n": c.n + x.n + 1}


def test_quote_wraps_a_name_in_double_quotes() -> None:
    assert quote("feedback") == '"feedback"'
    assert quoted(["device", "boot"]) == '"device", "boot"'


def test_quote_doubles_an_embedded_quote() -> None:
    assert quote('we"ird') == '"we""ird"'
    assert quote('"') == '""""'


def test_quote_refuses_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote("bad\0name")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_conflict_clause_from_the_key_and_the_updated_columns(dialect: str) -> None:
    # Assignments in the table's column order, whatever the order `updates` gives.
    assert conflict_clause(ODD, dialect, ("id",), _add_n) == (
        'ON CONFLICT ("id") DO UPDATE SET "n" = "we""ird".n + excluded.n + 1,'
        ' "la""bel" = excluded."la""bel"'
    )


def test_conflict_clause_refuses_a_name_that_is_no_column() -> None:
    def wrong(c: Any, x: Any) -> dict[str, Any]:
        return {"nope": x.n}

    with pytest.raises(KeyError, match="nope"):
        conflict_clause(ODD, "sqlite", ("id",), wrong)


def test_upsert_writes_through_quoted_names_on_sqlite() -> None:
    engine = create_engine("sqlite://")
    ODD.metadata.create_all(engine)
    with Session(engine) as session:
        upsert(session, ODD, [{"id": 1, "n": 2, 'la"bel': "a"}], ("id",), _add_n)
        upsert(session, ODD, [{"id": 1, "n": 5, 'la"bel': "b"}], ("id",), _add_n)
        assert session.execute(select(ODD)).all() == [(1, 8, "b")]
    engine.dispose()


def test_rollup_sql_text() -> None:
    counts = '"promoters", "passives", "detractors", "shown"'
    sums = 'SUM("promoters"), SUM("passives"), SUM("detractors"), SUM("shown")'
    adds = ", ".join(
        f'"{c}" = "rollup_by_fw_day"."{c}" + excluded."{c}"'
        for c in ("promoters", "passives", "detractors", "shown")
    )
    day = "hour / 86400 * 86400"
    assert rollup_sql("staged", "by_fw", DAY) == (
        f'INSERT INTO "rollup_by_fw_day" ("fw", bucket, {counts})'
        f' SELECT "fw", {day}, {sums} FROM staged WHERE "survey" = \'transactional\''
        f' GROUP BY "fw", {day} ORDER BY "fw", {day}'
        f' ON CONFLICT ("fw", bucket) DO UPDATE SET {adds}'
    )
    # The programme cuboids count both surveys (docs/server.md, "Rollups").
    assert ' FROM staged WHERE true GROUP BY "site", "survey", "role", hour ' in rollup_sql(
        "staged", "programme", HOUR
    )
    assert rollup_sql('"_stage_rollup"', "fleet", HOUR).startswith(
        'INSERT INTO "rollup_fleet_hour" (bucket, "promoters",'
    )
