"""The pure queue policy: admission at the edge, batching, server answers, backoff."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.protocol import IngestRequest, IngestResult, InvalidEvent, parse_event, parse_topic
from gateway.policy import (
    Backoff,
    Event,
    Presence,
    Rejected,
    _parse_topic,
    admit,
    batch_size,
    envelope,
    outcome,
    topic_device,
)

ROOT = "nps/v1"
T = "nps/v1/nps-a1b2c3/feedback"


def test_valid_feedback_is_admitted_with_rx_ts(make):
    judged = admit(T, make.payload(make.feedback(seq=7)), 1795000001.25, ROOT)
    assert isinstance(judged, Event)
    assert (judged.id, judged.device, judged.kind) == ("nps-a1b2c3:7", "nps-a1b2c3", "feedback")
    body = json.loads(judged.body)
    assert body["rx_ts"] == 1795000001.25
    parse_event(body, forwarded=True)


def test_unknown_fields_travel_to_the_server(make):
    judged = admit(T, make.payload(make.feedback(extra={"x": 1})), 1.0, ROOT)
    assert isinstance(judged, Event)
    assert json.loads(judged.body)["extra"] == {"x": 1}


@pytest.mark.parametrize(
    "topic, raw, reason",
    [
        (T, b"not json", "not JSON"),
        (T, b"[1, 2]", "JSON object"),
        (T, b"\xff\xfe", "not UTF-8"),
        (T, None, "too large"),
        (T, {"score": 11}, "score"),
        (T, {"score": True}, "score"),
        (T, {"score": 7.0}, "score"),
        ("nps/v1/nps-other1/feedback", {}, "does not match topic"),
        ("nps/v1/nps-a1b2c3/telemetry", {}, "telemetry"),
        ("nps/v1/NOPE/feedback", {}, "device_id"),
        ("nps/v1/nps-a1b2c3/cmd", {}, "does not carry events"),
        (T, {"id": "nps-a1b2c3:99"}, "id must be"),
        (T, "no seq", "seq"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(make, topic, raw, reason):
    if raw is None:
        raw = make.payload(make.feedback(pad="x" * 3000))
    elif raw == "no seq":
        event = make.feedback()
        del event["seq"]
        raw = make.payload(event)
    elif isinstance(raw, dict):
        raw = make.payload(make.feedback(**raw))
    judged = admit(topic, raw, 5.0, ROOT)
    assert isinstance(judged, Rejected)
    assert reason in judged.reason
    # kept as received, cut to the first 2,048 bytes; `size` says how long it was
    assert (judged.topic, judged.payload, judged.rx_ts) == (topic, raw[:2048], 5.0)
    assert judged.size == len(raw)


def test_a_lone_surrogate_in_an_error_name_is_a_dead_letter_at_the_edge(make):
    """JSON's `\\ud800` in an `errors` name, which nothing downstream can store: the
    edge's parse refuses it, the contract's names being bounded text (the server's own
    check: tests/server/test_robustness.py)."""
    raw = make.payload(make.telemetry(errors={"SURR": 1})).replace(b"SURR", b"\\ud800")
    judged = admit("nps/v1/nps-a1b2c3/telemetry", raw, 5.0, ROOT)
    assert isinstance(judged, Rejected) and judged.reason.startswith("errors")
    fine = make.payload(make.telemetry(errors={"wifi_reconnect": 1, "d\u00e9j\u00e0": 2}))
    assert isinstance(admit("nps/v1/nps-a1b2c3/telemetry", fine, 5.0, ROOT), Event)


def test_status_becomes_presence_and_cleared_retained_is_ignored():
    topic = "nps/v1/nps-a1b2c3/status"
    judged = admit(topic, b'{"online": true, "fw": "1.0.0", "boot": 7}', 3.0, ROOT)
    assert judged == Presence("nps-a1b2c3", True, "1.0.0", 7, 3.0)
    assert admit(topic, b'{"online": false}', 4.0, ROOT) == Presence(
        "nps-a1b2c3", False, None, None, 4.0
    )
    assert admit(topic, b"", 5.0, ROOT) is None
    bad = admit(topic, b'{"online": "yes"}', 6.0, ROOT)
    assert isinstance(bad, Rejected) and "online" in bad.reason


def test_envelope_is_an_ingest_request(make):
    bodies = [admit(T, make.payload(make.feedback(seq=i)), 1.0, ROOT).body for i in (1, 2)]
    request = IngestRequest.model_validate_json(envelope("gw-1", bodies))
    assert request.gateway == "gw-1"
    assert [e["id"] for e in request.events] == ["nps-a1b2c3:1", "nps-a1b2c3:2"]


def test_batch_size_respects_event_and_byte_limits():
    assert batch_size([100] * 5000, "gw") == 1000
    assert batch_size([100] * 10, "gw", max_events=4) == 4
    n = batch_size([3000] * 2000, "gw")
    body = len(envelope("gw", [b"x" * 3000] * n))
    assert n < 1000 and body <= 2 * 1024 * 1024 < body + 3001
    assert batch_size([5_000_000], "gw") == 1  # never stuck: a single event always goes


def test_outcome_maps_rejected_indexes():
    rejected = [{"index": 1, "id": "a", "error": "x"}]
    result = IngestResult(accepted=2, duplicates=1, rejected=rejected)
    assert outcome(4, result) == {1: "x"}
    with pytest.raises(ValueError, match="index 9"):
        outcome(4, IngestResult(accepted=3, rejected=[{"index": 9, "id": None, "error": "x"}]))
    with pytest.raises(ValueError, match="batch of 4"):
        outcome(4, IngestResult(accepted=1))


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets():
    b = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(4))
    delays = [b.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    b.reset()
    assert b.next_delay() <= 1.0


def test_rx_ts_is_spliced_into_the_devices_bytes(make):
    raw = make.payload(make.feedback(seq=3)) + b" \n"
    body = admit(T, raw, 1795000002.5, ROOT).body
    assert json.loads(body) == make.feedback(seq=3) | {"rx_ts": 1795000002.5}
    assert body.startswith(raw.rstrip()[:-1])  # the device's bytes, untouched
    sent_own = admit(T, make.payload(make.feedback(seq=4, rx_ts=1)), 7.0, ROOT).body
    assert json.loads(sent_own)["rx_ts"] == 7.0 and sent_own.count(b"rx_ts") == 1


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)  # fmt: skip


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # `make` is stateless
)
@given(
    kind=st.sampled_from(["feedback", "telemetry"]),
    key=st.sampled_from(
        ["v", "id", "seq", "boot", "up_ms", "ts", "fw", "type", "outcome", "score", "trigger",
         "answer_ms", "ctx", "battery_mv", "rssi", "errors", "reset_cause", "site", "extra"]
    ),
    value=JSON_VALUES,
)  # fmt: skip
def test_the_one_pass_validation_agrees_with_parse_event(make, kind, key, value):
    event = (make.feedback if kind == "feedback" else make.telemetry)(seq=5)
    event[key] = value
    raw = json.dumps(event).encode()
    try:
        parse_event(json.loads(raw))
        expected = True
    except InvalidEvent:
        expected = False
    judged = admit(f"nps/v1/nps-a1b2c3/{kind}", raw, 1.0, ROOT)
    if expected and event.get("type") == kind:
        assert isinstance(judged, Event)
    else:
        assert isinstance(judged, Rejected)


TOPIC_PARTS = st.sampled_from(["nps", "v1", "nps-a1b2c3", "NPS-A1B2C3", "a", "feedback",
                               "status", "cmd", "", "+", "#", "x" * 70, "\udcff", "é"])  # fmt: skip


@settings(max_examples=300, derandomize=True, deadline=None)
@given(parts=st.lists(TOPIC_PARTS, min_size=1, max_size=5), root=st.sampled_from([ROOT, "a/b/"]))
def test_topics_parsed_once_answer_as_parse_topic_does(parts, root):
    """The cache over parse_topic (each topic parsed once) answers what parse_topic
    answers, the first time and the next, including for topics that are not ours."""
    topic = "/".join(parts)
    try:
        expected: tuple[str, str] | str = parse_topic(topic, root)
    except InvalidEvent as err:
        expected = str(err)
    for _ in range(2):
        assert topic_device(topic, root) == (expected[0] if isinstance(expected, tuple) else None)
        judged = admit(topic, b"{}", 1.0, root)
        if isinstance(expected, str):
            assert isinstance(judged, Rejected) and judged.reason == expected


def test_a_flood_of_device_names_does_not_grow_the_topic_cache():
    for n in range(5000):
        topic_device(f"nps/v1/nps-flood{n:05d}/feedback", ROOT)
    assert _parse_topic.cache_info().currsize <= 4096
