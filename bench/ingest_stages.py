"""This process's CPU time in each stage of `server.ingest.batch.ingest_batch`, for
`bench.ingest_batch --stages`.

Each stage's function is wrapped for the batches run with `timed_stages`, its CPU time
(`time.process_time`) summed: about 1 us of overhead per call, where cProfile's per-call
overhead inflates the stages of many small calls (a fleet batch's fetch of 2,000 rows one
at a time looked 3.6 ms under cProfile; fetched at once, the batch's CPU did not change).
Stages nest as indented: an outer one includes the inner ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from types import ModuleType
from typing import Any

import server.alerts.store as alert_store
import server.analytics.rollups as rollups
import server.ingest.batch as batch
import server.ingest.prepare as prepare
import server.ingest.timebase as timebase

# (module the caller looks the function up in, function name, depth), in call order.
STAGES: tuple[tuple[ModuleType, str, int], ...] = (
    (batch, "validate", 0),
    (batch, "_bound_to", 0),
    (batch, "_unless_resent", 0),
    (batch, "prepare", 0),
    (timebase, "anchors", 1),
    (prepare, "telemetry_rows", 1),
    (prepare, "join_feedback", 1),
    (prepare, "device_rows", 1),
    (alert_store, "on_ingest", 1),
    (rollups, "finest", 1),
    (batch, "_store_events", 0),
    (batch, "upsert", 0),
    (alert_store, "insert", 0),
    (alert_store, "_active_detractors", 1),
    (batch, "roll_up", 0),
)


def label(module: ModuleType, name: str, depth: int) -> str:
    return "  " * depth + f"{module.__name__.rsplit('.', 1)[-1]}.{name}"


def _timed(fn: Callable[..., Any], spent: dict[str, float], key: str) -> Callable[..., Any]:
    @wraps(fn)
    def timed(*args: Any, **kw: Any) -> Any:
        began = time.process_time()
        try:
            return fn(*args, **kw)
        finally:
            spent[key] += time.process_time() - began

    return timed


@contextmanager
def timed_stages() -> Iterator[dict[str, float]]:
    """Seconds of CPU per stage (by `label`) while inside; the functions restored after."""
    spent = {label(*stage): 0.0 for stage in STAGES}
    originals = [(module, name, getattr(module, name)) for module, name, _ in STAGES]
    for module, name, depth in STAGES:
        setattr(module, name, _timed(getattr(module, name), spent, label(module, name, depth)))
    try:
        yield spent
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
