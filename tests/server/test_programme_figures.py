"""Property: figures by `survey` and `role` equal a from-scratch computation over the raw
events, and without a survey filter only transactional answers count (contract,
"Additions of December 2026"). Old events without `survey` are transactional.
A device with another of its dimensions (`device` and `trigger` filters, groups by
trigger, reason or hour) is read from the every-survey `programme_full` rollup even
for the transactional default: those queries prove its survey filter."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from contract.nps import Tally
from contract.protocol import ROLES
from tests.server.factory import T0, Api, feedback
from tests.server.test_figures_property import DEVICES, KINDS, REASONS, SPAN, bound, empty, key

SURVEYS = (None, "transactional", "relationship")  # None: the field absent
GROUP_BY = (None, "survey", "role", "site", "day", "health", "device", "trigger", "reason", "hour")


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    seqs: dict[str, int] = defaultdict(int)
    for _ in range(draw(st.integers(0, 50))):
        device = draw(st.sampled_from(sorted(DEVICES)))
        seqs[device] += 1
        score = draw(st.one_of(st.none(), st.integers(0, 10)))
        extra: dict[str, Any] = {}
        if (survey := draw(st.sampled_from(SURVEYS))) is not None:
            extra["survey"] = survey
        if (role := draw(st.sampled_from((None, "absent", *ROLES)))) != "absent":
            extra["role"] = role
        ts = T0 + draw(st.floats(0, SPAN, allow_nan=False).map(lambda x: round(x, 3)))
        out.append(
            feedback(
                device, seqs[device], score, ts=ts, site=DEVICES[device], boot=0,
                rssi=draw(st.sampled_from((None, -50, -90))), kind=draw(st.sampled_from(KINDS)),
                reason=draw(st.sampled_from(REASONS)), **extra,
            )
        )  # fmt: skip
    return out


queries = st.fixed_dictionaries(
    {
        "from": bound,
        "to": bound,
        "site": st.sampled_from((None, "north", "south")),
        "device": st.sampled_from((None, *sorted(DEVICES))),
        "trigger": st.sampled_from((None, *KINDS)),
        "survey": st.sampled_from((None, "transactional", "relationship")),
        "role": st.sampled_from((None, *ROLES)),
        "group_by": st.sampled_from(GROUP_BY),
    }
)


def survey_of(e: dict[str, Any]) -> str:
    return str(e.get("survey") or "transactional")


def scratch(evs: list[dict[str, Any]], q: dict[str, Any]) -> dict[str, Any]:
    """The expected answer, from raw scores and the contract's words alone."""
    split_by_survey = q["group_by"] == "survey" and q["survey"] is None
    wanted = q["survey"] or (None if split_by_survey else "transactional")

    def keep(e: dict[str, Any]) -> bool:
        return (
            (q["from"] is None or e["ts"] >= q["from"])
            and (q["to"] is None or e["ts"] < q["to"])
            and (q["site"] is None or e["site"] == q["site"])
            and (q["device"] is None or e["device"] == q["device"])
            and (q["trigger"] is None or e["trigger"]["kind"] == q["trigger"])
            and (wanted is None or survey_of(e) == wanted)
            and (q["role"] is None or e.get("role") == q["role"])
        )

    rows = [e for e in evs if keep(e)]
    total = [e for e in rows if not split_by_survey or survey_of(e) == "transactional"]
    out: dict[str, Any] = {**Tally.of_scores([e["score"] for e in total]).summary()}
    groups: dict[Any, list[int | None]] = defaultdict(list)
    for e in rows if q["group_by"] else ():
        g = q["group_by"]
        k = survey_of(e) if g == "survey" else e.get("role") if g == "role" else key(g, e)
        groups[k].append(e["score"])
    order = sorted(groups, key=lambda k: (k is None, k or ""))
    out["groups"] = [{"key": k, **Tally.of_scores(groups[k]).summary()} for k in order]
    return out


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(evs=events(), qs=st.lists(queries, min_size=1, max_size=6))
def test_nps_by_survey_and_role_equals_scratch(
    api: Api, engine: Engine, evs: list[dict[str, Any]], qs: list[dict[str, Any]]
) -> None:
    empty(engine)
    for start in range(0, len(evs), 20):
        api.ingest(evs[start : start + 20])
    for q in qs:
        params = {k: v for k, v in q.items() if v is not None}
        assert api.get("/api/v1/nps", **params) == scratch(evs, q), params


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(evs=events())
def test_default_counts_transactional_answers_only(
    api: Api, engine: Engine, evs: list[dict[str, Any]]
) -> None:
    empty(engine)
    api.ingest(evs)
    got = api.get("/api/v1/nps")
    transactional = [e["score"] for e in evs if survey_of(e) == "transactional"]
    assert (got["n"], got["shown"], got["nps"]) == (
        Tally.of_scores(transactional).n,
        len(transactional),
        Tally.of_scores(transactional).summary()["nps"],
    )
    # ... and the relationship figure is its own, never added in.
    rel = api.get("/api/v1/nps", survey="relationship")
    assert rel["shown"] == sum(survey_of(e) == "relationship" for e in evs)


def test_survey_and_role_are_stored_and_bad_values_reject_one_event(api: Api) -> None:
    good = feedback("nps-dev001", 1, 9, site="north", survey="relationship", role="buyer")
    bad_survey = feedback("nps-dev001", 2, 9, site="north", survey="quarterly")
    bad_role = feedback("nps-dev001", 3, 9, site="north", role="ceo" * 40)
    not_text = feedback("nps-dev001", 4, 9, site="north", role=7)
    got = api.ingest([good, bad_survey, bad_role, not_text])
    assert got["accepted"] == 1
    assert [(r["index"], r["error"].split(":")[0]) for r in got["rejected"]] == [
        (1, "survey"), (2, "role"), (3, "role"),
    ]  # fmt: skip
    assert all(len(r["error"]) < 200 for r in got["rejected"])
    items = api.get("/api/v1/feedback", survey="relationship")["items"]
    assert [(i["survey"], i["role"]) for i in items] == [("relationship", "buyer")]
    for params in ({"survey": "quarterly"}, {"role": "ceo"}, {"group_by": "colour"}):
        r = api.client.get(
            "/api/v1/nps", params=params,
            headers={"Authorization": f"Bearer {api.tokens['operator']}"},
        )  # fmt: skip
        assert r.status_code == 422, params


def test_transactional_figures_by_device_and_trigger_leave_relationship_answers_out(
    api: Api,
) -> None:
    """The transactional figures that need a device and another dimension are read from
    the every-survey `programme_full` rollup (hour table and raw edges): its relationship
    rows never count in them."""
    evs = []
    for i, (survey, score) in enumerate(
        [(None, 9), ("transactional", 10), ("relationship", 0), ("relationship", 1), (None, 3)]
    ):
        ts = T0 + i * 5000.0  # across hours, inside one day
        extra: dict[str, Any] = {"survey": survey} if survey else {}
        evs.append(
            feedback("nps-dev001", i + 1, score, ts=ts, site="north", kind="walkup",
                     reason="slow", **extra)
        )  # fmt: skip
    api.ingest(evs)
    days = {"from": int(T0) // 86400 * 86400, "to": (int(T0) // 86400 + 2) * 86400}
    edges = {"from": T0 + 100.0, "to": T0 + 4 * 5000.0 + 1.0}  # partial hours at both ends
    for params in (
        {"device": "nps-dev001", "group_by": "trigger"},
        {"device": "nps-dev001", "trigger": "walkup", "group_by": "hour"},
        {"device": "nps-dev001", "group_by": "reason", **edges},
        {"trigger": "walkup", "group_by": "device", **days},
    ):
        got = api.get("/api/v1/nps", **params)
        assert (got["n"], got["promoters"], got["detractors"]) == (
            (2, 1, 1) if params.get("from") == edges["from"] else (3, 2, 1)
        ), params
        assert sum(g["shown"] for g in got["groups"]) == got["shown"], params
