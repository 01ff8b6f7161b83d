"""Monthly partitions of `feedback` and `telemetry` on PostgreSQL, by event time `t`.

Why: retention then drops a whole month as one table (a catalogue change, no
DELETE, no vacuum), and a month's indexes stay small. SQLite keeps plain tables.

Idempotency: PostgreSQL lets a partitioned table's unique keys only include the
partition key, and `t` is no function of the event (rebuilt from `rx_ts` when
the device clock is unset: a re-send may get another `t`). So each table's ids
are kept unique in a narrow unpartitioned ledger (`feedback_ids`,
`telemetry_ids`: `id` as primary key), filled from every insert's new rows by a
statement-level trigger: a taken id fails the inserting statement with a unique
violation, as the unpartitioned primary key did (`sql.insert_all_new`), and
waits for a concurrent writer of the same id. Dropping a partition keeps its
ids in the ledger: an id is unique forever (the contract), so a late re-send of
a dropped event is a duplicate, not a row brought back.

Rows whose month has no partition go to a default partition (nothing is ever
rejected); making that month's partition later moves them in.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import Pool

from server.db.sql import quote
from server.periodic import PeriodicCheck

PARTITIONED = ("feedback", "telemetry")
MONTHS_AHEAD = 3  # made ahead of time: a partition exists before its first event
_LOCK = 0x6E70_7370  # pg_advisory_xact_lock key: one maintainer at a time ("npsp")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC: one partition's range of `t` is [start, next start)."""

    year: int
    month: int

    @classmethod
    def of(cls, t: float) -> Month:
        day = dt.datetime.fromtimestamp(t, dt.UTC)
        return cls(day.year, day.month)

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> int:
        return int(dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC).timestamp())

    @property
    def end(self) -> int:
        return self.plus(1).start

    def name(self, table: str) -> str:
        return f"{table}_y{self.year:04d}m{self.month:02d}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def ledger_name(table: str) -> str:
    return f"{table}_ids"


def id_table(conn: Connection, table: str) -> str:
    """Where `table`'s stored ids are looked up: its ledger when partitioned (one index,
    where the table has one per partition: a resent batch's lookups took ~5x as long
    at 200 k rows in 16 partitions), else itself.

    Looked up in the catalogue once per engine (every batch asks, for both tables: two
    round trips each time), and asked again after a migration in this process changes
    it (`forget_id_tables`). A migration made by another process is seen by a server
    once restarted, as its schema check is; until then a ledger made by an upgrade
    goes unused (the table answers the same, more slowly)."""
    if conn.dialect.name != "postgresql":
        return table
    known = _ID_TABLES.setdefault(conn.engine.pool, {})
    found = known.get(table)
    if found is None:
        ledger = ledger_name(table)
        made = conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": quote(ledger)})
        found = known[table] = ledger if made.scalar() else table
    return found


# id_table's answers per engine, by its pool: the engines made from it with other
# execution options (`engine.write_session`) share it, and `dispose` replaces it.
_ID_TABLES: WeakKeyDictionary[Pool, dict[str, str]] = WeakKeyDictionary()


def forget_id_tables(engine: Engine) -> None:
    """After (or while) migrating `engine`'s database: id_table looks up again."""
    _ID_TABLES.pop(engine.pool, None)


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text("SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
             " WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace"),
        {"t": table},
    )  # fmt: skip
    return found.first() is not None


def months(conn: Connection, table: str) -> list[Month]:
    """The month partitions `table` has, oldest first (read from their names)."""
    pattern = re.compile(rf"^{re.escape(table)}_y(\d{{4}})m(\d{{2}})$")
    names = conn.execute(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
             " WHERE i.inhparent = CAST(:t AS regclass)"),
        {"t": quote(table)},
    ).scalars()  # fmt: skip
    found = [pattern.match(n) for n in names]
    return sorted(Month(int(m[1]), int(m[2])) for m in found if m)


def partition(conn: Connection, table: str, first: Month, last: Month) -> None:
    """Turn the plain `table` into one partitioned by month of `t`, with partitions from
    `first` to `last`, a default one and the id ledger; its rows and indexes kept."""
    forget_id_tables(conn.engine)
    old = f"{table}_unpartitioned"
    indexes = _indexes(conn, table)
    for name, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {quote(name)}")
    conn.exec_driver_sql(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
    conn.exec_driver_sql(f"ALTER TABLE {quote(old)} RENAME CONSTRAINT"
                         f" {quote(table + '_pkey')} TO {quote(old + '_pkey')}")  # fmt: skip
    conn.exec_driver_sql(
        f"CREATE TABLE {quote(table)} (LIKE {quote(old)} INCLUDING DEFAULTS"
        f" INCLUDING CONSTRAINTS) PARTITION BY RANGE (t)"
    )
    conn.exec_driver_sql(
        f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(table + '_pkey')} PRIMARY KEY (id, t)"
    )
    for name, columns in indexes:
        conn.exec_driver_sql(f"CREATE INDEX {quote(name)} ON {quote(table)} ({columns})")
    conn.exec_driver_sql(
        f"CREATE TABLE {quote(default_name(table))} PARTITION OF {quote(table)} DEFAULT"
    )
    month = first
    while month <= last:
        create_month(conn, table, month)
        month = month.plus(1)
    ledger = quote(ledger_name(table))
    conn.exec_driver_sql(f"CREATE TABLE {ledger} (id VARCHAR(96) PRIMARY KEY)")
    conn.exec_driver_sql(
        f"CREATE FUNCTION {ledger}() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN INSERT INTO {ledger} (id) SELECT id FROM claimed; RETURN NULL; END $$"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {ledger} AFTER INSERT ON {quote(table)} REFERENCING NEW TABLE AS"
        f" claimed FOR EACH STATEMENT EXECUTE FUNCTION {ledger}()"
    )
    conn.exec_driver_sql(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")
    conn.exec_driver_sql(f"DROP TABLE {quote(old)}")


def unpartition(conn: Connection, table: str) -> None:
    """Undo `partition`: `table` plain again with `id` as its primary key, rows kept."""
    forget_id_tables(conn.engine)
    old = f"{table}_partitioned"
    indexes = _indexes(conn, table)
    for name, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {quote(name)}")
    conn.exec_driver_sql(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
    conn.exec_driver_sql(f"ALTER TABLE {quote(old)} DROP CONSTRAINT {quote(table + '_pkey')}")
    conn.exec_driver_sql(
        f"CREATE TABLE {quote(table)} (LIKE {quote(old)} INCLUDING DEFAULTS"
        f" INCLUDING CONSTRAINTS, PRIMARY KEY (id))"
    )
    for name, columns in indexes:
        conn.exec_driver_sql(f"CREATE INDEX {quote(name)} ON {quote(table)} ({columns})")
    conn.exec_driver_sql(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")
    conn.exec_driver_sql(f"DROP TABLE {quote(old)}")  # its partitions and trigger with it
    ledger = quote(ledger_name(table))
    conn.exec_driver_sql(f"DROP TABLE {ledger}")
    conn.exec_driver_sql(f"DROP FUNCTION {ledger}()")


def _indexes(conn: Connection, table: str) -> list[tuple[str, str]]:
    """`table`'s plain indexes (not its primary key) as (name, quoted column list)."""
    rows = conn.execute(
        text("SELECT i.relname, array_agg(a.attname ORDER BY k.n)"
             " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
             " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
             " JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
             " WHERE x.indrelid = CAST(:t AS regclass) AND NOT x.indisprimary"
             " GROUP BY i.relname ORDER BY i.relname"),
        {"t": quote(table)},
    )  # fmt: skip
    return [(name, ", ".join(map(quote, columns))) for name, columns in rows]


def create_month(conn: Connection, table: str, month: Month) -> None:
    """Add `month`'s partition to `table`, moving in the rows the default partition
    holds for it (they came before it was made). Moved rows keep their ledger ids:
    they go straight into the partition, which the ledger's trigger does not watch."""
    name, default = quote(month.name(table)), quote(default_name(table))
    conn.exec_driver_sql(
        f"CREATE TABLE {name} (LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    bounds = f"t >= {month.start} AND t < {month.end}"
    conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {default} WHERE {bounds} RETURNING *)"
        f" INSERT INTO {name} SELECT * FROM moved"
    )
    conn.exec_driver_sql(
        f"ALTER TABLE {quote(table)} ATTACH PARTITION {name}"
        f" FOR VALUES FROM ({month.start}) TO ({month.end})"
    )


def ensure_partitions(
    engine: Engine, *, now: float | None = None, ahead: int = MONTHS_AHEAD, back: int = 0
) -> list[str]:
    """Make the partitions from `back` months before this one to `ahead` months on that
    are missing; the names made. Run at every migration and daily by the server (and by
    a bulk load of history with `back`); a no-op on SQLite."""
    if engine.dialect.name != "postgresql":
        return []
    this = Month.of(time.time() if now is None else now)
    made: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        for table in PARTITIONED:
            if not is_partitioned(conn, table):
                continue
            have = set(months(conn, table))
            for month in (this.plus(i) for i in range(-back, ahead + 1)):
                if month not in have:
                    create_month(conn, table, month)
                    made.append(month.name(table))
    return made


@dataclass(frozen=True)
class Dropped:
    """A partition retention drops (or would drop, in a dry run)."""

    table: str
    name: str
    month: str
    rows: int
    bytes: int


def retention(
    engine: Engine,
    *,
    keep_months: int,
    tables: Sequence[str] = PARTITIONED,
    now: float | None = None,
    dry_run: bool = False,
) -> tuple[list[Dropped], int]:
    """Detach and drop every month partition wholly older than the last `keep_months`
    months before the current one (which is always kept), and delete the default
    partition's rows that old. Returns the partitions and the count of those rows.

    The rollups are left alone: past NPS figures survive the raw rows (whole hours and
    days are read from the rollups; server/analytics/rollups.py)."""
    if keep_months < 0:
        raise ValueError(f"keep-months must be 0 or more, not {keep_months}")
    if unknown := set(tables) - set(PARTITIONED):
        raise ValueError(f"only {' and '.join(PARTITIONED)} are partitioned, not {sorted(unknown)}")
    if engine.dialect.name != "postgresql":
        raise ValueError("retention by partition needs PostgreSQL (SQLite keeps every row)")
    cutoff = Month.of(time.time() if now is None else now).plus(-keep_months)
    dropped: list[Dropped] = []
    stray = 0
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        for table in tables:
            if not is_partitioned(conn, table):
                raise ValueError(f"{table} is not partitioned: run `nps-edge db upgrade` first")
            for month in months(conn, table):
                if month < cutoff:
                    dropped.append(_describe(conn, table, month))
            default = quote(default_name(table))
            old = f"t < {cutoff.start}"
            if dry_run:
                found = conn.exec_driver_sql(f"SELECT count(*) FROM {default} WHERE {old}")
                stray += found.scalar_one()
                continue
            for gone in (d for d in dropped if d.table == table):
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(gone.name)}"
                )
                conn.exec_driver_sql(f"DROP TABLE {quote(gone.name)}")
            stray += conn.exec_driver_sql(f"DELETE FROM {default} WHERE {old}").rowcount
    return dropped, stray


def _describe(conn: Connection, table: str, month: Month) -> Dropped:
    name = month.name(table)
    rows, size = conn.execute(
        text("SELECT count(*), pg_total_relation_size(CAST(:n AS regclass))"
             f" FROM {quote(name)}"),
        {"n": quote(name)},
    ).one()  # fmt: skip
    return Dropped(table, name, str(month), int(rows), int(size))


def partition_names(conn: Connection, tables: Sequence[str] = PARTITIONED) -> set[str]:
    """Every table the partitioning adds beside `tables` (partitions and ledgers)."""
    out: set[str] = set()
    for table in tables:
        if is_partitioned(conn, table):
            out |= {m.name(table) for m in months(conn, table)}
            out |= {default_name(table), ledger_name(table)}
    return out


class PartitionUpkeep(PeriodicCheck):
    """Every day, the coming months' partitions (`ensure_partitions`): a server running
    for months never writes a new month into the default partition."""

    def __init__(self, engine: Engine, interval_s: float = 86_400.0) -> None:
        super().__init__(
            "partition-upkeep", interval_s, lambda: ensure_partitions(engine), (SQLAlchemyError,)
        )
