"""The SQL text the server writes itself: quoted names, ON CONFLICT and rollup statements."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.orm import Session

from server.analytics.rollups import DAY, HOUR, rollup_sql
from server.db.sql import conflict_clause, json_value, quote, quoted, update_rows, upsert

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


DOCS = Table(
    'do"cs',
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column('la"bel', String),
    Column("doc", JSON, nullable=False),
    Column("n", Integer),
)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_update_rows_sets_the_given_columns_of_the_rows_named(
    db: str, request: pytest.FixtureRequest
) -> None:
    url = "sqlite://" if db == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    DOCS.metadata.create_all(engine)
    odd = {"q": 'a "quoted" \\ back\\slash, {braces}, NULL, é', "l": [1, 2.5, None]}
    with Session(engine) as session:
        session.execute(DOCS.insert(), [
            {"id": i, 'la"bel': f"old {i}", "doc": {"v": i}, "n": i} for i in (1, 2, 3)
        ])  # fmt: skip
        update_rows(session, DOCS, "id", [
            {"id": 1, 'la"bel': "new 1", "doc": odd},
            {"id": 3, 'la"bel': "new 3", "doc": {}},
            {"id": 9, 'la"bel': "none", "doc": {}},  # no such row: nothing written
        ])  # fmt: skip
        got = session.execute(select(DOCS).order_by(DOCS.c.id)).all()
    assert got == [(1, "new 1", odd, 1), (2, "old 2", {"v": 2}, 2), (3, "new 3", {}, 3)]
    DOCS.metadata.drop_all(engine)
    engine.dispose()


def test_json_value_reads_what_json_dumps_wrote() -> None:
    assert json_value('{"a": [1, 2.5, "x", null]}') == {"a": [1, 2.5, "x", None]}
    assert math.isnan(json_value('{"a": NaN}')["a"])  # orjson refuses NaN: json.loads reads it


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
