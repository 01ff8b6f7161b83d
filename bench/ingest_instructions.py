"""CPU work of one ingest batch, counted in instructions (valgrind), on SQLite.

    .venv/bin/python -m bench.ingest_instructions          # about 2 minutes, needs valgrind

Wall-clock rates on a shared machine move by tens of percent between runs;
instruction counts do not (the same code and data give the same count to
within about 1 %). A child Python runs `server.ingest.batch.ingest_batch` in
process on 1,000-event batches (the `bench.server_load` ones) under
`valgrind --tool=callgrind`, once with 1 timed batch and once with 4; the
difference over 3 is one batch. The reference, counted the same way: a bare
executemany INSERT of the batch's 700 feedback rows (what `bench.server_load`
times as its reference).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import gc, sys, tempfile
from bench.server_load import COLUMNS, Fleet, events, ingest_batches
from server.app import GC_THRESHOLDS
from server.db.engine import make_engine, upgrade
from server.ingest.batch import ingest_batch
from server.settings import Settings
from sqlalchemy import text

mode, n = sys.argv[1], int(sys.argv[2])
engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
upgrade(engine)
settings = Settings()
# The same data whatever n, so that only the work on it differs between runs.
batches = ingest_batches(Fleet(1000, 7), 7, 8)
rows = [dict(zip(COLUMNS, r)) for r in events(700 * 7, Fleet(1000, 9), 9, 1.79e9, 86400)]
insert = text(f"INSERT INTO feedback ({', '.join(COLUMNS)}) "
              f"VALUES ({', '.join(':' + c for c in COLUMNS)})")
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)  # as server workers run
for i in range(3 + n):
    if mode == "ingest":
        ingest_batch(engine, gateway="gw-bench", events=batches[i], settings=settings, site=None)
    else:
        with engine.begin() as conn:
            conn.execute(insert, rows[700 * i : 700 * (i + 1)])
"""


def count(mode: str, n: int, workdir: Path) -> int:
    out = workdir / f"callgrind.{mode}.{n}"
    env = dict(os.environ, PYTHONMALLOC="malloc", PYTHONHASHSEED="0")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, "-c", CHILD, mode, str(n)],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if proc.returncode or not found:
        raise SystemExit(f"valgrind run failed ({mode}, {n}):\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="nps-bench-") as tmp:
        runs = [(m, n) for m in ("ingest", "bare") for n in (1, 4)]
        print(f"counting {len(runs)} runs under valgrind (about a minute each, two at once)")
        with ThreadPoolExecutor(2) as pool:
            got = dict(zip(runs, pool.map(lambda r: count(*r, Path(tmp)), runs), strict=True))
    per = {m: (got[(m, 4)] - got[(m, 1)]) / 3 for m in ("ingest", "bare")}
    print(
        json.dumps(
            {
                "ingest_instructions_per_batch": round(per["ingest"]),
                "bare_insert_700_rows_instructions": round(per["bare"]),
                "ratio": round(per["ingest"] / per["bare"], 2),
                "per_event": round(per["ingest"] / 1000),
            }
        )
    )


if __name__ == "__main__":
    main()
