"""N answers for the dashboard benchmark, made inside SQLite and kept in a cache file.

`python -m bench.dashboard_overview --answers 10M` needs ten million feedback rows
and their rollups; made in Python (bench.server_load) that takes about 50 minutes
here. This module makes them with one INSERT ... SELECT per chunk from a recursive
row counter, so SQLite does the work:

- Every random draw is the fractional part of `i * sqrt(p)` for the row number `i`
  and a prime `p` per draw (a Weyl sequence: equidistributed, independent across
  primes, and the same on every run: seeded by construction).
- The devices (1,000 over 20 sites, a Wi-Fi level, a battery, a firmware rollout)
  and the lookup tables of bands and health come from Python with the server's own
  rules (`server.ingest.health`), so a row's bands are the ones ingest would store.
- The rollups are summed with ingest's own SQL (`rollups.rollup_sql`): the finest
  cuboid from raw feedback, every other one from the smallest cuboid already built
  that holds its dimensions (sums of sums), each day table from its hour table.
  One sample day is then checked against `rollups.aggregate`, the Python reference
  the tests hold ingest to.

The file goes to ~/.cache/nps-edge/ (`$XDG_CACHE_HOME`), named by the count and
VERSION, and is reused by later runs; it is written under a temporary name and
renamed when complete, so an interrupted build is never reused.
"""

from __future__ import annotations

import math
import os
import sqlite3
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.server_load import check_rollups
from contract.nps import category
from contract.protocol import ROLES
from server.analytics import rollups, themes
from server.db.engine import make_engine, upgrade
from server.db.sql import quote
from server.ingest import health

VERSION = 1  # bump when the rows below change: files of another version are not reused
DEVICES = 1000
PER_SITE = 50
END = 1_795_000_000.0  # the year of answers ends here (as bench.server_load's)
DAY = 86400.0
SPAN = 365 * DAY
CHUNK = 500_000
REASONS = ("wait_time", "machine_fault", "price", "staff", "other")
TRIGGERS = ("cycle_complete", "service_visit", "walkup", "refill")
COMMENT_EVERY = 997  # one answer in about 1,000 (passive or detractor) has a phone comment
COMMENTS = (
    "waited ages in the queue, nobody at the desk",
    "the machine was broken again, screen froze",
    "too expensive for what it is",
    "card payment failed twice",
    "staff were friendly but it was dirty",
    "fine I guess",
)
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)


def cache_path(answers: int) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nps-edge"
    return root / f"overview-{answers}-v{VERSION}.db"


def parse_count(value: str) -> int:
    """`10M`, `200k`, `1000000`: a count of answers."""
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1:].lower(), 1)
    return int(float(value[:-1] if scale > 1 else value) * scale)


def _u(k: int, i: str = "i") -> str:
    """SQL for draw `k` of row `i` in [0, 1): frac(i * sqrt(prime k))."""
    a = math.sqrt(PRIMES[k])
    return f"(({i} * {a!r}) - CAST({i} * {a!r} AS INTEGER))"


def _device(i: str) -> str:
    """SQL for a row's device number: draw 0."""
    return f"CAST({_u(0, i)} * {DEVICES} AS INTEGER)"


def _lookups(conn: sqlite3.Connection) -> None:
    """The devices and the band and health tables, from the server's rules."""
    conn.executescript(
        "CREATE TEMP TABLE b_dev (d INTEGER PRIMARY KEY, device TEXT, site TEXT, rssi INTEGER,"
        " battery INTEGER, battery_band TEXT, rollout REAL);"
        "CREATE TEMP TABLE b_rssi (rssi INTEGER PRIMARY KEY, band TEXT);"
        "CREATE TEMP TABLE b_health (errors INTEGER, reboots INTEGER, rssi_band TEXT,"
        " battery_band TEXT, health TEXT, PRIMARY KEY (errors, reboots, rssi_band, battery_band));"
        "CREATE TEMP TABLE b_pick (kind TEXT, k INTEGER, value TEXT, PRIMARY KEY (kind, k));"
    )
    devs = []
    for d in range(DEVICES):
        w = (d + 0.5) / DEVICES
        rssi = -88 + int(frac(w * 7.31) * 44)
        battery = None if frac(w * 3.77) < 0.3 else 3300 + int(frac(w * 5.13) * 800)
        devs.append(
            (d, f"nps-{d:06d}", f"site-{d // PER_SITE:02d}", rssi, battery,
             health.battery_band(battery), frac(w * 11.7))
        )  # fmt: skip
    conn.executemany("INSERT INTO b_dev VALUES (?, ?, ?, ?, ?, ?, ?)", devs)
    conn.executemany(
        "INSERT INTO b_rssi VALUES (?, ?)", [(r, health.rssi_band(r)) for r in range(-100, -29)]
    )
    conn.executemany(
        "INSERT INTO b_health VALUES (?, ?, ?, ?, ?)",
        [
            (e, b, rb, bb, health.health_state(
                errors=e, reboots=b, offline_min=0.0, rssi_band=rb, battery_band=bb))
            for e in range(13) for b in range(1, 6)
            for rb in health.RSSI_BANDS for bb in health.BATTERY_BANDS
        ],
    )  # fmt: skip
    picks = [("reason", k, v) for k, v in enumerate(REASONS)]
    picks += [("trigger", k, v) for k, v in enumerate(TRIGGERS)]
    picks += [("role", k, v) for k, v in enumerate(ROLES)]
    picks += [("comment", k, v) for k, v in enumerate(COMMENTS)]
    conn.executemany("INSERT INTO b_pick VALUES (?, ?, ?)", picks)


def frac(x: float) -> float:
    return x - math.floor(x)


def _score_sql() -> str:
    """A score on answered rows, fewer promoters on weak Wi-Fi (as bench.server_load)."""
    weak = "(dev.rssi < -75)"
    return (
        f"CASE WHEN {_u(1)} >= 0.65 THEN NULL"
        f" WHEN {_u(2)} < CASE WHEN {weak} THEN 0.25 ELSE 0.45 END THEN 9 + ({_u(3)} < 0.5)"
        f" WHEN {_u(2)} < CASE WHEN {weak} THEN 0.45 ELSE 0.75 END THEN 7 + ({_u(3)} < 0.5)"
        f" ELSE CAST({_u(3)} * 7 AS INTEGER) END"
    )


def _category_sql(score: str) -> str:
    cases = " ".join(
        f"WHEN {score} = {s} THEN '{category(s)}'" for s in range(11)
    )  # contract/nps.py decides
    return f"CASE {cases} ELSE NULL END"


def _rows_sql(answers: int) -> str:
    """INSERT of rows :lo <= i < :hi into feedback, in time order."""
    step = SPAN / answers
    start = END - SPAN
    return f"""
INSERT INTO feedback (id, device, site, seq, boot, up_ms, t, ts, time_source, rx_ts, fw,
  outcome, score, category, prompt, trigger_kind, trigger_ref, reason, answer_ms, rssi,
  battery_mv, telemetry_id, errors_24h, reboots_24h, offline_min_24h, rssi_band, battery_band,
  health, gateway, survey, role)
WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i < :hi - 1),
drawn AS (
  SELECT n.i AS i, dev.*, {start!r} + (n.i + 0.5) * {step!r} AS t,
    {_score_sql()} AS score,
    CASE WHEN {_u(1)} < 0.65 THEN 'answered' WHEN {_u(1)} < 0.9 THEN 'timeout'
      ELSE 'dismissed' END AS outcome,
    dev.rssi + CAST({_u(4)} * 9 AS INTEGER) - 4 AS row_rssi,
    CASE WHEN {_u(5)} < 0.9 THEN 0 ELSE 1 + CAST({_u(6)} * 12 AS INTEGER) END AS errors,
    CASE WHEN {_u(7)} < 0.97 THEN 1 ELSE 2 + CAST({_u(8)} * 4 AS INTEGER) END AS reboots,
    CAST(n.i AS REAL) / {answers} AS phase, {_u(9)} AS u_reason, {_u(10)} AS u_pick,
    {_u(11)} AS u_prompt, {_u(12)} AS u_trigger, {_u(13)} AS u_survey, {_u(14)} AS u_role
  FROM n JOIN b_dev AS dev ON dev.d = {_device("n.i")}
), scored AS (SELECT drawn.*, {_category_sql("score")} AS category FROM drawn)
SELECT s.device || ':' || (s.i + 1), s.device, s.site, s.i + 1, 1, (s.i + 1) * 60000,
  s.t, s.t, 'ts', s.t + 0.5,
  CASE WHEN s.phase < 0.3 + 0.2 * s.rollout THEN '1.0.0'
    WHEN s.phase < 0.7 + 0.2 * s.rollout THEN '1.1.0' ELSE '1.2.0' END,
  s.outcome, s.score, s.category, CASE WHEN s.u_prompt < 0.9 THEN 'nps' ELSE 'service' END,
  (SELECT value FROM b_pick WHERE kind = 'trigger' AND k = CAST(s.u_trigger * 4 AS INTEGER)),
  NULL,
  CASE WHEN s.category = 'detractor' AND s.u_reason < 0.7 THEN (SELECT value FROM b_pick
    WHERE kind = 'reason' AND k = CAST(s.u_pick * {len(REASONS)} AS INTEGER)) END,
  CASE WHEN s.score IS NULL THEN NULL ELSE 2300 END, s.row_rssi, s.battery, NULL,
  s.errors, s.reboots, 0.0, r.band, s.battery_band, h.health, 'bench',
  CASE WHEN s.u_survey < 0.05 THEN 'relationship' ELSE 'transactional' END,
  CASE WHEN s.u_role < 0.5 THEN NULL ELSE (SELECT value FROM b_pick
    WHERE kind = 'role' AND k = CAST((s.u_role - 0.5) * 2 * {len(ROLES)} AS INTEGER)) END
FROM scored AS s JOIN b_rssi AS r ON r.rssi = s.row_rssi
JOIN b_health AS h ON h.errors = s.errors AND h.reboots = s.reboots
  AND h.rssi_band = r.band AND h.battery_band = s.battery_band
"""


def _comments_sql(answers: int) -> str:
    """Phone comments on one answer in COMMENT_EVERY, passives and detractors only."""
    every = COMMENT_EVERY
    return f"""
INSERT INTO voice_comment (event_id, device, seq, text, contact, sentiment, received_at, held)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + {every} FROM n WHERE i < {answers - every}),
picked AS MATERIALIZED (
  SELECT dev.device || ':' || (n.i + 1) AS id, (n.i / {every}) % {len(COMMENTS)} AS k
  FROM n JOIN b_dev AS dev ON dev.d = {_device("n.i")})
SELECT f.id, f.device, f.seq, c.value, NULL, s.sentiment, f.t + 60, 0
FROM picked CROSS JOIN feedback AS f ON f.id = picked.id
JOIN b_pick AS c ON c.kind = 'comment' AND c.k = picked.k
JOIN b_sentiment AS s ON s.k = picked.k
WHERE f.category IN ('passive', 'detractor')
"""


def _stage_view(source: str, dims: tuple[str, ...], every_survey: bool) -> str:
    """A view of a built hour table with STAGE_COLUMNS, '' for the dimensions it lacks."""
    cols = []
    for d in rollups.DIMS:
        if d in dims:
            cols.append(quote(d))
        elif d == "survey" and not every_survey:
            cols.append(f"'{rollups.TRANSACTIONAL}' AS survey")
        else:
            cols.append(f"'' AS {quote(d)}")
    counts = ", ".join(map(quote, rollups.COUNTS))
    return f"SELECT {', '.join(cols)}, bucket AS hour, {counts} FROM {quote(source)}"


RAW_STAGE = f"""SELECT site, device, prompt, trigger_kind AS "trigger", fw,
  COALESCE(reason, '') AS reason, rssi_band, battery_band, health, survey,
  COALESCE(role, '') AS role, CAST(t / {rollups.HOUR} AS INTEGER) * {rollups.HOUR} AS hour,
  category IS 'promoter' AS promoters, category IS 'passive' AS passives,
  category IS 'detractor' AS detractors, 1 AS shown FROM feedback"""


def _parent(name: str, dims: tuple[str, ...], built: list[str]) -> str | None:
    """The smallest built cuboid holding `dims` (of any survey for a transactional one)."""
    cuboids = dict(rollups.CUBOIDS)
    every = name in rollups.PROGRAMME
    fits = [
        b for b in built if set(dims) <= set(cuboids[b]) and (b in rollups.PROGRAMME or not every)
    ]
    return min(fits, key=lambda b: len(cuboids[b])) if fits else None


def build_rollups(conn: sqlite3.Connection) -> None:
    """Every rollup table with ingest's SQL, finest first, each from its smallest parent."""
    order = sorted(rollups.CUBOIDS, key=lambda c: -len(c[1]))
    built: list[str] = []
    for name, dims in order:
        parent = _parent(name, dims, built)
        if parent is None:
            source = RAW_STAGE
        else:
            source = _stage_view(
                rollups.table_name(parent, rollups.HOUR),
                dict(rollups.CUBOIDS)[parent],
                parent in rollups.PROGRAMME,
            )
        t0 = time.perf_counter()
        conn.execute(f"CREATE TEMP VIEW b_stage AS {source}")
        conn.execute(rollups.rollup_sql("b_stage", name, rollups.HOUR))
        conn.execute("DROP VIEW b_stage")
        if rollups.DAY in rollups.grains_of(name):
            own = rollups.table_name(name, rollups.HOUR)
            view = _stage_view(own, dims, name in rollups.PROGRAMME)
            conn.execute(f"CREATE TEMP VIEW b_stage AS {view}")
            conn.execute(rollups.rollup_sql("b_stage", name, rollups.DAY))
            conn.execute("DROP VIEW b_stage")
        conn.commit()
        built.append(name)
        _say(f"rollup {name} from {parent or 'feedback'}: {time.perf_counter() - t0:.0f} s")


def _devices(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO device (id, site, fw, gateway, boot, first_seen, last_seen, max_seq,"
        " received, promoters, passives, detractors, shown)"
        " SELECT device, MAX(site), MAX(fw), 'bench', 1, MIN(rx_ts), MAX(rx_ts), MAX(seq),"
        " COUNT(*), SUM(category IS 'promoter'), SUM(category IS 'passive'),"
        " SUM(category IS 'detractor'), COUNT(*) FROM feedback GROUP BY device"
    )


def verify(url: str, day_start: float) -> int:
    """The rollups of one day equal `rollups.aggregate` (ingest's reference) over its rows."""
    engine = create_engine(url)
    lo, hi = day_start, day_start + DAY
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT * FROM feedback WHERE t >= :lo AND t < :hi"), {"lo": lo, "hi": hi}
            ).mappings().all()  # fmt: skip
            check_rollups(conn, [dict(r) for r in rows], lo, hi)
    finally:
        engine.dispose()
    return len(rows)


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def build(answers: int, path: Path) -> None:
    """The database of `answers` rows at `path` (schema by the server's migrations)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{partial}")
    upgrade(engine)
    engine.dispose()
    conn = sqlite3.connect(partial)
    try:
        conn.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;"
            "PRAGMA temp_store=FILE;"
        )
        _lookups(conn)
        conn.execute("CREATE TEMP TABLE b_sentiment (k INTEGER PRIMARY KEY, sentiment REAL)")
        conn.executemany(
            "INSERT INTO b_sentiment VALUES (?, ?)",
            [(k, themes.sentiment(c)) for k, c in enumerate(COMMENTS)],
        )
        insert = _rows_sql(answers)
        t0 = time.perf_counter()
        for lo in range(0, answers, CHUNK):
            conn.execute(insert, {"lo": lo, "hi": min(answers, lo + CHUNK)})
            conn.commit()
            rate = (lo + CHUNK) / (time.perf_counter() - t0)
            _say(f"feedback {min(answers, lo + CHUNK):,} ({rate:,.0f} rows/s)")
        t0 = time.perf_counter()
        conn.execute(_comments_sql(answers))
        _devices(conn)
        conn.commit()
        _say(f"comments and devices: {time.perf_counter() - t0:.0f} s")
        build_rollups(conn)
        conn.execute("ANALYZE")
        conn.commit()
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    checked = verify(f"sqlite:///{partial}", (END - 100 * DAY) // DAY * DAY)
    _say(f"one day's rollups equal ingest's aggregation ({checked:,} rows)")
    partial.rename(path)


def database(answers: int) -> Path:
    """The cached database of `answers` rows, built first when missing."""
    path = cache_path(answers)
    if not path.exists():
        _say(f"building {path} (kept for later runs)")
        build(answers, path)
    return path
