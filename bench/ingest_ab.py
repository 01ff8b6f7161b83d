"""One schema or driver change to the ingest, A/B in one run on PostgreSQL: two copies of
`bench.ingest_batch`'s state, the change made in one, the same batches ingested into both
in turn.

    .venv/bin/python -m bench.ingest_ab --change collate     # about 4 minutes a change
    .venv/bin/python -m bench.ingest_ab --change collate errindex binary

The state is loaded once (`bench.ingest_batch.preload`, then `VACUUM ANALYZE`) into a
template database; each change gets two copies of it (`CREATE DATABASE ... TEMPLATE`).
The changes:

- collate: the text key columns of the rollup tables keyed by device (`device`, hour
  and day; `programme_full`, hour) declared `COLLATE "C"` (bytewise comparison;
  the databases here are made `C.UTF-8`, compared through strcoll). Both copies get
  those tables rewritten (A by `VACUUM FULL`), then `VACUUM ANALYZE`.
- collate_all: the same on all 30 rollup tables.
- errindex: a partial index of telemetry on (device, t) where `errors_delta > 0`, the
  rows the health join's 24 h error lookup keeps (`server.ingest.join.histories`).
- binary: lists (the ingest's `= ANY(array)` parameters) sent as binary arrays
  (`server.db.engine` registers psycopg's binary dumper; A's connections get the
  text one back).
- rollup_rows: the rollup tables before migration 0013 in A (migration 0012; A's
  rollup statement also upserts `rollup_full_hour`, `rollup_full_day` and
  `rollup_programme_full_day`), against this version's in B: the rows a batch
  upserts per answer, before and after.

Then 10 warm-up batches into each and `--batches` timed rounds: a batch
(`bench.ingest_batch.batches`) ingested into A then B, or B then A on odd rounds. Per
side: wall ms (median), CPU ms of this process and of the side's backends (mean), and
the client time of the rollup statement (`roll_up`, COPY and statement) and of the
error lookup (medians). At the end the two copies' rollup tables and feedback health
columns are compared (they must hold the same rows).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.array import ListBinaryDumper, ListDumper
from sqlalchemy import Engine, event
from sqlmodel import Session

import server.ingest.batch as ingest_module
from bench.ingest_batch import WARM_UP, Backends, analyze, batches, preload
from bench.server_load import PG_ADMIN, Fleet
from server.analytics import rollups
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.app import GC_THRESHOLDS
from server.db.engine import downgrade, make_engine, upgrade
from server.db.sql import quote, through_stage
from server.ingest.batch import ingest_batch
from server.settings import Settings

ADMIN = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
BY_DEVICE = ("device", "programme_full")
ERROR_LOOKUP = "errors_delta >"


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def url_of(name: str) -> str:
    return f"{PG_ADMIN.rpartition('/')[0]}/{name}"


def collate(engine: Engine, cuboids: tuple[str, ...], *, change: bool) -> None:
    """Rewrite the rollup tables of `cuboids`: with their text keys `COLLATE "C"` if
    `change`, else as they are (`VACUUM FULL`)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for (name, _grain), table in ROLLUP_TABLES.items():
            if name not in cuboids or not dict(rollups.CUBOIDS)[name]:
                continue
            if not change:
                conn.exec_driver_sql(f"VACUUM FULL {quote(table.name)}")
                continue
            alters = ", ".join(
                f'ALTER COLUMN {quote(d)} TYPE VARCHAR(64) COLLATE "C"'
                for d in dict(rollups.CUBOIDS)[name]
            )
            conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} {alters}")


def error_index(engine: Engine, *, change: bool) -> None:
    """The partial index kept (B) or dropped (A), whichever the state has."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_telemetry_device_t_errors")
        if change:
            conn.exec_driver_sql(
                "CREATE INDEX ix_telemetry_device_t_errors ON telemetry (device, t)"
                " WHERE errors_delta > 0"
            )


def text_lists(engine: Engine) -> None:
    """Lists (`= ANY` parameters) go to PostgreSQL as text arrays on `engine`, as before
    `server.db.engine` sent them in binary."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.adapters.register_dumper(list, ListDumper)


LISTS: list[list[Any]] = []  # the lists a batch sent, kept by `kept_lists`


def kept_lists(engine: Engine) -> None:
    """Keep every list parameter `engine` sends through `%s` (one batch's: `dump_times`)."""

    class Keeping(ListBinaryDumper):
        def dump(self, obj: list[Any]) -> Any:
            LISTS.append(obj)
            return super().dump(obj)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.adapters.register_dumper(list, Keeping)
        # Only `%s` (AUTO) parameters: `%b` ones (sql.update_rows) were binary before.
        dbapi_conn.adapters._dumpers[PyFormat.BINARY][list] = ListBinaryDumper


def dump_times(reps: int) -> dict[str, Any]:
    """psycopg's dump of one batch's list parameters, text then binary in turn, `reps`
    times: ms of this process per batch, each way."""
    lists = list(LISTS)
    tx = Transformer(psycopg.adapters)  # psycopg's own dumpers, not `kept_lists`'
    dumpers = {f: [tx.get_dumper(v, f) for v in lists] for f in (PyFormat.TEXT, PyFormat.BINARY)}
    spent = dict.fromkeys(dumpers, 0.0)
    for rep in range(reps):
        for f in (
            (PyFormat.TEXT, PyFormat.BINARY) if rep % 2 == 0 else (PyFormat.BINARY, PyFormat.TEXT)
        ):
            began = time.process_time()
            for d, v in zip(dumpers[f], lists, strict=True):
                d.dump(v)
            spent[f] += time.process_time() - began
    return {"lists": len(lists), "elements": sum(map(len, lists)),
            "text_ms": round(spent[PyFormat.TEXT] / reps * 1000, 2),
            "binary_ms": round(spent[PyFormat.BINARY] / reps * 1000, 2)}  # fmt: skip


def no_change(engine: Engine, *, change: bool) -> None:
    return None


# The rollup tables migration 0013 dropped: (table, its key, grain, counting every survey).
BEFORE_0013 = (
    ("rollup_full_hour", rollups.HEALTH_DIMS, rollups.HOUR, False),
    ("rollup_full_day", rollups.HEALTH_DIMS, rollups.DAY, False),
    ("rollup_programme_full_day", dict(rollups.CUBOIDS)["programme_full"], rollups.DAY, True),
)


def before_0013(engine: Engine, *, change: bool) -> None:
    """A (`change` False) gets the rollup tables 0013 dropped back (downgrade to 0012)."""
    if not change:
        downgrade(engine, "0012")


def roll_up_before_0013(session: Any, counts: Any) -> None:
    """`batch.roll_up` as before migration 0013: the dropped tables upserted too."""
    through_stage(
        session, "_stage_rollup", rollups.STAGE_COLUMNS, [(*key, *c) for key, c in counts.items()],
        lambda source, _condensed: [
            *(rollups.rollup_sql(source, name, grain) for name, grain in ROLLUP_TABLES),
            *(rollups.upsert_sql(source, table, dims, grain, every_survey=every)
              for table, dims, grain, every in BEFORE_0013),
        ],
    )  # fmt: skip


CHANGES: dict[str, Callable[..., None]] = {
    "none": no_change,  # A/A: the noise between two copies
    "collate": lambda e, change: collate(e, BY_DEVICE, change=change),
    "collate_all": lambda e, change: collate(e, tuple(dict(rollups.CUBOIDS)), change=change),
    "collate_stage": lambda e, change: collate(e, tuple(dict(rollups.CUBOIDS)), change=change),
    "errindex": lambda e, change: error_index(e, change=change),
    "binary": no_change,
    "rollup_rows": before_0013,
}


class Timers:
    """Client time of the error lookup (SQLAlchemy's cursor events) and of `roll_up`."""

    def __init__(self, engine: Engine) -> None:
        self.error_ms = 0.0
        self.rollup_ms = 0.0
        self._began = 0.0
        self.last_lookup: tuple[str, Any] = ("", None)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self._began = time.perf_counter()

    def _after(self, _conn: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if ERROR_LOOKUP in statement:
            self.last_lookup = (statement, params)
            self.error_ms += (time.perf_counter() - self._began) * 1000

    def reset(self) -> None:
        self.error_ms = self.rollup_ms = 0.0


class Side:
    """One copy of the state: its engine, backends and timers."""

    def __init__(self, name: str, text: bool, stage_c: bool, roll_up: Any = None) -> None:
        self.name = name
        self.roll_up = roll_up or PLAIN_ROLL_UP  # the side's `batch.roll_up`
        # The rollups' staging table (made once per connection) with C-collated keys.
        self.stage = tuple(
            (c, 'TEXT COLLATE "C"' if stage_c and kind == "TEXT" else kind)
            for c, kind in PLAIN_STAGE
        )
        self.engine = make_engine(url_of(name))
        if text:
            text_lists(self.engine)
        self.backends = Backends(self.engine)
        self.timers = Timers(self.engine)
        self.rows: list[tuple[float, ...]] = []

    def ingest(self, batch: list[dict[str, Any]], settings: Settings) -> tuple[float, ...]:
        self.timers.reset()
        rollups.STAGE_COLUMNS = self.stage
        wall, cpu, db = time.perf_counter(), time.process_time(), self.backends.seconds()
        out = ingest_batch(self.engine, gateway="gw-bench", events=batch, settings=settings,
                           site=batch[0]["site"])  # fmt: skip
        got = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000,
               (self.backends.seconds() - db) * 1000, self.timers.rollup_ms,
               self.timers.error_ms)  # fmt: skip
        assert out.accepted == len(batch), (out.accepted, out.rejected[:1])
        return got


PLAIN_ROLL_UP = ingest_module.roll_up
PLAIN_STAGE = rollups.STAGE_COLUMNS
LAST_COUNTS: list[Any] = []  # the last batch's rollup counts, for `rollup_alone`


def lookup_alone(sides: tuple[Side, Side], reps: int) -> dict[str, float]:
    """The last batch's error lookup alone, `reps` times per side in turn: the
    backends' CPU ms per lookup (mean), A's and B's."""
    spent = [0.0, 0.0]
    for rep in range(reps):
        for k in (0, 1) if rep % 2 == 0 else (1, 0):
            side = sides[k]
            statement, params = side.timers.last_lookup
            with side.engine.connect() as conn:
                before = side.backends.seconds()
                conn.exec_driver_sql(statement, params).all()
                spent[k] += side.backends.seconds() - before
    return {"a": round(spent[0] / reps * 1000, 3), "b": round(spent[1] / reps * 1000, 3)}


def rollup_alone(sides: tuple[Side, Side], reps: int) -> dict[str, float]:
    """The last batch's rollup statement alone, `reps` times per side in turn, each in a
    transaction rolled back: the backends' CPU ms per statement (mean), A's and B's."""
    counts = LAST_COUNTS[0]
    spent = [0.0, 0.0]
    for rep in range(reps):
        for k in (0, 1) if rep % 2 == 0 else (1, 0):
            side = sides[k]
            rollups.STAGE_COLUMNS = side.stage
            with Session(side.engine) as session:
                session.connection()
                before = side.backends.seconds()
                side.roll_up(session, counts)
                session.rollback()
                spent[k] += side.backends.seconds() - before
    return {"a": round(spent[0] / reps * 1000, 2), "b": round(spent[1] / reps * 1000, 2)}


def timed_roll_up(sides: dict[str, Side]) -> None:
    """`roll_up` timed into the side whose engine runs it (found by its database)."""

    def roll_up(session: Any, counts: Any) -> None:
        LAST_COUNTS[:] = [counts]
        side = sides[session.get_bind().url.database]
        began = time.perf_counter()
        side.roll_up(session, counts)
        side.timers.rollup_ms += (time.perf_counter() - began) * 1000

    ingest_module.roll_up = roll_up


def summary(rows: list[tuple[float, ...]]) -> dict[str, float]:
    cols = list(zip(*rows, strict=True))
    return {
        "wall_ms": round(statistics.median(cols[0]), 1),
        "py_cpu_ms": round(statistics.fmean(cols[1]), 1),
        "db_cpu_ms": round(statistics.fmean(cols[2]), 1),
        "rollup_ms": round(statistics.median(cols[3]), 1),
        "error_lookup_ms": round(statistics.median(cols[4]), 2),
    }


def contents(engine: Engine) -> list[str]:
    """A digest per rollup table and of feedback's joined health: equal on both sides."""
    out = []
    with engine.connect() as conn:
        for table in ROLLUP_TABLES.values():
            cols = ", ".join(quote(c.name) for c in table.c)
            out.append(conn.exec_driver_sql(
                f"SELECT md5(string_agg(row({cols})::text, '|' ORDER BY row({cols})::text"
                f' COLLATE "C")) FROM {quote(table.name)}'
            ).scalar_one())  # fmt: skip
        out.append(conn.exec_driver_sql(
            "SELECT md5(string_agg(concat_ws(',', id, errors_24h, reboots_24h, health), '|'"
            ' ORDER BY id COLLATE "C")) FROM feedback'
        ).scalar_one())  # fmt: skip
    return out


def compare(change: str, template: str, args: argparse.Namespace, fleet: Fleet) -> None:
    names = {side: f"{template}_{change}_{side}" for side in "ab"}
    for name in names.values():
        admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        for side, name in names.items():
            engine = make_engine(url_of(name))
            CHANGES[change](engine, change=side == "b")
            analyze(engine)
            engine.dispose()
        a = Side(names["a"], change == "binary", False,
                 roll_up_before_0013 if change == "rollup_rows" else None)  # fmt: skip
        b = Side(names["b"], False, change == "collate_stage")
        by_name = {s.name: s for s in (a, b)}
        timed_roll_up(by_name)
        settings = Settings(db=url_of(names["a"]))
        rng = random.Random(args.seed + 1)
        fleet = copy.deepcopy(fleet)
        for batch in batches(fleet, WARM_UP, 0, rng):
            for side in (a, b):
                side.ingest(orjson.loads(orjson.dumps(batch)), settings)
        gc.collect()
        gc.set_threshold(*GC_THRESHOLDS)  # as server workers run
        began = os.getloadavg()[0]
        for i, batch in enumerate(batches(fleet, args.batches, WARM_UP, rng)):
            for side in (a, b) if i % 2 == 0 else (b, a):
                side.rows.append(side.ingest(orjson.loads(orjson.dumps(batch)), settings))
        same = contents(a.engine) == contents(b.engine)
        alone = rollup_alone((a, b), args.reps) if args.reps else None
        if change == "errindex":
            alone = lookup_alone((a, b), 20 * args.reps)
        if change == "binary":  # one more batch into B, its lists kept, their dumps timed
            kept_lists(b.engine)
            b.engine.dispose()
            b.ingest(batches(fleet, 1, WARM_UP + args.batches, rng)[0], settings)
            alone = dump_times(200)
        result = {
            "change": change, "batches": args.batches,
            "a": summary(a.rows), "b": summary(b.rows), "same_contents": same,
            "alone": alone,
            "loadavg_1m": [round(began, 2), round(os.getloadavg()[0], 2)],
        }  # fmt: skip
        a_, b_ = result["a"], result["b"]
        result["b_over_a"] = {k: round(b_[k] / a_[k], 3) for k in a_ if a_[k]}
        print(json.dumps(result), flush=True)
        for side in (a, b):
            side.engine.dispose()
    finally:
        ingest_module.roll_up = PLAIN_ROLL_UP
        for name in names.values():
            admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--change", nargs="+", choices=tuple(CHANGES), required=True)
    p.add_argument("--batches", type=int, default=12, help="timed rounds (a batch into each)")
    p.add_argument("--history", type=int, default=200_000, help="feedback rows loaded first")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--reps", type=int, default=0, help="then the last batch's rollups alone, times a side"
    )
    p.add_argument("--prefix", default="nps_ab", help="of the databases made (and dropped)")
    args = p.parse_args()
    template = f"{args.prefix}_{os.getpid()}"
    admin(f'CREATE DATABASE "{template}"')
    try:
        engine = make_engine(url_of(template))
        upgrade(engine)
        fleet = preload(engine, args.history, time.time(), args.seed)
        analyze(engine)
        engine.dispose()
        for change in args.change:
            compare(change, template, args, fleet)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


if __name__ == "__main__":
    main()
