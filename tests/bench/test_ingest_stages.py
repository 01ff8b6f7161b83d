"""bench.ingest_stages: each stage's CPU is counted, nested stages within their caller's,
and the ingest's functions are restored after."""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson

import server.ingest.batch as batch
from bench.fleet_devices import event as device_event
from bench.ingest_stages import STAGES, label, timed_stages
from server.db.engine import make_engine, upgrade
from server.settings import Settings


def test_stages_timed_nested_and_restored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stages.db'}"
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(3)
    now = round(time.time(), 3)
    events = [
        orjson.loads(device_event(f"nps-{d:06x}", "site-a", 1, rng)[1]) | {"rx_ts": now}
        for d in range(300)
    ]
    before = {(m.__name__, name): getattr(m, name) for m, name, _ in STAGES}
    with timed_stages() as spent:
        out = batch.ingest_batch(
            engine, gateway="gw", events=events, settings=Settings(db=url), site=None
        )
    assert out.accepted == len(events)
    assert {(m.__name__, name): getattr(m, name) for m, name, _ in STAGES} == before
    assert list(spent) == [label(*stage) for stage in STAGES]
    outer, inner = spent["batch.prepare"], spent["  prepare.join_feedback"]
    assert outer >= inner > 0
    assert outer >= sum(spent[label(*s)] for s in STAGES[4:10])
    assert spent["batch.validate"] > 0 and spent["batch._store_events"] > 0
    engine.dispose()
