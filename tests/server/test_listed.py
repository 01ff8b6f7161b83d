"""`listed`: the same rows as an IN list, as one array parameter on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, insert, select
from sqlmodel import Session

from server.db.engine import make_engine
from server.db.listed import dialect_of, listed

ROWS: list[dict[str, Any]] = [{"device": f"dev-{i:04d}", "boot": i % 7} for i in range(1500)]


@contextmanager
def loaded(url: str) -> Iterator[tuple[Session, Table]]:
    """A session on `url` with ROWS in a table of their own."""
    meta = MetaData()
    table = Table("t", meta, Column("device", String(64)), Column("boot", BigInteger))
    engine = make_engine(url)
    meta.create_all(engine)
    try:
        with Session(engine) as s:
            s.execute(insert(table), ROWS)
            yield s, table
    finally:
        engine.dispose()


def query_of(s: Session, table: Table) -> Any:
    """ROWS' (device, boot) whose device is one of `devices` and boot one of `boots`."""
    dialect = dialect_of(s)
    return select(table.c.device, table.c.boot).where(
        listed(table.c.device, "devices", dialect), listed(table.c.boot, "boots", dialect)
    )


def picked(url: str) -> tuple[list[tuple[str, int]], str]:
    with loaded(url) as (s, table):
        devices = [f"dev-{i:04d}" for i in range(0, 1500, 2)] + ["dev-none"]
        query = query_of(s, table)
        found = s.execute(query, {"devices": devices, "boots": [1, 2]})
        return sorted(tuple(r) for r in found), str(query.compile(s.get_bind()))


def expected() -> list[tuple[str, int]]:
    return sorted(
        (r["device"], r["boot"]) for i, r in enumerate(ROWS) if i % 2 == 0 and r["boot"] in (1, 2)
    )


def test_sqlite_takes_an_in_list(tmp_path: Path) -> None:
    rows, sql = picked(f"sqlite:///{tmp_path / 'x.db'}")
    assert rows == expected()
    assert " IN " in sql


@pytest.mark.postgres
def test_postgresql_takes_one_array_per_list(postgres_url: str) -> None:
    rows, sql = picked(postgres_url)
    assert rows == expected()
    assert sql.count("ANY (") == 2 and " IN " not in sql


def reused(url: str) -> list[list[tuple[str, int]]]:
    """One statement built with `listed`, run with two lists."""
    with loaded(url) as (s, table):
        query = query_of(s, table)
        firsts = {"devices": [f"dev-{i:04d}" for i in range(0, 1500, 2)], "boots": [1, 2]}
        seconds = {"devices": ["dev-0001", "dev-0003", "dev-none"], "boots": [1, 3]}
        return [sorted(tuple(r) for r in s.execute(query, p)) for p in (firsts, seconds)]


def expected_reused() -> list[list[tuple[str, int]]]:
    second = sorted((r["device"], r["boot"]) for r in ROWS[1:4:2] if r["boot"] in (1, 3))
    return [expected(), second]


def test_a_statement_built_once_takes_each_call_s_list_on_sqlite(tmp_path: Path) -> None:
    assert reused(f"sqlite:///{tmp_path / 'x.db'}") == expected_reused()


@pytest.mark.postgres
def test_a_statement_built_once_takes_each_call_s_list_on_postgresql(postgres_url: str) -> None:
    assert reused(postgres_url) == expected_reused()
