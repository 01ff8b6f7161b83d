"""Acks to the devices: once a batch is committed, each device hears which of its events the
store now holds, and only then may its outbox forget them.

The broker's PUBACK is not enough for that: Mosquitto answers before it writes anything
to disk, so a broker killed after a PUBACK loses what it held for us. The intake hands
each committed batch over (`committed`, O(1) on its thread); this module's thread turns
the seqs into ranges per device and publishes `{"ack":[[first,last],...]}` on
`{root}/{device}/cmd` (QoS 0, not retained; docs/protocol.md, "Acks"), at most one
message per device every `linger_s` however many events came, a few when the ranges do
not fit in one. A round's messages go to the broker at once (the receiver queues them as
one packet: gateway/mqtt_socket.py). What cannot be published (the broker is away)
waits for the next round.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter

from contract.protocol import InvalidEvent, decode_payload
from gateway.logs import log_event
from gateway.policy import INTERNAL, THROTTLED, Event, Presence, Rejected, topic_device

log = logging.getLogger("nps_edge.gateway.acks")

Item = Event | Presence | Rejected
Publish = Callable[[Sequence[tuple[str, bytes]]], bool]  # a round's (topic, payload)s: all taken?
Range = tuple[int, int]

# A device reads at most 1024 bytes per packet (firmware mqtt.RX_BYTES) and its cmd topic
# takes up to about 80 of them: 30 ranges of two 10-digit seqs (24 bytes each) fit.
MAX_RANGES = 30
MAX_SEQ = 9_999_999_999  # a device reads at most 10 digits: a larger seq is never acked

# Acks go at QoS 0. One lost (the device away, the broker restarting) costs only a
# re-send: the device sends again what stays unconfirmed after each CONNACK and after
# `confirm_timeout_s`, and the store acks a duplicate again. QoS 1 would buy nothing
# for that and costs 2.6x the gateway's CPU per ack (paho: 31.6 against 12.3 us a
# publish, `bench.ack_publish`), a PUBACK from every device and from the broker, and
# a broker queue of acks for every device that is gone (max_queued_messages).
ACK_QOS = 0


def ranges(seqs: Iterable[int], held: Sequence[Range] = ()) -> list[Range]:
    """Sorted, disjoint (first, last) ranges covering the seqs and the ranges given."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):  # the hot path: a round's seqs, most of them in runs
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    if held:  # an earlier round's ranges that could not be published
        merged: list[list[int]] = []
        for lo, hi in sorted([*held, *((lo, hi) for lo, hi in out)]):
            if merged and lo <= merged[-1][1] + 1:  # overlapping or adjacent: one range
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out = merged
    return [(lo, hi) for lo, hi in out]


def payloads(held: Sequence[Range]) -> list[bytes]:
    """The ack messages for these ranges, MAX_RANGES to a message."""
    return [
        b'{"ack":[' + ",".join(f"[{lo},{hi}]" for lo, hi in held[i : i + MAX_RANGES]).encode()
        + b"]}"
        for i in range(0, len(held), MAX_RANGES)
    ]  # fmt: skip


def held_seq(item: Item, root: str) -> tuple[str, int] | None:
    """(device, seq) of an event the store now holds, or None.

    An admitted event, stored or a duplicate of one stored, is held. An edge dead letter
    is held too when its device and seq can be read: sending it again would only be
    refused again. A throttled message is not (the device sends it again later, when its
    rate allows), nor one dead-lettered by an internal error (a bug of ours, not its fault).
    """
    if isinstance(item, Event):
        number = int(item.id.rpartition(":")[2])  # the contract's "{device}:{seq}"
        return (item.device, number) if number <= MAX_SEQ else None
    if not isinstance(item, Rejected) or item.reason == THROTTLED:
        return None
    device = topic_device(item.topic, root)
    if device is None or item.reason.startswith(INTERNAL):
        return None
    try:
        seq = decode_payload(item.payload).get("seq")  # bounded: hostile nesting is refused
    except InvalidEvent:  # not a JSON object (or cut short when it was dead-lettered)
        return None
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        return None
    return device, seq


class AckMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.acks = Counter(
            "nps_gateway_device_acks",
            "Ack messages to devices: published, or failed (retried the next round)",
            ["outcome"],
            registry=registry,
        )


class Acks:
    def __init__(
        self, publish: Publish, registry: CollectorRegistry, *, root: str, linger_s: float = 0.05,
        wait: Callable[[float], object] = time.sleep,
    ) -> None:  # fmt: skip
        self.publish = publish
        self.root = root.rstrip("/")
        self.linger_s = linger_s
        self.wait = wait
        metrics = AckMetrics(registry)
        self.published = metrics.acks.labels("published")
        self.failed = metrics.acks.labels("failed")
        self.inbox: queue.SimpleQueue[Sequence[Item]] = queue.SimpleQueue()
        self.pending: dict[str, list[int]] = {}  # device -> seqs held, not yet acked
        self.unsent: dict[str, list[Range]] = {}  # device -> ranges whose publish failed

    def committed(self, items: Sequence[Item]) -> None:
        """Called by the intake once `items` are committed. Thread-safe, O(1)."""
        self.inbox.put(items)

    def step(self, timeout: float) -> int:
        """Publish the acks of every batch committed since the last step; how many messages."""
        try:
            batches = [self.inbox.get(timeout=timeout)]
        except queue.Empty:
            batches = []
        if batches and self.linger_s:
            self.wait(self.linger_s)  # the next commits' events join this round
        while True:
            try:
                batches.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        for items in batches:
            for item in items:
                held = held_seq(item, self.root)
                if held is not None:
                    self.pending.setdefault(held[0], []).append(held[1])
        return self._flush()

    def _flush(self) -> int:
        """One round: each device's new seqs, and what failed before, in as few messages as
        fit, published together; when the broker does not take them, all wait for the next."""
        pending, self.pending = self.pending, {}
        held = {
            device: ranges(pending.get(device, ()), self.unsent.pop(device, ()))
            for device in sorted(set(pending) | set(self.unsent))
        }
        messages = [
            (f"{self.root}/{device}/cmd", payload)
            for device, device_ranges in held.items()
            for payload in payloads(device_ranges)
        ]
        if not messages:
            return 0
        if not self.publish(messages):
            self.unsent.update(held)
            self.failed.inc(len(messages))
            return 0
        self.published.inc(len(messages))
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(timeout=1.0 if self.unsent else 0.2)
        self.step(timeout=0)  # what the last commits hold: best effort, the broker may be gone
        if self.unsent:
            log_event(
                log, logging.INFO, "acks not sent at shutdown (devices send those events again)",
                devices=len(self.unsent),
            )  # fmt: skip
