"""The few SQL forms that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def as_tuples(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Dicts with the same keys (at least two) as (columns, one tuple per row)."""
    columns = list(rows[0]) if rows else []
    if len(columns) < 2:
        return columns, [tuple(r[c] for c in columns) for r in rows]
    return columns, list(map(itemgetter(*columns), rows))


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERT of rows (dicts with the same keys) in one round trip."""
    bulk_write(session, table, *as_tuples(rows))


def insert_new(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], key: str
) -> set[Any]:
    """INSERT ... ON CONFLICT DO NOTHING; the keys of the rows that were new.

    A concurrent transaction inserting the same key makes this one wait for it
    and then skip the row (PostgreSQL) or waits on the write lock (SQLite), so a
    key is stored once whoever sends it.
    """
    if not rows:
        return set()
    columns, tuples = as_tuples(rows)
    return set(
        bulk_write(
            session, table, columns, tuples, conflict="ON CONFLICT DO NOTHING", returning=key
        )
    )


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    updates: Callable[[Any, Any], dict[str, Any]],
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET updates(table.c, excluded)."""
    if not rows:
        return
    stmt = _insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_=updates(table.c, stmt.excluded)
    )
    session.execute(stmt, list(rows))


def _pg_array(col: Any, values: list[Any]) -> tuple[str, list[Any]]:
    """(SQL type of the array parameter, values) for one column sent to unnest()."""
    kind = col.type
    if isinstance(kind, JSON):
        return "text[]", [None if v is None else json.dumps(v) for v in values]
    if isinstance(kind, Boolean):
        return "boolean[]", [None if v is None else bool(v) for v in values]
    if isinstance(kind, Integer):  # BigInteger too
        return "bigint[]", [None if v is None else int(v) for v in values]
    if isinstance(kind, Float):
        return "float8[]", [None if v is None else float(v) for v in values]
    return "text[]", [None if v is None else str(v) for v in values]


def _pg_select(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT feeding a PostgreSQL bulk INSERT, and its parameters.

    All rows as one JSON document read by json_populate_recordset (typed by the
    table itself); unnest() of one array per column when a float is not finite
    (JSON has no NaN), whose Python-side array dumping is slower.
    """
    cols = ", ".join(_q(c) for c in columns)
    try:
        doc = json.dumps([dict(zip(columns, r, strict=True)) for r in rows], allow_nan=False)
    except ValueError:
        pass
    else:
        return f"SELECT {cols} FROM json_populate_recordset(NULL::{_q(table.name)}, %s::json)", (
            doc,
        )
    params, arrays, picks = [], [], []
    for i, name in enumerate(columns):
        col = table.c[name]
        sql_type, values = _pg_array(col, [r[i] for r in rows])
        params.append(values)
        arrays.append(f"%s::{sql_type}")
        picks.append(f"c{i}::json" if isinstance(col.type, JSON) else f"c{i}")
    alias = ", ".join(f"c{i}" for i in range(len(columns)))
    return f"SELECT {', '.join(picks)} FROM unnest({', '.join(arrays)}) AS u({alias})", tuple(
        params
    )


def _q(name: str) -> str:
    return f'"{name}"'


def bulk_write(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: str = "",
    returning: str | None = None,
) -> list[Any]:
    """INSERT rows (tuples in `columns` order) in one round trip, skipping per-row compilation.

    `conflict` is an ON CONFLICT clause in the syntax both databases share
    (`excluded."c"`, `"table"."c"`). PostgreSQL gets one INSERT ... SELECT FROM
    json_populate_recordset or unnest; SQLite a driver-level executemany, or
    multi-row VALUES when `returning` names a column to return (values of the
    rows actually written).
    """
    if not rows:
        return []
    conn = session.connection()
    head = f"INSERT INTO {_q(table.name)} ({', '.join(_q(c) for c in columns)})"
    tail = f" {conflict}" if conflict else ""
    tail += f" RETURNING {_q(returning)}" if returning else ""
    if conn.dialect.name == "postgresql":
        sql, params = _pg_select(table, columns, rows)
        result = conn.exec_driver_sql(f"{head} {sql}{tail}", params)
        return list(result.scalars()) if returning else []
    for i, name in enumerate(columns):
        if isinstance(table.c[name].type, JSON):
            rows = [(*r[:i], json.dumps(r[i]), *r[i + 1 :]) for r in rows]
    one = "(" + ", ".join(["?"] * len(columns)) + ")"
    if not returning:
        conn.exec_driver_sql(f"{head} VALUES {one}{tail}", list(rows))
        return []
    out: list[Any] = []
    step = max(1, SQLITE_MAX_PARAMS // len(columns))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        flat = tuple(v for r in chunk for v in r)
        sql = f"{head} VALUES {', '.join([one] * len(chunk))}{tail}"
        out.extend(conn.exec_driver_sql(sql, flat).scalars())
    return out


SQLITE_MAX_PARAMS = 32000  # SQLite allows 32,766 host parameters per statement (3.32+)


def add_counts(
    session: Session,
    table: Table,
    key: Sequence[str],
    counts: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET count = count + excluded.count, for each count.

    `rows` are tuples (key values, then counts), one per key.
    """
    name = _q(table.name)
    adds = ", ".join(f"{_q(c)} = {name}.{_q(c)} + excluded.{_q(c)}" for c in counts)
    keys = ", ".join(_q(k) for k in key)
    bulk_write(
        session, table, [*key, *counts], rows, conflict=f"ON CONFLICT ({keys}) DO UPDATE SET {adds}"
    )


def greater(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """max(a, b) on both databases (SQLite has no GREATEST)."""
    return case((a > b, a), else_=b)


def lesser(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((a < b, a), else_=b)


def case_when(cond: ColumnElement[bool], a: Any, b: Any) -> ColumnElement[Any]:
    return case((cond, a), else_=b)


def table_of(model: Any) -> Table:
    """A SQLModel table class's Core table (typed for the checker)."""
    table: Table = model.__table__
    return table
