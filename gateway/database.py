"""SQLite plumbing of the gateway's store: opening, named migrations, transactions.

`store.py` holds what the store does; this module holds how SQLite is driven.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

SYNCHRONOUS = ("FULL", "NORMAL")
# The bytes one dead letter counts toward `max_mb` (store.dead_letter_bytes says the same
# in Python): what it names, its reason and its payload.
DEAD_LETTER_BYTES = (
    "length(CAST(COALESCE(topic, event_id, '') AS BLOB))"
    " + length(CAST(reason AS BLOB)) + length(payload)"
)
# The store holds events and dead letters (customers' answers, raw payloads): owner only.
FILE_MODE = 0o600

# Named, ordered migrations; `PRAGMA user_version` says how many have run.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "create queue, dead letters, presence, counters, state",
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            device TEXT NOT NULL,
            kind TEXT NOT NULL,
            rx_ts REAL NOT NULL,
            body BLOB NOT NULL
        );
        CREATE INDEX events_telemetry ON events(seq) WHERE kind = 'telemetry';
        CREATE TABLE dead_letters (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            source TEXT NOT NULL,
            topic TEXT,
            event_id TEXT,
            reason TEXT NOT NULL,
            payload BLOB NOT NULL
        );
        CREATE TABLE presence (
            device TEXT PRIMARY KEY,
            online INTEGER NOT NULL,
            fw TEXT,
            boot INTEGER,
            rx_ts REAL NOT NULL,
            pending INTEGER NOT NULL
        );
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    ),
    (
        "dead letters: original payload size and device; their bytes counted",
        f"""
        ALTER TABLE dead_letters ADD COLUMN size INTEGER;
        ALTER TABLE dead_letters ADD COLUMN device TEXT;
        UPDATE dead_letters SET size = length(payload);
        INSERT INTO counters(name, value)
            SELECT 'dead_letter_bytes', CAST(total({DEAD_LETTER_BYTES}) AS INTEGER)
            FROM dead_letters WHERE true
            ON CONFLICT(name) DO UPDATE SET value = excluded.value;
        """,
    ),
    (
        "fleet: what status reports of config and commands; the command relay's queue",
        """
        ALTER TABLE presence ADD COLUMN cfg INTEGER;
        ALTER TABLE presence ADD COLUMN cmd INTEGER;
        ALTER TABLE presence ADD COLUMN cmd_error TEXT;
        ALTER TABLE presence ADD COLUMN update_state TEXT;
        CREATE TABLE commands (
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            n INTEGER NOT NULL,
            exp REAL,
            payload TEXT NOT NULL,
            sent_rx_ts REAL,
            sent_at REAL,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX commands_device ON commands(device, n);
        """,
    ),
)


class StoreError(RuntimeError):
    """The store file cannot be opened or is not a gateway store."""


def connect(path: Path, *, synchronous: str, readonly: bool) -> sqlite3.Connection:
    """A connection in WAL mode with the schema up to date (or read-only)."""
    if synchronous.upper() not in SYNCHRONOUS:
        raise StoreError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
    try:
        if readonly:
            if not path.exists():
                raise StoreError(f"no gateway store at {path}")
            return sqlite3.connect(
                f"file:{path}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=30,
                check_same_thread=False,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        private(path)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        migrate(conn, path)
        return conn
    except (sqlite3.DatabaseError, OSError) as err:
        raise StoreError(f"cannot open gateway store {path}: {err}") from None


def private(path: Path) -> None:
    """Create the store file 0600, or take group/other access away from an existing one
    and its -wal/-shm. SQLite creates -wal and -shm with the main file's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(FILE_MODE)
        except FileNotFoundError:
            continue


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Run the migrations this file has not seen, each in its own transaction."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise StoreError(f"{path} is from a newer gateway (schema {version})")
    for number, (_name, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            conn.execute("ROLLBACK")
            raise


# One writer lock per store file in this process: the intake and the forwarder
# take turns without SQLite's busy handler, which sleeps in growing steps
# instead of waking when the other transaction ends.
_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(path: Path) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path.resolve(), threading.Lock())


class Transaction:
    """BEGIN IMMEDIATE (or deferred for reads) ... COMMIT, ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock | None) -> None:
        self.conn = conn
        self.lock = lock

    def __enter__(self) -> None:
        if self.lock:
            self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE" if self.lock else "BEGIN")
        except BaseException:
            if self.lock:
                self.lock.release()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            if self.lock:
                self.lock.release()
