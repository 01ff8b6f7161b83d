"""Property: every figure the API gives equals a from-scratch computation over the raw events.

Random events (scores, unanswered prompts, devices, sites, firmware, prompts,
triggers, reasons, health readings, times with fractions of a second across
hour, day and week boundaries), random filters, ranges and groupings, on
SQLite and PostgreSQL. The expectation uses only `Tally` on raw scores.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect

from contract.nps import Tally
from tests.server.factory import T0, Api, feedback

DEVICES = {"nps-dev001": "north", "nps-dev002": "north", "nps-dev003": "south"}
FWS = ("1.0.0", "1.1.0")
PROMPTS = ("nps", "service")
KINDS = ("cycle_complete", "walkup")
REASONS = (None, "slow", "price")
SPAN = 9 * 86400  # crosses day and ISO week boundaries (T0 is a Wednesday)
GROUP_BY = (None, "hour", "day", "week", "weekday", "site", "device", "fw", "trigger",
            "reason", "rssi_band", "battery_band", "health")  # fmt: skip
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def rssi_band(v: int | None) -> str:
    return "none" if v is None else "strong" if v >= -60 else "ok" if v >= -75 else "weak"


def battery_band(v: int | None) -> str:
    return "none" if v is None else "good" if v >= 3700 else "low" if v >= 3400 else "critical"


def health(e: dict[str, Any]) -> str:
    """No telemetry, no reboots, no presence: health follows the bands alone."""
    r, b = rssi_band(e["ctx"]["rssi"]), battery_band(e["ctx"]["battery_mv"])
    if b == "critical":
        return "faulty"
    return "degraded" if r == "weak" or b == "low" else "healthy"


def key(group: str, e: dict[str, Any]) -> Any:
    d = dt.datetime.fromtimestamp(e["ts"], dt.UTC)
    return {
        "hour": lambda: d.strftime("%Y-%m-%dT%H:00Z"),
        "day": lambda: d.strftime("%Y-%m-%d"),
        "week": lambda: "{}-W{:02d}".format(*d.isocalendar()[:2]),
        "weekday": lambda: WEEKDAYS[d.weekday()],
        "site": lambda: e["site"],
        "device": lambda: e["device"],
        "fw": lambda: e["fw"],
        "trigger": lambda: e["trigger"]["kind"],
        "reason": lambda: e["reason"],
        "rssi_band": lambda: rssi_band(e["ctx"]["rssi"]),
        "battery_band": lambda: battery_band(e["ctx"]["battery_mv"]),
        "health": lambda: health(e),
    }[group]()


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    seqs: dict[str, int] = defaultdict(int)
    for _ in range(draw(st.integers(0, 60))):
        device = draw(st.sampled_from(sorted(DEVICES)))
        seqs[device] += 1
        score = draw(st.one_of(st.none(), st.integers(0, 10)))
        unanswered = draw(st.sampled_from(("timeout", "dismissed")))
        ts = T0 + draw(st.floats(0, SPAN, allow_nan=False).map(lambda x: round(x, 3)))
        out.append(
            feedback(
                device, seqs[device], score, ts=ts, site=DEVICES[device], boot=0,
                fw=draw(st.sampled_from(FWS)), prompt=draw(st.sampled_from(PROMPTS)),
                kind=draw(st.sampled_from(KINDS)), reason=draw(st.sampled_from(REASONS)),
                rssi=draw(st.sampled_from((None, -50, -70, -90))),
                battery_mv=draw(st.sampled_from((None, 3900, 3500, 3100))),
                outcome=None if score is not None else unanswered,
            )
        )  # fmt: skip
    return out


bound = st.one_of(
    st.none(),
    st.floats(-3600, SPAN + 3600, allow_nan=False).map(lambda x: T0 + round(x, 2)),
    st.integers(-2, SPAN // 3600 + 2).map(lambda h: (int(T0) // 3600 + h) * 3600.0),
    st.integers(-1, SPAN // 86400 + 1).map(lambda d: (int(T0) // 86400 + d) * 86400.0),
)
queries = st.fixed_dictionaries(
    {
        "from": bound,
        "to": bound,
        "site": st.sampled_from((None, "north", "south", "west")),
        "device": st.sampled_from((None, *sorted(DEVICES))),
        "fw": st.sampled_from((None, *FWS)),
        "prompt": st.sampled_from((None, *PROMPTS)),
        "trigger": st.sampled_from((None, *KINDS)),
        "group_by": st.sampled_from(GROUP_BY),
    }
)


def scratch(evs: list[dict[str, Any]], q: dict[str, Any]) -> dict[str, Any]:
    def keep(e: dict[str, Any]) -> bool:
        if q["from"] is not None and e["ts"] < q["from"]:
            return False
        if q["to"] is not None and e["ts"] >= q["to"]:
            return False
        return all(
            q[f] is None or q[f] == v
            for f, v in (("site", e["site"]), ("device", e["device"]), ("fw", e["fw"]),
                         ("prompt", e["prompt"]), ("trigger", e["trigger"]["kind"]))
        )  # fmt: skip

    rows = [e for e in evs if keep(e)]
    out: dict[str, Any] = {**Tally.of_scores([e["score"] for e in rows]).summary()}  # + "groups"
    groups: dict[Any, list[int | None]] = defaultdict(list)
    if q["group_by"]:
        for e in rows:
            groups[key(q["group_by"], e)].append(e["score"])
    order = (
        [k for k in WEEKDAYS if k in groups]
        if q["group_by"] == "weekday"
        else sorted(groups, key=lambda k: (k is None, k or ""))
    )
    out["groups"] = [{"key": k, **Tally.of_scores(groups[k]).summary()} for k in order]
    return out


def empty(engine: Engine) -> None:
    keep = {"alembic_version", "token", "login_session"}
    tables = [t for t in inspect(engine).get_table_names() if t not in keep]
    with engine.begin() as conn:
        for t in tables:
            conn.exec_driver_sql(f'DELETE FROM "{t}"')


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(evs=events(), qs=st.lists(queries, min_size=1, max_size=5))
def test_nps_equals_scratch_computation(
    api: Api, engine: Engine, evs: list[dict[str, Any]], qs: list[dict[str, Any]]
) -> None:
    empty(engine)
    for start in range(0, len(evs), 25):  # several batches, like a gateway
        api.ingest(evs[start : start + 25])
    for q in qs:
        params = {k: v for k, v in q.items() if v is not None}
        got = api.get("/api/v1/nps", **params)
        assert got == scratch(evs, q), params


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seqs=st.dictionaries(
        st.sampled_from(sorted(DEVICES)), st.sets(st.integers(1, 40), min_size=1), min_size=1
    )
)
def test_devices_and_gaps_equal_scratch(
    api: Api, engine: Engine, seqs: dict[str, set[int]]
) -> None:
    empty(engine)
    evs = [
        feedback(d, s, (s * 7) % 11 if s % 3 else None, site=DEVICES[d])
        for d, ss in seqs.items()
        for s in sorted(ss)
    ]
    api.ingest(evs)
    rows = {r["device"]: r for r in api.get("/api/v1/devices")}
    assert set(rows) == set(seqs)
    for d, ss in seqs.items():
        tally = Tally.of_scores([e["score"] for e in evs if e["device"] == d])
        assert (rows[d]["n"], rows[d]["nps"]) == (tally.n, tally.summary()["nps"])
        assert rows[d]["missing"] == max(ss) - len(ss)
        gaps = api.get(f"/api/v1/devices/{d}/gaps")
        lost = [s for s in range(1, max(ss) + 1) if s not in ss]
        assert [s for a, b in gaps["missing"] for s in range(a, b + 1)] == lost
        assert all(a <= b for a, b in gaps["missing"])
        assert (gaps["max_seq"], gaps["received"]) == (max(ss), len(ss))
