"""One fleet-shaped ingest batch, in process: 1,000 events from 1,000 devices, timed against
a bare INSERT of the same rows in the same run.

    .venv/bin/python -m bench.ingest_batch --db postgresql            # about 2 minutes
    .venv/bin/python -m bench.ingest_batch --db both --profile        # and cProfile's top list
    .venv/bin/python -m bench.ingest_batch --db sqlite --sampling     # north star counters

A fresh database (PostgreSQL: a database of its own, dropped after; SQLite: a temp
file) is loaded as after a long fleet run: 10,000 registered devices on 2 sites,
`--history` feedback rows (the rollups and device rows built from them), telemetry of
the last day, and an open detractor alert per device and trigger kind (30,000, each
with 10 answers folded in) beside 2 closed ones per device. Then 10 warm-up batches
give every device a boot record, and `--batches` batches are timed through
`server.ingest.batch.ingest_batch` as the route calls it (the gateway token's site,
the server workers' GC thresholds).

A batch is what `bench.fleet_devices` sends through one site's gateway: 1,000 devices
in turn, one event each, 80 % feedback (65 % answered, scores uniform 0-10, so about
64 % of answers are detractors, each folded into its device's open alert) and 20 %
telemetry. After each batch, its reference: the same events as rows (feedback and
telemetry, no health join) by a plain executemany INSERT into copies of the tables,
in one transaction. Reported per batch: wall ms (the median), CPU ms (the mean) of this
process and (PostgreSQL) of its backends from /proc, the ratios to the reference, and
the load average. `--stages` then runs as many batches again, timing this process's CPU
in each stage of the ingest (`bench.ingest_stages`); `--profile` as many under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from bench.fleet_devices import TRIGGERS
from bench.fleet_devices import event as device_event
from bench.ingest_stages import timed_stages
from bench.server_load import Fleet, build_rollups, bulk_load, database, events
from server.alerts.rules import collapsed_title, detractor_alert, detractor_key, folded, started
from server.app import GC_THRESHOLDS
from server.db.engine import make_engine, upgrade
from server.db.sql import insert_rows, table_of
from server.ingest.batch import ingest_batch
from server.models import Alert, Feedback, RegisteredDevice, Telemetry
from server.settings import Settings

DEVICES = 10_000
SITES = ("site-a", "site-b")  # bench.fleet_load: two sites' gateways, 5,000 devices each
BATCH = 1_000
WARM_UP = 10  # every device once
TICK = os.sysconf("SC_CLK_TCK")
HEALTH = {"rssi": -61.0, "battery_mv": 3900.0, "telemetry_id": None, "errors_24h": 0,
          "reboots_24h": 1, "offline_min_24h": 0.0, "rssi_band": "ok", "battery_band": "good",
          "health": "healthy"}  # fmt: skip


def site_of(d: int) -> str:
    return SITES[d * len(SITES) // DEVICES]


def preload(engine: Engine, history: int, now: float, seed: int) -> Fleet:
    """The state of a long fleet run; the fleet with each device's last seq."""
    fleet = Fleet(DEVICES, seed)
    fleet.site = [site_of(d) for d in range(DEVICES)]
    bulk_load(engine, events(history, fleet, seed, now - 3 * 86400.0, 2 * 86400.0))
    build_rollups(engine)
    with Session(engine) as s:
        insert_rows(s, table_of(RegisteredDevice), [
            {"device": dev, "site": fleet.site[d], "username": dev, "password_hash": "-",
             "created_at": now - 86400.0 * 30} for d, dev in enumerate(fleet.ids)
        ])  # fmt: skip
        telemetry = []
        for d, dev in enumerate(fleet.ids):
            for k in range(4):  # every 6 hours over the last day
                fleet.seq[d] += 1
                t = now - 86400.0 + k * 21600.0 + d % 3600
                telemetry.append(telemetry_row(dev, fleet.site[d], fleet.seq[d], t))
        insert_rows(s, table_of(Telemetry), telemetry)
        insert_rows(s, table_of(Alert), alerts(fleet, now, random.Random(seed)))
        s.commit()
    return fleet


def alerts(fleet: Fleet, now: float, rng: random.Random) -> list[dict[str, Any]]:
    """Per device: an open detractor alert per trigger kind with 10 answers, 2 closed."""
    out: list[dict[str, Any]] = []
    for d, dev in enumerate(fleet.ids):
        for n, kind in enumerate((*TRIGGERS, TRIGGERS[0], TRIGGERS[1])):
            answers = [
                detractor_alert(
                    {
                        "id": f"{dev}:h{n}-{i}",
                        "device": dev,
                        "site": fleet.site[d],
                        "t": now - 86400.0 + i * 600 + n,
                        "score": rng.randint(0, 6),
                        "prompt": "nps",
                        "trigger_kind": kind,
                        "trigger_ref": f"tx-{i}",
                        "reason": None,
                        "fw": "1.0.0",
                        **HEALTH,
                    },
                    now - 86400.0,
                )  # fmt: skip
                for i in range(10)
            ]
            first = answers[0]
            detail = folded(started(first["detail"], first["feedback_id"]), answers[1:])
            closed = n >= len(TRIGGERS)
            out.append(
                dict(first, title=collapsed_title(detractor_key(first), detail), detail=detail,
                     status="closed" if closed else "open", updated_at=now - 3600.0,
                     closed_at=now - 7200.0 if closed else None)
            )  # fmt: skip
    out.sort(key=lambda a: a["status"] == "open")  # the closed ones are older
    return out


def telemetry_row(device: str, site: str, seq: int, t: float) -> dict[str, Any]:
    return {"id": f"{device}:{seq}", "device": device, "site": site, "seq": seq, "boot": 1,
            "up_ms": seq * 1000, "t": t, "ts": t, "rx_ts": t + 0.5, "fw": "1.0.0",
            "battery_mv": 3900, "rssi": -61, "heap_free": 21000, "heap_min": 17000,
            "uptime_s": seq, "temp_c": 36.5, "outbox_depth": 0, "reset_cause": "power_on",
            "errors": {}, "errors_total": 0, "errors_delta": 0}  # fmt: skip


def batches(
    fleet: Fleet, count: int, start: int, rng: random.Random, *, sampling: bool = False
) -> list[list[dict[str, Any]]]:
    """Batch i: one site's gateway, its devices' next 1,000 in turn, one event each
    (`bench.fleet_devices.event`), received now. `sampling`: each reading carries the
    counters of a device prompting 1 in 4 (3 of 4 transactions sampled out, so every
    reading raises them and the north star counts it: `server.ingest.unprompted`)."""
    per_site = DEVICES // len(SITES)
    out = []
    for i in range(start, start + count):
        site = i % len(SITES)
        first = site * per_site + (i // len(SITES)) * BATCH % per_site
        batch = []
        now = round(time.time(), 3)
        for d in range(first, first + BATCH):
            fleet.seq[d] += 1
            _, payload = device_event(fleet.ids[d], fleet.site[d], fleet.seq[d], rng)
            ev = orjson.loads(payload) | {"ts": now, "rx_ts": now + 0.2}
            if sampling and ev["type"] == "telemetry":
                ev["sampling"] = {"sampled_out": 3 * ev["seq"] // 4, "throttled": 0, "expired": 0}
            batch.append(ev)
        out.append(batch)
    return out


def reference_rows(batch: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The batch's events as the rows ingest stores, without its work (time, health)."""
    feedback, telemetry = [], []
    for ev in batch:
        common = {k: ev[k] for k in ("id", "device", "site", "seq", "boot", "up_ms", "ts",
                                     "rx_ts", "fw")} | {"t": ev["ts"]}  # fmt: skip
        if ev["type"] == "telemetry":
            row = telemetry_row(ev["device"], ev["site"], ev["seq"], ev["ts"])
            telemetry.append(row | common | {"errors": "{}", "sampling": None})
            continue
        score = ev.get("score")
        cat = None if score is None else ("promoter" if score >= 9 else
                                          "passive" if score >= 7 else "detractor")  # fmt: skip
        feedback.append(common | HEALTH | {
            "time_source": "ts", "outcome": ev["outcome"], "score": score, "category": cat,
            "prompt": ev["prompt"], "trigger_kind": ev["trigger"]["kind"],
            "trigger_ref": ev["trigger"]["ref"], "reason": None, "answer_ms": ev["answer_ms"],
            "survey": "transactional", "role": None, "gateway": "gw-bench",
        })  # fmt: skip
    return {"feedback": feedback, "telemetry": telemetry}


def make_reference_tables(engine: Engine) -> dict[str, Any]:
    """Plain copies of feedback and telemetry (their indexes on PostgreSQL), and
    for each an INSERT statement of all its columns."""
    stmts = {}
    with engine.begin() as conn:
        for model in (Feedback, Telemetry):
            name = table_of(model).name
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"CREATE TABLE ref_{name} (LIKE {name} INCLUDING ALL)")
            else:
                conn.exec_driver_sql(f"CREATE TABLE ref_{name} AS SELECT * FROM {name} WHERE 0")
            cols = [c.name for c in table_of(model).c]
            stmts[name] = text(f"INSERT INTO ref_{name} ({', '.join(cols)})"
                               f" VALUES ({', '.join(':' + c for c in cols)})")  # fmt: skip
    return stmts


def analyze(engine: Engine) -> None:
    """Statistics for the planner, as after a day of autovacuum."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


Rows = dict[str, list[dict[str, Any]]]


def bare_insert(engine: Engine, stmts: dict[str, Any], rows: Rows) -> None:
    with engine.begin() as conn:
        for name, some in rows.items():
            conn.execute(stmts[name], some)


class Backends:
    """CPU time of the PostgreSQL backends serving `engine` (every connection it opens),
    read from /proc: the database's share of a batch's work."""

    def __init__(self, engine: Engine) -> None:
        self.pids: set[int] = set()
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_conn: Any, _record: Any) -> None:
        self.pids.add(dbapi_conn.info.backend_pid)

    def seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                raw = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # a backend closed by the pool
            fields = raw[raw.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        return total


def timed(
    backends: Backends, fn: Callable[..., Any], *args: Any
) -> tuple[Any, tuple[float, float, float]]:
    """What `fn(*args)` returns, and its (wall ms, this process's CPU ms, the backends'
    CPU ms)."""
    wall, cpu, db = time.perf_counter(), time.process_time(), backends.seconds()
    out = fn(*args)
    return out, ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000,
                 (backends.seconds() - db) * 1000)  # fmt: skip


def run(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url, drop = database("sqlite" if kind == "sqlite" else "postgres", workdir, "nps_ingest")
    try:
        engine = make_engine(url)
        backends = Backends(engine)
        upgrade(engine)
        began = time.perf_counter()
        fleet = preload(engine, args.history, time.time(), args.seed)
        stmts = make_reference_tables(engine)
        analyze(engine)
        load_s = time.perf_counter() - began
        settings = Settings(db=url)
        rng = random.Random(args.seed + 1)

        def ingest(batch: list[dict[str, Any]]) -> Any:
            out = ingest_batch(engine, gateway="gw-bench", events=batch, settings=settings,
                               site=batch[0]["site"])  # fmt: skip
            assert out.accepted == len(batch), (out.accepted, out.rejected[:1])
            return out

        def next_batches(start: int, count: int = args.batches) -> list[list[dict[str, Any]]]:
            return batches(fleet, count, start, rng, sampling=args.sampling)

        for batch in next_batches(0, WARM_UP):
            ingest(batch)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)  # as server workers run
        load = [os.getloadavg()]
        rows: list[tuple[float, ...]] = []
        opened = 0
        for batch in next_batches(WARM_UP):
            out, i = timed(backends, ingest, batch)
            opened += len(out.alerts)
            _, r = timed(backends, bare_insert, engine, stmts, reference_rows(batch))
            rows.append((*i, *r))
        load.append(os.getloadavg())
        # Wall time: the median batch. CPU: the mean, as /proc counts the backends'
        # in ticks of 10 ms (a batch's median would be 0, 10 or 20 ms).
        cols = list(zip(*rows, strict=True))
        med = [
            statistics.median(c) if k in (0, 3) else statistics.fmean(c) for k, c in enumerate(cols)
        ]
        result: dict[str, Any] = {
            "db": kind, "batches": args.batches, "history_rows": args.history,
            "sampling": args.sampling,
            "load_s": round(load_s, 1),
            "ingest_ms": round(med[0], 1), "ingest_cpu_ms": round(med[1], 1),
            "ingest_db_cpu_ms": round(med[2], 1),
            "bare_ms": round(med[3], 1), "bare_cpu_ms": round(med[4], 1),
            "bare_db_cpu_ms": round(med[5], 1),
            "ratio_wall": round(med[0] / med[3], 2),
            "ratio_cpu": round((med[1] + med[2]) / (med[4] + med[5]), 2),
            "new_alerts_per_batch": round(opened / args.batches, 1),
            "loadavg_1m": [round(la[0], 2) for la in load],
        }  # fmt: skip
        if args.stages:
            result["stages_cpu_ms"] = stages(next_batches(WARM_UP + args.batches), ingest)
        if args.profile:
            result["profile"] = profile(next_batches(WARM_UP + args.batches), ingest, args.top)
        engine.dispose()
        return result
    finally:
        if drop is not None:
            drop()


def stages(todo: list[list[dict[str, Any]]], ingest: Callable[[Any], Any]) -> dict[str, float]:
    """This process's CPU ms per batch in each stage of the ingest (`bench.ingest_stages`),
    and in all of it, over the batches `todo`."""
    with timed_stages() as spent:
        began = time.process_time()
        for batch in todo:
            ingest(batch)
        total = time.process_time() - began
    per_batch = {"all": total, **spent}
    return {k: round(v / len(todo) * 1000, 2) for k, v in per_batch.items()}


def profile(todo: list[list[dict[str, Any]]], ingest: Callable[[Any], Any], top: int) -> str:
    """cProfile's top list (cumulative time) over the batches `todo`."""
    prof = cProfile.Profile()
    for batch in todo:
        prof.runcall(ingest, batch)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    listing = out.getvalue()
    return f"{len(todo)} batches under cProfile\n" + listing[listing.index("   ncalls") :]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="postgresql")
    p.add_argument("--batches", type=int, default=12, help="timed batches")
    p.add_argument("--history", type=int, default=200_000, help="feedback rows loaded first")
    p.add_argument("--profile", action="store_true", help="also cProfile as many batches")
    p.add_argument(
        "--stages", action="store_true", help="also CPU ms per ingest stage, as many batches"
    )
    p.add_argument("--top", type=int, default=40, help="lines of the cProfile list")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--sampling", action="store_true",
        help="readings carry sampling counters that rise (a device prompting 1 in 4)",
    )  # fmt: skip
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="nps-bench-") as tmp:
        for kind in ("postgresql", "sqlite") if args.db == "both" else (args.db,):
            report(run(kind, args, Path(tmp)))


def report(result: dict[str, Any]) -> None:
    """One JSON line of figures, then the stages' CPU and the cProfile list if there are."""
    listing = result.pop("profile", None)
    staged = result.pop("stages_cpu_ms", None)
    print(json.dumps(result), flush=True)
    if staged:
        print("CPU ms per batch by stage (indented: inside the one above)", flush=True)
        for name, ms in staged.items():
            print(f"{ms:8.2f}  {name}", flush=True)
    if listing:
        print(listing, flush=True)


if __name__ == "__main__":
    main()
