"""`column IN (values)` for a batch's keys, as one array parameter on PostgreSQL.

A fleet's batch names up to 1,000 devices and 1,000 event ids. SQLAlchemy's
IN renders one parameter per value, and psycopg parses a query text that
changes with each batch's count; `column = ANY(array)` is one parameter and
the same plan (PostgreSQL turns an IN list into `= ANY` itself). Measured with
bench.fleet_load's batches (docs/benchmarks.md, "Fleet load").

The list is bound by name, so that a statement is built once per dialect and run
with each batch's values: building a select and its cache key on every request cost
about 0.25 ms of CPU a statement, more than running it (docs/benchmarks.md, Run 13).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session


def listed(column: Any, name: str, dialect: str) -> Any:
    """The condition `column` is one of the list given as parameter `name` on execution."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def dialect_of(session: Session) -> str:
    """ "postgresql" or "sqlite": the key of a statement built once per dialect."""
    return str(session.get_bind().dialect.name)
