"""Engine, sessions and migrations: the only place that knows which database it is."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from server.db.partitions import ensure_partitions, forget_id_tables
from server.db.sql import forget_stages

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE = {"nps_write": True}


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and explicit transactions.

    SQLite transactions begin DEFERRED for readers (WAL readers never block) and
    IMMEDIATE for sessions opened with `write_session`, so two writers queue on
    the busy timeout instead of failing on a stale snapshot.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)
        _forget_stages_on_rollback(engine)
        if parsed.get_driver_name() == "psycopg":
            event.listen(engine, "connect", _binary_lists)
        return engine
    database = parsed.database or ""
    memory = database in ("", ":memory:")
    if not memory:
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            _owner_only(name, create=name == path)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    _forget_stages_on_rollback(engine)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("nps_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def ingest_engine(engine: Engine, connections: int) -> Engine:
    """The engine ingest writes through: on PostgreSQL a pool of its own of
    `connections`, on SQLite `engine` itself.

    psycopg forgets a connection's prepared statements at every ROLLBACK (and has
    the server deallocate them), and a read session closed without a commit rolls
    back. In the pool the API's reads share, ingest's statements therefore never
    reached the fifth use at which psycopg prepares them: PostgreSQL parsed and
    planned every statement of every batch, and the staging tables were made again
    after each rollback (`server.db.sql.forget_stages`). Ingest's own transactions
    end in COMMIT; a rollback (an error, a resent batch's savepoint) costs one
    batch's preparing again.

    Prepared, a statement with parameters would get PostgreSQL's generic plan after
    five runs: planned without the batch's lists, it chose a sequential scan of the
    device table that cast the whole id list again for every row (4 ms a batch at
    2,000 devices, bench.fleet_load with auto_explain). So these connections plan
    such statements for their values each time; the staging statements, which
    have no parameters, keep their one plan.
    """
    if engine.dialect.name != "postgresql":
        return engine
    writes = make_engine(engine.url.render_as_string(hide_password=False), pool_size=connections)
    event.listen(writes, "connect", _custom_plans)
    return writes


def _custom_plans(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_conn.commit()  # not a rollback: that would drop prepared statements


def _binary_lists(dbapi_conn: Any, _record: Any) -> None:
    """List parameters (the ingest's `= ANY(array)`, server/db/listed.py) go to
    PostgreSQL as binary arrays: psycopg's text form quotes and escapes every element.
    A fleet batch's 11 lists (7,019 values) took 2.84 ms to dump as text, 0.87 ms in
    binary (docs/benchmarks.md, "Rollup keys, the error lookup, binary lists")."""
    from psycopg.types.array import ListBinaryDumper

    dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)


def _owner_only(path: Path, *, create: bool) -> None:
    """Make `path` (answers, token hashes) readable by its owner only, creating it if
    asked: SQLite gives the -wal and -shm files it creates the database file's mode.
    A file someone else owns is left alone (chmod would fail; not ours to change)."""
    flags = os.O_RDONLY | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _forget_stages_on_rollback(engine: Engine) -> None:
    for name in ("rollback", "rollback_savepoint"):
        event.listen(engine, name, forget_stages)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session for a transaction that writes (IMMEDIATE on SQLite).

    On a SQLite file, writers of every process first queue on an OS file lock:
    SQLite's own busy handler polls with sleeps of up to 100 ms, so a waiting
    writer would oversleep a lock released after a few milliseconds.
    """
    with (
        _writer_turn(engine),
        Session(engine.execution_options(**WRITE), expire_on_commit=False) as s,
    ):
        yield s


@contextmanager
def writing(session: Session) -> Iterator[Session]:
    """`session` (a request's) as a writer for its next transaction, as `write_session`.

    A DEFERRED transaction that reads and then writes fails at once with "database
    is locked" when another writer committed since its read: SQLite cannot upgrade a
    stale snapshot and does not wait on the busy timeout for it (issue 12: 8 of 60
    concurrent alert updates answered 503). So the transaction the session holds
    (the token lookup's; committed, so nothing an earlier step wrote is lost) ends
    first, and the next begins IMMEDIATE, in turn.
    """
    session.commit()
    with _writer_turn(session.get_bind().engine):
        session.connection(execution_options=WRITE)
        yield session


@contextmanager
def _writer_turn(engine: Engine) -> Iterator[None]:
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        yield
        return
    with open(os.open(f"{database}-writer.lock", os.O_WRONLY | os.O_CREAT, 0o600), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`; then make the coming months' partitions (PostgreSQL)."""
    command.upgrade(alembic_config(engine), revision)
    forget_id_tables(engine)  # a lookup made while it ran may predate its commit
    ensure_partitions(engine)


class SchemaNotCurrent(RuntimeError):
    """The database is not at the migrations' head: `nps-edge db upgrade` brings it there."""


def require_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the migrations' head.

    The app never migrates (every worker would race to): `nps-edge server` upgrades
    once before its workers start, `nps-edge db upgrade` on demand."""
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current != heads:
        shown = engine.url.render_as_string(hide_password=True)
        raise SchemaNotCurrent(
            f"the database {shown!r} is at revision {', '.join(sorted(current)) or 'none'},"
            f" not {', '.join(sorted(heads))}: run `nps-edge db upgrade --db URL`"
        )


def downgrade(engine: Engine, revision: str = "base") -> None:
    command.downgrade(alembic_config(engine), revision)
    forget_id_tables(engine)


def sessions(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
