"""`column IN (values)` for a batch's keys, as one array parameter on PostgreSQL.

A fleet's batch names up to 1,000 devices and 1,000 event ids. SQLAlchemy's
IN renders one parameter per value, and psycopg parses a query text that
changes with each batch's count; `column = ANY(array)` is one parameter and
the same plan (PostgreSQL turns an IN list into `= ANY` itself). Measured with
bench.fleet_load's batches (docs/benchmarks.md, "Fleet load").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session


def one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """The condition `column` is one of `values`."""
    listed = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, listed, type_=ARRAY(column.type)))
    return column.in_(listed)
