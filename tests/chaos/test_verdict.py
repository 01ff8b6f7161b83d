"""The chaos verdict on made-up logs and server views: it passes a clean run and names each
kind of failure (a lost answer, a doubled one, a changed score, a wrong NPS, an uncounted
loss), so a green chaos run means what it says. No process is started."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.chaos.verdict import Logged, ServerView, attribute, judge, read_device_log

DEV = "nps-0a0b0c"
LOG = """\
0.500 screen 1 0 -
1.000 saved f 1 answered 9
1.010 acked f 1 {"id": "nps-0a0b0c:1", "type": "feedback", "outcome": "answered", "score": 9}
2.000 saved t 2 -
3.000 saved f 3 timeout -
3.500 # chaos: SIGKILL
4.000 acked f 3 {"id": "nps-0a0b0c:3", "type": "feedback", "outcome": "timeout"}
4.100 acked t 2 {"type": "telemetry", "errors": {"outbox_dropped_telemetry": 1}}
5.000 acked f 4 {"id": "nps-0a0b0c:4", "type": "feedback", "outcome": "answered", "score": 3}
"""


def logs(tmp_path: Path) -> dict[str, dict[int, Logged]]:
    path = tmp_path / f"{DEV}.out"
    path.write_text(LOG)
    return {DEV: read_device_log(path)}


def server(
    feedback: dict[int, tuple[str, int | None]],
    seqs: set[int],
    nps: dict[str, Any] | None = None,
    copies: int = 1,
) -> ServerView:
    rows = {f"{DEV}:{q}": {"outcome": o, "score": sc} for q, (o, sc) in feedback.items()}
    figures = {"n": 2, "promoters": 1, "passives": 0, "detractors": 1, "shown": 3, "nps": 0.0}
    return ServerView(
        Counter({i: copies for i in rows}), rows, {DEV: seqs}, {DEV: len(seqs)}, nps or figures
    )


GOOD = {1: ("answered", 9), 3: ("timeout", None), 4: ("answered", 3)}
NO_DROPS: dict[str, dict[str, Any]] = {"gw": {"dropped": {}, "dead_letters": {}, "duplicates": {}}}


def test_the_device_log_gives_each_event_its_kind_answer_and_times(tmp_path: Path) -> None:
    events = logs(tmp_path)[DEV]
    assert events[1] == Logged("feedback", "answered", 9, 1.0, 1.01)
    assert (events[2].kind, events[2].errors) == ("telemetry", {"outbox_dropped_telemetry": 1})
    assert (events[3].outcome, events[3].score, events[3].at) == ("timeout", None, 4.0)
    assert events[4].saved_at is None and events[4].score == 3  # killed before its saved line


def failures(
    tmp_path: Path,
    view: ServerView,
    gateways: dict[str, dict[str, Any]] = NO_DROPS,
    fillers: dict[str, int] | None = None,
    timeline: list[tuple[float, float, str]] | None = None,
) -> list[str]:
    v = judge(
        logs=logs(tmp_path), server=view, fillers=fillers or {}, gateways=gateways,
        timeline=timeline or [],
    )  # fmt: skip
    assert "NPS devices / server" in v.table
    return v.failures


def gateway(**dropped: int) -> dict[str, dict[str, Any]]:
    return {"gw": {"dropped": dropped, "dead_letters": {}, "duplicates": {}}}


def test_a_clean_run_passes(tmp_path: Path) -> None:
    assert failures(tmp_path, server(GOOD, {1, 2, 3, 4})) == []


def test_each_kind_of_failure_is_named(tmp_path: Path) -> None:
    one = {"n": 1, "promoters": 1, "passives": 0, "detractors": 0, "shown": 2, "nps": 100.0}
    lost = failures(
        tmp_path,
        server({1: GOOD[1], 3: GOOD[3]}, {1, 2, 3}, one),
        timeline=[(4.5, 6.0, "broker_kill: chaos-a")],
    )
    assert any("missing" in f and "broker_kill" in f for f in lost), lost
    assert any("NPS differs" in f for f in lost)
    doubled = failures(tmp_path, server(GOOD, {1, 2, 3, 4}, copies=2))
    assert any("more than once" in f for f in doubled)
    changed = failures(tmp_path, server({**GOOD, 4: ("answered", 4)}, {1, 2, 3, 4}))
    assert any("another outcome or score" in f for f in changed)


def test_a_loss_passes_only_as_counted_telemetry(tmp_path: Path) -> None:
    # seq 2 (telemetry) never stored; the device itself counted one outbox drop.
    assert failures(tmp_path, server(GOOD, {1, 3, 4})) == []
    # 100 filler events acked, 60 stored: 40 lost, the gateway counted 30.
    view = server(GOOD, {1, 2, 3, 4})
    view.seqs["chaos-fill-0"] = set(range(1, 61))
    short = failures(tmp_path, view, gateway(full_telemetry=30), {"chaos-fill-0": 100})
    assert any("40 events lost" in f for f in short), short
    dropped = failures(tmp_path, server(GOOD, {1, 2, 3, 4}), gateway(full_feedback=1))
    assert any("dropped 1 feedback" in f for f in dropped)


def test_a_loss_is_put_on_the_fault_before_it() -> None:
    timeline = [(1.0, 2.0, "device_kill: d"), (5.0, 9.0, "cut_uplink: srv0")]
    assert attribute(0.5, timeline) == "no fault yet"
    assert attribute(3.0, timeline) == "device_kill"
    assert attribute(6.0, timeline) == "cut_uplink"
