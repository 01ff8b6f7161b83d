"""The few SQL forms that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


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
    stmt = _insert(session, table).on_conflict_do_nothing().returning(table.c[key])
    new: set[Any] = set()
    for start in range(0, len(rows), 500):
        result = session.execute(stmt, list(rows[start : start + 500]))
        new.update(result.scalars().all())
    return new


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


def add_counts(
    session: Session,
    table: Table,
    key: Sequence[str],
    counts: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET count = count + excluded.count, for each count.

    `rows` are tuples (key values, then counts). Sent as one driver-level
    executemany of a fixed SQL text (the same on both databases): no per-row
    statement compilation, which dominates the cost of a batch's rollups.
    """
    if not rows:
        return
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cols = [*key, *counts]
    name = table.name
    sql = (
        f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in counts)
    )
    conn.exec_driver_sql(sql, [tuple(r) for r in rows])


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
