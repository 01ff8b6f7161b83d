"""Month-partitioned feedback (migration 0011) against the unpartitioned table, same run.

Two fresh PostgreSQL databases: the reference at migration 0008 (plain tables,
`id` as primary key) and one at the head (month partitions, id ledger). Each
gets the same N feedback rows over `--months` months ending with this one,
loaded with INSERT ... SELECT from generate_series (not the ingest path), then:

- ingest: the real `ingest_batch` of 1,000-event batches (70 % feedback), rounds
  alternating between the two; and the store step alone (`sql.insert_all_new` of
  1,000 feedback rows, the statement the idempotency design changes);
- read queries that touch raw rows (the rollups are the same tables in both);
- dropping the oldest month (`partitions.retention`) against DELETE of the same
  month in the reference (and the VACUUM that reclaims its space);
- table and index sizes.

`python -m bench.pg_partitions --rows 20000000` for a large run; every figure is
printed with the reference's and the ratio, and the last line is JSON.

`--against small` is for a size whose plain copy does not fit beside it (100 M rows
need ~57 GB partitioned, ~49 GB more for the plain table): the reference is then the
same partitioned schema holding `--small-rows` rows (1 M), loaded first, so each
ratio says what the size alone costs; removing the oldest month is a drop in both.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.server_load import PG_ADMIN, Fleet, ingest_batches
from server.db.engine import make_engine, upgrade
from server.db.partitions import Month, ensure_partitions, ledger_name, retention
from server.db.sql import insert_all_new, table_of
from server.ingest.batch import ingest_batch
from server.models import Feedback
from server.settings import Settings

DEVICES = 10_000
CHUNK = 1_000_000  # rows per loading statement
REPS = 11


@contextmanager
def database(tag: str) -> Iterator[str]:
    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"nps_bench_part_{tag}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# One row per g: device g % DEVICES, its seq g / DEVICES + 1, times spread evenly over
# [:start, :start + :span) in g's order (events arrive in about time order).
LOAD = """
INSERT INTO feedback (id, device, site, seq, boot, up_ms, ts, rx_ts, fw, t, time_source,
  outcome, score, category, prompt, trigger_kind, trigger_ref, reason, answer_ms, rssi,
  battery_mv, telemetry_id, errors_24h, reboots_24h, offline_min_24h, rssi_band,
  battery_band, health, survey, role, gateway)
SELECT 'nps-' || lpad((g % {devices})::text, 6, '0') || ':' || (g / {devices} + 1),
  'nps-' || lpad((g % {devices})::text, 6, '0'),
  'site-' || lpad((g % {devices} / 50)::text, 3, '0'),
  g / {devices} + 1, 1, (g / {devices} + 1) * 60000, x.t, x.t + 0.5, '1.2.0', x.t, 'ts',
  CASE WHEN x.answered THEN 'answered' ELSE 'timeout' END,
  CASE WHEN x.answered THEN x.score END,
  CASE WHEN NOT x.answered THEN NULL WHEN x.score >= 9 THEN 'promoter'
       WHEN x.score >= 7 THEN 'passive' ELSE 'detractor' END,
  'nps', 'cycle_complete', NULL, NULL, 2100, -60, 3900, NULL, 0, 1, 0.0,
  'ok', 'good', 'healthy', 'transactional', NULL, 'bench'
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS g,
  LATERAL (SELECT :start + (g - 1) * :span / :n AS t, g % 20 < 13 AS answered,
           (g * 7919) % 11 AS score) AS x
"""


def load(engine: Engine, n: int, start: float, span: float) -> float:
    """N rows into `feedback` in chunks; seconds taken."""
    began = time.perf_counter()
    sql = text(LOAD.format(devices=DEVICES))
    for lo in range(1, n + 1, CHUNK):
        with engine.begin() as conn:
            conn.execute(sql, {"lo": lo, "hi": min(n + 1, lo + CHUNK), "n": n,
                               "start": start, "span": span})  # fmt: skip
        print(f"  {engine.url.database}: {min(n, lo + CHUNK - 1):,} rows", file=sys.stderr)
    took = time.perf_counter() - began
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum would have, in both
    return took


def median_ms(fn: Callable[[], Any], reps: int = REPS) -> float:
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def queries(now: float, month: Month) -> dict[str, tuple[str, dict[str, Any]]]:
    """Reads of raw feedback: the rollups' partial-hour edges, a site's week, a device's
    latest, the resend check by id, a whole month."""
    edge = Month.of(now).start + 3 * 86400 + 600
    return {
        "edge_40min": (
            "SELECT category, count(*) FROM feedback WHERE t >= :a AND t < :b GROUP BY category",
            {"a": edge, "b": edge + 2400},
        ),
        "site_week": (
            "SELECT count(*), sum(score) FROM feedback WHERE site = 'site-007'"
            " AND t >= :a AND t < :b",
            {"a": edge - 7 * 86400, "b": edge},
        ),
        "device_latest_50": (
            "SELECT id, t, score FROM feedback WHERE device = 'nps-000123'"
            " ORDER BY t DESC LIMIT 50",
            {},
        ),
        "ids_lookup_2": (
            "SELECT 1 FROM feedback WHERE id IN ('nps-000123:5', 'nps-000999:7')",
            {},
        ),
        "month_count": (
            "SELECT count(*) FROM feedback WHERE t >= :a AND t < :b",
            {"a": month.start, "b": month.end},
        ),
    }


def time_queries(engine: Engine, qs: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, float]:
    out = {}
    with engine.connect() as conn:
        for name, (sql, params) in qs.items():

            def query(s: str = sql, p: dict[str, Any] = params) -> None:
                conn.execute(text(s), p).all()

            query()  # warm
            out[name] = median_ms(query)
    return out


def shift(batches: list[list[dict[str, Any]]], now: float) -> None:
    """The batches' events timed in the last hour, in order (this month's partition)."""
    t = now - 3600.0
    for batch in batches:
        for ev in batch:
            t += 0.001
            ev["ts"], ev["rx_ts"] = t, t + 0.5


def time_ingest(
    urls: dict[str, str], batches: dict[str, list[list[dict[str, Any]]]], rounds: int
) -> dict[str, float]:
    """Events/s of `ingest_batch` per database, rounds alternating; the median round."""
    rates: dict[str, list[float]] = {k: [] for k in urls}
    engines = {k: make_engine(u) for k, u in urls.items()}
    per = len(batches[next(iter(urls))]) // rounds
    for r in range(rounds):
        for kind, engine in engines.items():
            mine = batches[kind][r * per : (r + 1) * per]
            settings = Settings(db=urls[kind])
            began = time.perf_counter()
            for events in mine:
                out = ingest_batch(engine, gateway="bench", events=events, settings=settings,
                                   site=None)  # fmt: skip
                assert out.accepted == len(events), (out.accepted, out.rejected[:1])
            rates[kind].append(sum(map(len, mine)) / (time.perf_counter() - began))
    resend = {}
    for kind, engine in engines.items():
        settings = Settings(db=urls[kind])
        events = batches[kind][0]

        def again(e: Engine = engine, s: Settings = settings, ev: Any = events) -> None:
            out = ingest_batch(e, gateway="bench", events=ev, settings=s, site=None)
            assert out.duplicates == len(ev)

        resend[kind] = median_ms(again)
        engine.dispose()
    return {
        **{f"ingest_events_per_s_{k}": statistics.median(v) for k, v in rates.items()},
        **{f"resent_batch_ms_{k}": v for k, v in resend.items()},
    }


def store_step_ms(engine: Engine, now: float, tag: str) -> float:
    """`insert_all_new` of 1,000 new feedback rows (rolled back): the idempotent write."""
    row = {c.name: None for c in table_of(Feedback).c}
    base = {**row, "device": "nps-bench", "site": "site-bench", "boot": 1, "up_ms": 1,
            "rx_ts": now, "fw": "1", "time_source": "ts", "outcome": "timeout", "prompt": "nps",
            "trigger_kind": "walkup", "errors_24h": 0, "reboots_24h": 1, "offline_min_24h": 0.0,
            "rssi_band": "none", "battery_band": "none", "health": "healthy",
            "survey": "transactional", "gateway": "bench"}  # fmt: skip
    times = []
    for rep in range(REPS):
        rows = [
            base | {"id": f"nps-bench-{tag}-{rep}:{i:04d}", "seq": i, "ts": now - i, "t": now - i}
            for i in range(1000)
        ]
        with Session(engine) as session:
            began = time.perf_counter()
            assert insert_all_new(session, [(table_of(Feedback), rows)])
            times.append((time.perf_counter() - began) * 1000)
            session.rollback()
    return statistics.median(times)


def sizes(engine: Engine, partitioned: bool) -> dict[str, int]:
    with engine.connect() as conn:
        if not partitioned:
            total = conn.exec_driver_sql(
                "SELECT pg_table_size('feedback'), pg_indexes_size('feedback')"
            ).one()
            return {"table_bytes": total[0], "index_bytes": total[1], "ledger_bytes": 0}
        total = conn.exec_driver_sql(
            "SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid))"
            " FROM pg_partition_tree('feedback')"
        ).one()
        ledger = conn.exec_driver_sql(
            f"SELECT pg_total_relation_size('{ledger_name('feedback')}')"
        ).scalar_one()
        return {"table_bytes": int(total[0]), "index_bytes": int(total[1]),
                "ledger_bytes": int(ledger)}  # fmt: skip


def drop_oldest(engine: Engine, month: Month, keep: int, now: float) -> tuple[int, float]:
    """`nps-edge db retention`'s function on a partitioned database: rows, ms."""
    began = time.perf_counter()
    dropped, _ = retention(engine, keep_months=keep, now=now)
    took = (time.perf_counter() - began) * 1000
    assert {d.month for d in dropped} == {str(month)}, dropped
    return sum(d.rows for d in dropped if d.table == "feedback"), took


def drop_month(part: Engine, ref: Engine, month: Month, keep: int, now: float) -> dict[str, Any]:
    rows, drop_ms = drop_oldest(part, month, keep, now)
    began = time.perf_counter()
    with ref.begin() as conn:
        deleted = conn.execute(
            text("DELETE FROM feedback WHERE t >= :a AND t < :b"),
            {"a": month.start, "b": month.end},
        ).rowcount
    delete_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    with ref.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM feedback")
    vacuum_ms = (time.perf_counter() - began) * 1000
    assert rows == deleted, (rows, deleted)
    return {"month_rows": rows, "drop_month_ms": drop_ms, "delete_month_ms": delete_ms,
            "vacuum_after_delete_ms": vacuum_ms}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    now = time.time()
    this = Month.of(now)
    first = this.plus(-(args.months - 1))
    start, span = float(first.start), now - 7200.0 - first.start
    small = args.against == "small"
    result: dict[str, Any] = {
        "rows": args.rows, "months": args.months, "against": args.against,
        "reference_rows": args.small_rows if small else args.rows,
    }  # fmt: skip
    with database("ref") as ref_url, database("part") as part_url:
        ref, part = make_engine(ref_url), make_engine(part_url)
        upgrade(ref, "head" if small else "0008")  # plain: the tables before partitions
        upgrade(part)
        for engine in (ref, part) if small else (part,):
            ensure_partitions(engine, now=now, back=args.months - 1)
        for kind, engine in (("reference", ref), ("partitioned", part)):
            rows = result["reference_rows"] if kind == "reference" else args.rows
            result[f"load_s_{kind}"] = load(engine, rows, start, span)
        fleet = Fleet(DEVICES, args.seed)
        fleet.seq = [10**9] * DEVICES  # seqs past the loaded rows'
        fleet_batches = ingest_batches(fleet, 2 * args.batches, args.seed)
        shift(fleet_batches, now)
        batches = {"reference": fleet_batches[::2], "partitioned": fleet_batches[1::2]}
        urls = {"reference": ref_url, "partitioned": part_url}
        result |= time_ingest(urls, batches, args.rounds)
        result["store_1000_ms_reference"] = store_step_ms(ref, now, "r")
        result["store_1000_ms_partitioned"] = store_step_ms(part, now, "p")
        qs = queries(now, first.plus(1))
        for kind, engine in (("reference", ref), ("partitioned", part)):
            for name, ms in time_queries(engine, qs).items():
                result[f"query_ms_{name}_{kind}"] = ms
            result |= {
                f"{k}_{kind}": v for k, v in sizes(engine, small or kind == "partitioned").items()
            }
        if small:
            for kind, engine in (("reference", ref), ("partitioned", part)):
                rows, ms = drop_oldest(engine, first, args.months - 2, now)
                result |= {f"month_rows_{kind}": rows, f"drop_month_ms_{kind}": ms}
        else:
            result |= drop_month(part, ref, first, args.months - 2, now)
        ref.dispose()
        part.dispose()
    return result


def report(r: dict[str, Any]) -> None:
    print(f"{r['rows']:,} feedback rows over {r['months']} months, same run")
    if r["against"] == "small":
        print(f"reference: the same partitioned schema with {r['reference_rows']:,} rows")
        heads = (f"{r['rows'] / 1e6:g} M rows", f"{r['reference_rows'] / 1e6:g} M rows")
    else:
        heads = ("partitioned", "reference")
    print(f"{'figure':34} {heads[0]:>14} {heads[1]:>14} {'ratio':>7}")
    pairs = sorted({k.rsplit("_", 1)[0] for k in r if k.endswith("_reference")})
    for key in pairs:
        p, ref = r[f"{key}_partitioned"], r[f"{key}_reference"]
        ratio = p / ref if ref else float("nan")
        print(f"{key:34} {p:14,.1f} {ref:14,.1f} {ratio:7.2f}")
    if r["against"] == "small":
        print(f"drop the oldest month: {r['month_rows_partitioned']:,} rows in"
              f" {r['drop_month_ms_partitioned']:,.1f} ms; {r['month_rows_reference']:,} rows"
              f" in {r['drop_month_ms_reference']:,.1f} ms")  # fmt: skip
    else:
        print(f"drop the oldest month ({r['month_rows']:,} rows): {r['drop_month_ms']:,.1f} ms;"
              f" DELETE in the reference {r['delete_month_ms']:,.1f} ms"
              f" + VACUUM {r['vacuum_after_delete_ms']:,.1f} ms")  # fmt: skip
    print(json.dumps(r))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="feedback rows loaded in each")
    p.add_argument("--months", type=int, default=12, help="months the rows span (>= 3)")
    p.add_argument("--batches", type=int, default=30, help="ingest batches per database")
    p.add_argument("--rounds", type=int, default=3, help="alternating ingest rounds")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--against", choices=("plain", "small"), default="plain",
        help="the reference: the plain table with as many rows (default), or the same"
        " partitioned schema with --small-rows rows (when two copies do not fit)",
    )  # fmt: skip
    p.add_argument("--small-rows", type=int, default=1_000_000, help="the small reference's rows")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # drop the databases on kill
    if args.months < 3:
        p.error("--months must be 3 or more")
    report(run(args))


if __name__ == "__main__":
    main()
