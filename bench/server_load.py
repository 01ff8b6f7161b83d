"""Server at fleet scale: load N feedback events over 1,000 devices and a year, then time
`GET /api/v1/nps` (p50/p95) and ingest through `POST /api/v1/ingest` in 1,000-event batches.

    .venv/bin/python -m bench.server_load                    # 10 million events, both databases
    .venv/bin/python -m bench.server_load --events 200000 --db sqlite

The raw rows are bulk-loaded (executemany / COPY) and the rollups are built in SQL from
them; a sample day is then checked against `server.analytics.rollups.aggregate`, the Python
reference the tests hold ingest's SQL (`rollups.rollup_sql`) to, so the loaded rollups
are the ones ingest would have written. Ingest is timed after a warm-up, in three rounds
of `--ingest-batches` batches, each followed by its reference (a bare INSERT of as many
feedback rows); the round with the median ratio is reported. Each figure
comes with a reference measured in the same run: the same NPS computed by scanning raw
feedback, and a bare INSERT of the same rows for the ingest rate. Each round also
reports the CPU time per batch of the server's processes, (PostgreSQL) of every
postgres process, from /proc, and of the senders (this process): a measure that the
machine's speed moves far less than events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text
from sqlmodel import Session

from contract.nps import category
from nps_edge.broker import free_port
from server.analytics import rollups
from server.analytics.rollup_tables import ROLLUP_TABLES
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token
from server.ingest import health
from server.ingest.prepare import fact

WARM_UP = 20  # ingest batches before timing: each worker's first requests fill its caches
ROUNDS = 3  # timed ingest rounds; the median is reported
YEAR_END = 1_795_000_000.0  # the loaded year ends here; ingest sends newer events
DAY = 86400.0
COLUMNS = (
    "id",
    "device",
    "site",
    "seq",
    "boot",
    "up_ms",
    "t",
    "ts",
    "time_source",
    "rx_ts",
    "fw",
    "outcome",
    "score",
    "category",
    "prompt",
    "trigger_kind",
    "trigger_ref",
    "reason",
    "answer_ms",
    "rssi",
    "battery_mv",
    "telemetry_id",
    "errors_24h",
    "reboots_24h",
    "offline_min_24h",
    "rssi_band",
    "battery_band",
    "health",
    "gateway",
)
TRIGGERS = ("cycle_complete", "service_visit", "walkup", "refill")
REASONS = ("slow", "broken", "price", "dirty", "other")
PG_ADMIN = os.environ.get(
    "NPS_EDGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class Fleet:
    """Deterministic devices with a site, a Wi-Fi level, a battery and a firmware rollout."""

    def __init__(self, devices: int, seed: int) -> None:
        rng = random.Random(seed)
        self.ids = [f"nps-{i:06d}" for i in range(devices)]
        self.site = [f"site-{i // 50:02d}" for i in range(devices)]
        self.rssi = [rng.randint(-88, -45) for _ in range(devices)]
        self.battery = [
            None if rng.random() < 0.3 else rng.randint(3300, 4100) for _ in range(devices)
        ]
        self.rollout = [rng.random() for _ in range(devices)]
        self.seq = [0] * devices


def score_for(rng: random.Random, rssi: int) -> int:
    weak = rssi < -75
    r = rng.random()
    if r < (0.25 if weak else 0.45):
        return rng.choice((9, 10))
    if r < (0.45 if weak else 0.75):
        return rng.choice((7, 8))
    return rng.randint(0, 6)


def events(n: int, fleet: Fleet, seed: int, start: float, span: float) -> Iterator[tuple[Any, ...]]:
    """`n` feedback rows in time order, as tuples in COLUMNS order."""
    rng = random.Random(seed)
    for i in range(n):
        t = start + (i + rng.random()) * span / n
        d = rng.randrange(len(fleet.ids))
        fleet.seq[d] += 1
        seq = fleet.seq[d]
        phase = (t - start) / span
        fw = (
            "1.0.0"
            if phase < 0.3 + 0.2 * fleet.rollout[d]
            else ("1.1.0" if phase < 0.7 + 0.2 * fleet.rollout[d] else "1.2.0")
        )
        r = rng.random()
        outcome = "answered" if r < 0.65 else ("timeout" if r < 0.9 else "dismissed")
        rssi = fleet.rssi[d] + rng.randint(-4, 4)
        score = score_for(rng, rssi) if outcome == "answered" else None
        cat = None if score is None else category(score)
        reason = rng.choice(REASONS) if cat == "detractor" and rng.random() < 0.7 else None
        mv = fleet.battery[d]
        errors = 0 if rng.random() < 0.9 else rng.randint(1, 12)
        reboots = 1 if rng.random() < 0.97 else rng.randint(2, 5)
        rb, bb = health.rssi_band(rssi), health.battery_band(mv)
        state = health.health_state(
            errors=errors, reboots=reboots, offline_min=0.0, rssi_band=rb, battery_band=bb
        )
        dev = fleet.ids[d]
        yield (
            f"{dev}:{seq}",
            dev,
            fleet.site[d],
            seq,
            1,
            seq * 60_000,
            t,
            t,
            "ts",
            t + 0.5,
            fw,
            outcome,
            score,
            cat,
            "nps" if rng.random() < 0.9 else "service",
            TRIGGERS[rng.randrange(4)],
            None,
            reason,
            2300 if score is not None else None,
            rssi,
            mv,
            None,
            errors,
            reboots,
            0.0,
            rb,
            bb,
            state,
            "bench",
        )


def bulk_load(engine: Engine, rows: Iterator[tuple[Any, ...]], chunk: int = 50_000) -> int:
    """Raw rows into `feedback` (COPY on PostgreSQL, else executemany)."""
    total = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        pg = engine.dialect.name == "postgresql"
        if not pg:
            cur.execute("PRAGMA synchronous=OFF")
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            if pg:
                with cur.copy(f"COPY feedback ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in batch:
                        copy.write_row(row)
            else:
                cur.execute("BEGIN")
                marks = ", ".join("?" * len(COLUMNS))
                cur.executemany(
                    f"INSERT INTO feedback ({', '.join(COLUMNS)}) VALUES ({marks})", batch
                )
                cur.execute("COMMIT")
            raw.commit()

        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                flush()
                total += len(batch)
                batch.clear()
                print(f"  loaded {total:,}", end="\r", file=sys.stderr, flush=True)
        if batch:
            flush()
            total += len(batch)
        if not pg:
            cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        raw.close()
    return total


def build_rollups(engine: Engine) -> None:
    """Every rollup table from raw feedback in SQL (checked against ingest's code by `verify`)."""
    pg = engine.dialect.name == "postgresql"
    expr = {d: rollups.RAW_COLUMN.get(d, d) for d in rollups.DIMS}
    expr |= {d: f"COALESCE({d}, '{rollups.NONE}')" for d in rollups.NULLABLE}
    with engine.begin() as conn:
        for (name, grain), table in ROLLUP_TABLES.items():
            dims = dict(rollups.CUBOIDS)[name]
            bucket = (
                f"(floor(t / {grain})::bigint * {grain})"
                if pg
                else f"(CAST(t / {grain} AS INTEGER) * {grain})"
            )
            sel = [expr.get(d, d) for d in dims]
            counts = ", ".join(
                f"SUM(CASE WHEN category = '{c}' THEN 1 ELSE 0 END)"
                for c in ("promoter", "passive", "detractor")
            )
            group = ", ".join([*sel, bucket])
            conn.execute(
                text(
                    f"INSERT INTO {table.name} ({', '.join([*dims, 'bucket', *rollups.COUNTS])}) "
                    f"SELECT {', '.join([*sel, bucket])}, {counts}, COUNT(*)"
                    f" FROM feedback GROUP BY {group}"
                )
            )
        conn.execute(
            text(
                "INSERT INTO device (id, site, fw, gateway, boot, first_seen, last_seen, max_seq,"
                " received, promoters, passives, detractors, shown)"
                " SELECT device, MAX(site), MAX(fw), 'bench', 1,"
                " MIN(rx_ts), MAX(rx_ts), MAX(seq), COUNT(*),"
                " SUM(CASE WHEN category = 'promoter' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN category = 'passive' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN category = 'detractor' THEN 1 ELSE 0 END), COUNT(*)"
                " FROM feedback GROUP BY device"
            )
        )


def verify(engine: Engine, day_start: float) -> int:
    """The rollups of one day equal `rollups.aggregate` (ingest's reference) over its raw rows."""
    lo, hi = day_start, day_start + DAY
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT * FROM feedback WHERE t >= :lo AND t < :hi"),
                {"lo": lo, "hi": hi},
            )
            .mappings()
            .all()
        )
        check_rollups(conn, [dict(r) for r in rows], lo, hi)
    return len(rows)


def check_rollups(conn: Any, rows: list[dict[str, Any]], lo: float, hi: float) -> None:
    """The stored rollups over [lo, hi) equal `rollups.aggregate` (ingest's reference) of
    `rows`, the raw feedback rows of that span."""
    expected = rollups.aggregate([fact(r) for r in rows])
    for (name, grain), acc in expected.items():
        table = ROLLUP_TABLES[(name, grain)]
        dims = dict(rollups.CUBOIDS)[name]
        got = {
            (*(r[d] for d in dims), r["bucket"]): [r[c] for c in rollups.COUNTS]
            for r in conn.execute(
                table.select().where(table.c.bucket >= lo, table.c.bucket < hi)
            ).mappings()
        }
        assert got == acc, f"rollup {table.name} differs from ingest's aggregation"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_queries(base: str, op: str, repeat: int) -> dict[str, dict[str, float]]:
    day90 = YEAR_END - 90 * DAY - 1234.5  # not on an hour: exercises the raw edges too
    queries = {
        "fleet": {},
        "one site": {"site": "site-07"},
        "one device": {"device": "nps-000123"},
        "90 days by day": {"from": day90, "to": YEAR_END, "group_by": "day"},
        "fleet by health (no goal)": {"group_by": "health"},
    }
    out = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {op}"}, timeout=60) as c:
        for name, params in queries.items():
            for _ in range(3):
                c.get("/api/v1/nps", params=params).raise_for_status()
            ms = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                c.get("/api/v1/nps", params=params).raise_for_status()
                ms.append((time.perf_counter() - t0) * 1000)
            out[name] = {
                "p50": round(percentile(ms, 0.5), 1),
                "p95": round(percentile(ms, 0.95), 1),
            }
    return out


def raw_scan_ms(engine: Engine) -> float:
    """Reference: the fleet figure by scanning raw feedback."""
    with engine.connect() as conn:
        t0 = time.perf_counter()
        conn.execute(text("SELECT category, COUNT(*) FROM feedback GROUP BY category")).all()
        return (time.perf_counter() - t0) * 1000


def ingest_batches(fleet: Fleet, batches: int, seed: int) -> list[list[dict[str, Any]]]:
    """Gateway batches: 1,000 new events from one site's 50 devices, 70 % feedback."""
    rng = random.Random(seed)
    out = []
    t = YEAR_END + 60.0
    for b in range(batches):
        site = b % (len(fleet.ids) // 50)
        events_: list[dict[str, Any]] = []
        for _ in range(1000):
            d = site * 50 + rng.randrange(50)
            fleet.seq[d] += 1
            t += 0.05
            dev, seq = fleet.ids[d], fleet.seq[d]
            base = {
                "v": 1,
                "id": f"{dev}:{seq}",
                "device": dev,
                "site": fleet.site[d],
                "seq": seq,
                "boot": 1,
                "up_ms": seq * 60_000,
                "ts": t,
                "fw": "1.2.0",
                "rx_ts": t + 0.5,
            }
            if rng.random() < 0.7:
                score = score_for(rng, fleet.rssi[d]) if rng.random() < 0.65 else None
                events_.append(
                    base
                    | {
                        "type": "feedback",
                        "outcome": "answered" if score is not None else "timeout",
                        "score": score,
                        "prompt": "nps",
                        "trigger": {"kind": rng.choice(TRIGGERS), "ref": None},
                        "reason": None,
                        "answer_ms": 2100,
                        "ctx": {"rssi": fleet.rssi[d], "battery_mv": fleet.battery[d]},
                    }
                )
            else:
                events_.append(
                    base
                    | {
                        "type": "telemetry",
                        "battery_mv": fleet.battery[d],
                        "rssi": fleet.rssi[d],
                        "heap_free": 61000,
                        "heap_min": 52000,
                        "uptime_s": seq * 60,
                        "temp_c": 31.0,
                        "outbox_depth": 0,
                        "reset_cause": "power_on",
                        "errors": {},
                    }
                )
        out.append(events_)
    return out


def time_ingest(
    base: str, gw: dict[str, str], batches: list[list[dict[str, Any]]], senders: int
) -> float:
    """Post the batches; each is one site's, sent with that site's gateway token (`gw`)."""
    bodies = [
        (gw[b[0]["site"]], json.dumps({"gateway": "gw-bench", "events": b}).encode())
        for b in batches
    ]
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def sender(_: int) -> int:
        n = 0
        with httpx.Client(
            base_url=base,
            timeout=120,
            headers={"Content-Type": "application/json"},
        ) as c:
            while True:
                with lock:
                    if not queue:
                        return n
                    token, body = queue.pop()
                r = c.post(
                    "/api/v1/ingest", content=body, headers={"Authorization": f"Bearer {token}"}
                )
                r.raise_for_status()
                n += r.json()["accepted"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        accepted = sum(pool.map(sender, range(senders)))
    elapsed = time.perf_counter() - t0
    assert accepted == sum(len(b) for b in batches), f"accepted {accepted}"
    return accepted / elapsed


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time (user + system) so far of the server's processes and of every
    PostgreSQL process on the machine, read from /proc (Linux)."""
    procs: dict[int, tuple[str, int, float]] = {}  # pid -> (name, parent, cpu s)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # gone since listed
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        procs[int(entry.name)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)

    def in_server(pid: int) -> bool:
        while pid > 1 and pid in procs:
            if pid == server_pid:
                return True
            pid = procs[pid][1]
        return False

    return {
        "server": sum(c for pid, (_, _, c) in procs.items() if in_server(pid)),
        "postgres": sum(c for name, _, c in procs.values() if name == "postgres"),
    }


def bare_insert_rate(engine: Engine, n: int, seed: int) -> float:
    """Reference: `n` feedback rows by plain INSERT into a copy of the table, 1,000 per
    transaction (run between ingest rounds, so both see the machine in the same state)."""
    fleet = Fleet(1000, seed + 99)
    rows = list(events(n, fleet, seed + 99, YEAR_END + 10 * DAY, DAY))
    rows = [(f"ref{seed}-{r[0]}", *r[1:]) for r in rows]
    cols = ", ".join(COLUMNS)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE TABLE IF NOT EXISTS bench_ref (LIKE feedback INCLUDING ALL)"))
        else:
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS bench_ref AS SELECT * FROM feedback WHERE 0")
            )
    stmt = text(f"INSERT INTO bench_ref ({cols}) VALUES ({', '.join(':' + c for c in COLUMNS)})")
    dicts = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    t0 = time.perf_counter()
    for i in range(0, len(dicts), 1000):
        with engine.begin() as conn:
            conn.execute(stmt, dicts[i : i + 1000])
    return len(dicts) / (time.perf_counter() - t0)


def start_server(url: str, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).parent / "nps-edge"
    proc = subprocess.Popen(
        [str(exe), "server", "--db", url, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return proc, healthy(proc, port, log)


def healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> str:
    """The base URL once the server on `port` answers /healthz (120 s at most)."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return base
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a bounded wait for the port, not synchronisation
    proc.kill()
    raise RuntimeError(f"server did not start; see {log}")


def database(kind: str, workdir: Path, prefix: str = "nps_bench") -> tuple[str, Any]:
    """A fresh database's URL and what drops it (None for SQLite: a file in `workdir`)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", None
    import psycopg

    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{PG_ADMIN.rpartition('/')[0]}/{name}", drop


def run(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url, drop = database(kind, workdir)
    try:
        engine = make_engine(url)
        upgrade(engine)
        fleet = Fleet(args.devices, args.seed)
        span = args.days * DAY
        t0 = time.perf_counter()
        loaded = bulk_load(engine, events(args.events, fleet, args.seed, YEAR_END - span, span))
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_rollups(engine)
        rollup_s = time.perf_counter() - t0
        if kind == "postgres":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
            raw = engine.raw_connection()  # outside a transaction: as after a day of uptime
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        checked = verify(engine, (YEAR_END - span // 2) // DAY * DAY)
        with Session(engine) as s:
            # A gateway token belongs to one site (issue 12): one per site, all named gw-bench.
            gw = {
                site: create_token(s, name="gw-bench", role="gateway", site=site)
                for site in sorted(set(fleet.site))
            }
            op = create_token(s, name="bench-op", role="operator")
        proc, base = start_server(url, args.workers, workdir / f"server-{kind}.log")
        try:
            latency = time_queries(base, op, args.repeat)
            n = args.ingest_batches
            batches = ingest_batches(fleet, WARM_UP + ROUNDS * n, args.seed + 1)
            time_ingest(base, gw, batches[:WARM_UP], args.senders)  # each worker's first batches
            rounds = []  # (ingest events/s, bare INSERT rows/s, CPU ms per batch), alternated
            for r in range(ROUNDS):
                part = batches[WARM_UP + r * n : WARM_UP + (r + 1) * n]
                # The senders are this process's threads (its main thread waits).
                before = cpu_seconds(proc.pid) | {"senders": time.process_time()}
                rate = time_ingest(base, gw, part, args.senders)
                after = cpu_seconds(proc.pid) | {"senders": time.process_time()}
                cpu = {k: round((after[k] - before[k]) * 1000 / n, 1) for k in after}
                rounds.append((rate, bare_insert_rate(engine, n * 700, args.seed + r), cpu))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        scan = min(raw_scan_ms(engine) for _ in range(2))
        ingest_rate, bare, _ = sorted(rounds, key=lambda x: x[0] / x[1])[ROUNDS // 2]
        engine.dispose()
        return {
            "db": kind,
            "events": loaded,
            "load_s": round(load_s, 1),
            "rollups_s": round(rollup_s, 1),
            "verified_day_rows": checked,
            "latency_ms": latency,
            "raw_scan_fleet_ms": round(scan, 1),
            "ingest_events_per_s": round(ingest_rate),
            "bare_insert_rows_per_s": round(bare),
            "ingest_vs_bare": round(ingest_rate / bare, 3),
            "rounds": [
                {
                    "ingest": round(i),
                    "bare": round(b),
                    "ratio": round(i / b, 3),
                    "cpu_ms_per_batch": {
                        k: v for k, v in cpu.items() if kind == "postgres" or k != "postgres"
                    },
                }
                for i, b, cpu in rounds
            ],  # fmt: skip
        }
    finally:
        if drop is not None:
            drop()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--repeat", type=int, default=40, help="timed requests per query")
    p.add_argument("--ingest-batches", type=int, default=100)
    p.add_argument("--senders", type=int, default=4, help="concurrent gateways posting batches")
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    with tempfile.TemporaryDirectory(prefix="nps-bench-") as tmp:
        for kind in kinds:
            result = run(kind, args, Path(tmp))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
