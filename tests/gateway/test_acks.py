"""Acks to devices: after the commit only, coalesced per device, retried when the broker is away."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from gateway.acks import MAX_RANGES, Acks, payloads, ranges
from gateway.intake import Intake
from gateway.policy import THROTTLED, reject
from tests.gateway.conftest import fail_next_put

ROOT = "nps/v1"
A, B = "nps-a1b2c3", "nps-b2c3d4"


class Broker:
    """The receiver's publish: records what went out; `up=False` refuses like a lost link."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.up = True

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> bool:
        if self.up:
            self.sent += [(topic, json.loads(payload)) for topic, payload in messages]
        return self.up


def acks_for(broker: Broker) -> Acks:
    return Acks(broker.publish, CollectorRegistry(), root=ROOT, linger_s=0)


def intake_with(acks: Acks, store, metrics) -> Intake:
    return Intake(store, lambda _: None, metrics, root=ROOT, confirm=acks.committed)


def offer(intake: Intake, make, device: str, *seqs: int, kind: str = "feedback") -> None:
    for seq in seqs:
        event = make.feedback(device, seq) if kind == "feedback" else make.telemetry(device, seq)
        intake.offer(seq, 1, f"{ROOT}/{device}/{kind}", make.payload(event))


def test_ranges_join_adjacent_seqs_and_merge_what_waited() -> None:
    assert ranges([5, 1, 2, 3, 3, 7, 8]) == [(1, 3), (5, 5), (7, 8)]
    assert ranges([4, 9], [(1, 3), (6, 8)]) == [(1, 4), (6, 9)]
    assert ranges([], [(1, 5), (2, 3)]) == [(1, 5)]


def test_one_message_per_device_per_round_whatever_the_number_of_events(
    open_store, metrics, make
) -> None:
    broker = Broker()
    acks = acks_for(broker)
    intake = intake_with(acks, open_store(), metrics)
    offer(intake, make, A, 1, 2, 3, 5)
    offer(intake, make, B, 10)
    offer(intake, make, A, 7, kind="telemetry")
    intake.drain()
    offer(intake, make, A, 8, 3)  # another commit, with a redelivered duplicate
    intake.drain()
    assert broker.sent == []  # nothing before the acks thread's round
    assert acks.step(timeout=0) == 2
    assert broker.sent == [
        (f"{ROOT}/{A}/cmd", {"ack": [[1, 3], [5, 5], [7, 8]]}),
        (f"{ROOT}/{B}/cmd", {"ack": [[10, 10]]}),
    ]
    assert acks.step(timeout=0) == 0  # nothing new: nothing sent


def test_nothing_is_acked_when_the_commit_fails(open_store, metrics, make) -> None:
    store = open_store()
    fail_next_put(store, sqlite3.OperationalError("disk I/O error"))
    broker = Broker()
    acks = acks_for(broker)
    intake = Intake(
        store, lambda _: None, metrics, root=ROOT, confirm=acks.committed, wait=lambda s: None
    )
    offer(intake, make, A, 1)
    assert intake.step(timeout=1) == 0
    assert acks.step(timeout=0) == 0 and broker.sent == []
    assert intake.step(timeout=1) == 1  # the held batch commits on the retry
    acks.step(timeout=0)
    assert broker.sent == [(f"{ROOT}/{A}/cmd", {"ack": [[1, 1]]})]


def test_an_event_the_store_refuses_alone_is_not_acked(open_store, metrics, make) -> None:
    store = open_store()
    real_put = store.put

    def put(items):
        if any(getattr(i, "id", "").endswith(":2") for i in items):
            raise sqlite3.InterfaceError("cannot bind")  # one value SQLite cannot take
        return real_put(items)

    store.put = put
    broker = Broker()
    acks = acks_for(broker)
    intake = intake_with(acks, store, metrics)
    offer(intake, make, A, 1, 2, 3)
    intake.drain()
    acks.step(timeout=0)
    assert broker.sent == [(f"{ROOT}/{A}/cmd", {"ack": [[1, 1], [3, 3]]})]


def test_dead_letters_are_acked_but_throttled_and_internal_ones_are_not() -> None:
    broker = Broker()
    acks = acks_for(broker)
    topic = f"{ROOT}/{A}/feedback"
    acks.committed(
        [
            reject(topic, b'{"seq": 4, "score": 11}', "score: must be 0..10", 1.0),
            reject(topic, b'{"seq": 5}', THROTTLED, 1.0, A),
            reject(topic, b'{"seq": 6}', "internal: OverflowError", 1.0),
            reject(topic, b"{not json", "not JSON", 1.0),
            reject(topic, b'{"seq": true}', "seq", 1.0),
            reject(topic, b"[7]", "not an object", 1.0),
            reject(topic, b'{"seq": ' + b"[" * 5000 + b"]}", "nesting", 1.0),
            reject(topic, b'{"seq": 10000000000}', "past what a device reads", 1.0),
            reject("elsewhere/x", b'{"seq": 8}', "topic", 1.0),
        ]
    )
    acks.step(timeout=0)
    assert broker.sent == [(f"{ROOT}/{A}/cmd", {"ack": [[4, 4]]})]


def test_an_ack_the_broker_did_not_take_goes_in_the_next_round_with_the_new_ones(make) -> None:
    broker = Broker()
    acks = acks_for(broker)
    from gateway.policy import admit

    def events(*seqs: int) -> list:
        topic = f"{ROOT}/{A}/feedback"
        return [admit(topic, make.payload(make.feedback(A, s)), 1.0, ROOT) for s in seqs]

    broker.up = False
    acks.committed(events(1, 2))
    assert acks.step(timeout=0) == 0
    assert acks.failed._value.get() == 1
    broker.up = True
    acks.committed(events(3, 9))
    assert acks.step(timeout=0) == 1
    assert broker.sent == [(f"{ROOT}/{A}/cmd", {"ack": [[1, 3], [9, 9]]})]
    assert acks.step(timeout=0) == 0


def test_many_ranges_are_split_into_messages_a_device_can_read() -> None:
    held = ranges(range(1, 4 * MAX_RANGES * 2, 2))  # every other seq: one range each
    messages = payloads(held)
    assert len(messages) == 4
    seqs = 10**10 - 1  # the longest seq a device accepts
    widest = payloads([(seqs, seqs)] * MAX_RANGES)[0]
    topic = f"{ROOT}/{'x' * 64}/cmd"
    # firmware mqtt.RX_BYTES: fixed header (3) + topic length (2) + topic + packet id (2)
    assert 3 + 2 + len(topic) + 2 + len(widest) <= 1024
    assert [r for m in messages for r in json.loads(m)["ack"]] == [list(r) for r in held]
