"""The few SQL forms that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from psycopg.errors import UniqueViolation
from sqlalchemy import JSON, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

_SQLITE_KEY_TAKEN = ("SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE")
SQLITE_MAX_PARAMS = 32000  # SQLite allows 32,766 host parameters per statement (3.32+)
STAGES = "nps_stages"  # connection.info key: the temporary tables made on it
# What `conflict_clause` builds with and compiles for, by dialect name.
INSERTS: dict[str, Callable[[Table], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}
DIALECTS: dict[str, Dialect] = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}


def quote(name: str) -> str:
    """`name` as an SQL identifier, the same on SQLite and PostgreSQL: in double quotes,
    an embedded one doubled. A NUL is refused (neither database takes one in a name).

    Not the dialect's identifier preparer: PostgreSQL's doubles `%` too, for texts
    that go through pyformat parameters, and these texts go to the driver without.
    """
    if "\0" in name:
        raise ValueError(f"an SQL identifier cannot hold NUL: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quoted(names: Iterable[str]) -> str:
    """Identifiers as a comma-separated list, each quoted (`quote`)."""
    return ", ".join(map(quote, names))


def as_tuples(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Dicts with the same keys (at least two) as (columns, one tuple per row)."""
    columns = list(rows[0]) if rows else []
    if len(columns) < 2:
        return columns, [tuple(r[c] for c in columns) for r in rows]
    return columns, list(map(itemgetter(*columns), rows))


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERT of rows (dicts with the same keys) in one round trip."""
    bulk_write(session, table, *as_tuples(rows))


def insert_all_new(
    session: Session, writes: Sequence[tuple[Table, Sequence[dict[str, Any]]]]
) -> bool:
    """Plain INSERTs of rows whose primary keys should all be new, under one savepoint:
    True when they were, else False with none of them written.

    A key held by a concurrent transaction makes this wait for it: if that one
    commits, this returns False. Rows should come in key order, which makes the
    same order of waiting for every writer (no deadlock between two of them).
    """
    try:
        with session.begin_nested():
            for table, rows in writes:
                insert_rows(session, table, rows)
    except UniqueViolation:  # PostgreSQL's COPY
        return False
    except IntegrityError as err:  # SQLite: only a taken key, anything else is a fault
        if getattr(err.orig, "sqlite_errorname", "") not in _SQLITE_KEY_TAKEN:
            raise
        return False
    return True


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    updates: Callable[[Any, Any], dict[str, Any]],
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET updates(table.c, excluded), one statement."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    clause = conflict_clause(table, dialect, tuple(key), updates)
    bulk_write(session, table, *as_tuples(rows), conflict=clause)


@lru_cache(maxsize=64)
def conflict_clause(
    table: Table, dialect: str, key: tuple[str, ...], updates: Callable[[Any, Any], dict[str, Any]]
) -> str:
    """`ON CONFLICT (key) DO UPDATE SET c = e, ...` for each column c that
    `updates(table.c, excluded)` maps to an expression e, in `table`'s column order.

    The names are quoted here; each expression is compiled alone for `dialect`
    ("sqlite" or "postgresql"), its constants inline (the rows are the statement's
    parameters). Cached per table, dialect, key and `updates` (a module-level
    function): building the SQLAlchemy expressions for every batch cost more than
    writing the rows.
    """
    sets = updates(table.c, INSERTS[dialect](table).excluded)
    unknown = set(sets) - set(table.c.keys())
    if unknown:
        raise KeyError(f"not columns of {table.name}: {sorted(unknown)}")
    compile_for = DIALECTS[dialect]

    def sql(expr: Any) -> str:
        return str(expr.compile(dialect=compile_for, compile_kwargs={"literal_binds": True}))

    assignments = ", ".join(
        f"{quote(c.name)} = {sql(sets[c.key])}" for c in table.c if c.key in sets
    )
    return f"ON CONFLICT ({quoted(key)}) DO UPDATE SET {assignments}"


def _json_text(value: Any) -> str | None:
    """A JSON column's value as text (the common empty object without the encoder)."""
    if value is None:
        return None
    if value == {}:
        return "{}"
    return orjson.dumps(value).decode()  # json.dumps cost 10 M instructions per batch


def json_value(text: str | bytes | bytearray) -> Any:
    """JSON text (a column's, a request body) as its value: orjson, which takes a tenth
    of json.loads's time, with json.loads for what only it reads (NaN, Infinity: what
    json.dumps wrote before the columns were written with orjson). Not JSON: ValueError."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _with_json_text(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    for i, name in enumerate(columns):
        if isinstance(table.c[name].type, JSON):
            rows = [(*r[:i], _json_text(r[i]), *r[i + 1 :]) for r in rows]
    return rows


def _pg_stage(conn: Any, table: Table) -> str:
    """This connection's staging table for `table`: its columns, none of its constraints."""
    stage = f"_stage_{table.name}"
    _make_once(
        conn,
        stage,
        f"CREATE TEMP TABLE IF NOT EXISTS {quote(stage)} ON COMMIT DELETE ROWS"
        f" AS SELECT * FROM {quote(table.name)} WITH NO DATA",
    )
    return stage


def _make_once(conn: Any, name: str, ddl: str) -> None:
    """Run `ddl` making this connection's temporary table `name`, once per connection."""
    made = conn.info.setdefault(STAGES, set())
    if name not in made:
        conn.exec_driver_sql(ddl)
        made.add(name)


def _pg_staged(
    conn: Any, stage: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], then: str
) -> list[tuple[Any, ...]]:
    """COPY rows into `stage`, then one statement `WITH staged AS (<its rows, emptying
    it>) <then>`, where `then` (more WITH queries, or the query) reads `staged`; the
    rows it returns."""
    _pg_copy(conn, stage, columns, rows)
    cols = quoted(columns)
    # On the driver's cursor with no parameters, psycopg sends the text as it is;
    # given any (SQLAlchemy passes an empty set) it scans it for placeholders on
    # every call, uncached past 4 KB, and the rollup statement is 20 KB (about 1 M
    # instructions per batch).
    with _driver(conn).cursor() as cur:
        cur.execute(f"WITH staged AS (DELETE FROM {quote(stage)} RETURNING {cols}) {then}")
        return cur.fetchall() if cur.description is not None else []


def forget_stages(conn: Any, *_: Any) -> None:
    """After a rollback (of a transaction or a savepoint): staging tables made in it are gone."""
    conn.info.pop(STAGES, None)


def _driver(conn: Any) -> Any:
    """The driver's own connection under a SQLAlchemy one: same session, same transaction."""
    return conn.connection.driver_connection


def _pg_copy(conn: Any, target: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """COPY rows into `target`: PostgreSQL's fastest way in, 2-3x INSERT ... SELECT."""
    cols = quoted(columns)
    with _driver(conn).cursor() as cur:
        with cur.copy(f"COPY {quote(target)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def bulk_write(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: str = "",
    returning: str | None = None,
) -> Sequence[Any]:
    """INSERT rows (tuples in `columns` order) in one round trip, skipping per-row compilation.

    `conflict` is an ON CONFLICT clause (`conflict_clause`) in the syntax both share
    (`excluded."c"`, `"table"."c"`). PostgreSQL gets COPY, straight into the
    table for a plain insert, else into a staging table moved by one INSERT ...
    SELECT with the clause; SQLite a driver-level executemany, or multi-row
    VALUES when `returning` names a column to return (values of the rows
    actually written, in the order given).
    """
    if not rows:
        return []
    conn = session.connection()
    rows = _with_json_text(table, columns, rows)
    cols = quoted(columns)
    head = f"INSERT INTO {quote(table.name)} ({cols})"
    tail = f" {conflict}" if conflict else ""
    tail += f" RETURNING {quote(returning)}" if returning else ""
    if conn.dialect.name == "postgresql":
        if not tail:
            _pg_copy(conn, table.name, columns, rows)
            return []
        then = f"{head} SELECT {cols} FROM staged{tail}"
        returned = _pg_staged(conn, _pg_stage(conn, table), columns, rows, then)
        return [r[0] for r in returned]
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
        out.extend(conn.exec_driver_sql(sql, flat).scalars().all())
    return out


def update_rows(session: Session, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE the rows of `table` whose `key` matches one of `rows` (dicts with the same
    keys) to that dict's other values, in one round trip; a key no row holds is skipped.

    PostgreSQL: one statement over one array per column (`unnest`), its text the same
    for every count of rows; planned as a nested loop over the arrays (EXPLAIN, 330
    alerts of 50,000), it locks the rows in the order given: give them in key order,
    one lock order for every writer. SQLite: an executemany. Where an upsert would
    copy every column of every row (it must be able to insert), this sends only the
    changed ones.
    """
    if not rows:
        return
    columns, plain = as_tuples(rows)
    tuples = _with_json_text(table, columns, plain)
    conn = session.connection()
    dialect = conn.dialect.name
    sql = _update_sql(table, dialect, key, tuple(columns))
    if dialect == "postgresql":
        conn.exec_driver_sql(sql, tuple(map(list, zip(*tuples, strict=True))))
        return
    at = columns.index(key)
    conn.exec_driver_sql(sql, [(*r[:at], *r[at + 1 :], r[at]) for r in tuples])


@lru_cache(maxsize=64)
def _update_sql(table: Table, dialect: str, key: str, columns: tuple[str, ...]) -> str:
    """`update_rows`'s statement: `columns` but `key` set, parameters in `columns` order
    (PostgreSQL: an array each), else the set columns' then the key's."""
    name = quote(table.name)
    sets = [c for c in columns if c != key]
    if dialect != "postgresql":
        assignments = ", ".join(f"{quote(c)} = ?" for c in sets)
        return f"UPDATE {name} SET {assignments} WHERE {quote(key)} = ?"
    compile_for = DIALECTS[dialect]
    # %b: psycopg sends the arrays in binary. In text, it escapes each JSON text
    # for the array literal: 330 alert details took 38 ms, in binary 1.2 ms.
    arrays = ", ".join(
        f"CAST(%b AS {table.c[c].type.compile(dialect=compile_for)}[])" for c in columns
    )
    assignments = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in sets)
    return (
        f"UPDATE {name} SET {assignments} FROM unnest({arrays}) AS v({quoted(columns)})"
        f" WHERE {name}.{quote(key)} = v.{quote(key)}"
    )


def through_stage(
    session: Session,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    statements: Callable[[str, str], Sequence[str]],
    *,
    condense: Callable[[str], str] | None = None,
) -> None:
    """Put rows into this connection's temporary table `name` ((column, SQL type) pairs),
    run `statements(source, condensed)` that read them from `source`, and leave the
    table empty.

    PostgreSQL gets COPY and then every statement as one (data-modifying WITH
    queries, run in the order given), so a batch's rollups cost one round trip.
    `condense(source)` is a query over the rows that answers some statements with
    fewer rows (sums over fewer keys): PostgreSQL runs it once, as the WITH query
    `condensed`, ahead of them. SQLite's statements read the table for both names.
    """
    if not rows:
        return
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    typed = ", ".join(f"{quote(c)} {kind}" for c, kind in columns)
    keep = " ON COMMIT DELETE ROWS" if pg else ""
    _make_once(conn, name, f"CREATE TEMP TABLE IF NOT EXISTS {quote(name)} ({typed}){keep}")
    names = [c for c, _ in columns]
    if pg:
        first = "" if condense is None else f", condensed AS ({condense('staged')})"
        then = statements("staged", "condensed" if condense else "staged")
        parts = "".join(f", s{i} AS ({sql})" for i, sql in enumerate(then))
        _pg_staged(conn, name, names, rows, f"{first}{parts} SELECT 1")
        return
    marks = ", ".join(["?"] * len(names))
    cur = _driver(conn).cursor()
    try:
        cur.executemany(f"INSERT INTO {quote(name)} ({quoted(names)}) VALUES ({marks})", rows)
        for sql in statements(quote(name), quote(name)):
            cur.execute(sql)
        cur.execute(f"DELETE FROM {quote(name)}")
    finally:
        cur.close()


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
