"""What each API call reads from SQLite: its SELECTs, their plans and rows read.

The app runs in this process on the benchmark's database; every SELECT an API call
makes is caught (SQLAlchemy's `before_execute`), then explained: SQLite's query
plan, and the rows it reads: the rows its WHERE selects when the plan searches an
index, the whole table (from ANALYZE's count) when the plan scans it, the rows
returned when it reads an index in order up to a LIMIT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, Select, event, func, literal, select, text

from server.app import create_app
from server.settings import Settings

SCAN = re.compile(r"^SCAN (\w+)")


@dataclass
class Read:
    sql: str
    plan: list[str]
    rows: int
    whole: list[str]  # tables read whole (a scan not stopped by a LIMIT)


@dataclass
class Call:
    path: str
    reads: list[Read] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.reads)

    @property
    def scans(self) -> list[str]:
        """The tables this call reads whole."""
        return sorted({t for r in self.reads for t in r.whole})


def _table_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        stat = conn.execute(
            text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t ORDER BY idx IS NOT NULL LIMIT 1"),
            {"t": table},
        ).scalar()
        if stat is not None:
            return int(str(stat).split()[0])
        return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar() or 0)


def _explain(engine: Engine, stmt: Select[Any]) -> Read:
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = [str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
        scanned = [m[1] for p in plan if (m := SCAN.match(p))]
        if stmt._limit_clause is not None and all("USING" in p for p in plan if SCAN.match(p)):
            # An index read in order and stopped at the LIMIT: about the rows returned.
            rows = len(conn.execute(stmt).all())
            scanned = []
        elif scanned:
            rows = sum(_table_rows(engine, t) for t in scanned)
        else:  # index searches: the rows the WHERE selects
            inner = stmt.with_only_columns(literal(1)).group_by(None).order_by(None).limit(None)
            counted = select(func.count()).select_from(inner.subquery())
            rows = int(conn.execute(counted).scalar_one())
    return Read(" ".join(sql.split()), plan, rows, scanned)


def reads(url: str, operator: str, paths: list[str]) -> list[Call]:
    """Each path (`/api/v1/...?...`) called once in-process, with what it read."""
    app = create_app(Settings(db=url))
    engine: Engine = app.state.engine
    caught: list[Select[Any]] = []

    def catch(conn: Any, clause: Any, *args: Any) -> None:
        if isinstance(clause, Select):
            caught.append(clause)

    out = []
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {operator}"
        event.listen(engine, "before_execute", catch)
        try:
            for path in paths:
                caught.clear()
                client.get(path).raise_for_status()
                stmts = list(caught)
                out.append(Call(path, [_explain(engine, s) for s in stmts]))
        finally:
            event.remove(engine, "before_execute", catch)
    return out
