"""From received messages to committed rows, then the acknowledgement: the receiving half.

The MQTT adapter `offer`s each message from its network thread; one intake
thread takes everything waiting (group commit: under load many messages per
transaction, when idle one message waits only for its own commit), judges each
with the pure policy, commits the batch, and only then calls `ack` with the batch
(MQTT 3.1.1 section 4.3.2: the receiver owns the message once it sends PUBACK).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from gateway import retention
from gateway.logs import log_event
from gateway.metrics import Metrics
from gateway.policy import (
    INTERNAL,
    THROTTLED,
    Admitted,
    Event,
    Presence,
    Rejected,
    Throttle,
    admit,
    cut_topic,
    reject,
    topic_device,
)
from gateway.store import PutResult, Store

INVALID_TOPICS = "(invalid-topic)"  # the throttle's key for topics that name no device

# What a single message may raise out of the store's insert although `admit`
# accepted it (a value SQLite cannot bind); that message alone is dead-lettered.
ITEM_ERRORS = (OverflowError, ValueError, TypeError, sqlite3.InterfaceError, sqlite3.IntegrityError)

log = logging.getLogger("nps_edge.gateway.intake")


class Message(NamedTuple):
    """One received message; a tuple because the MQTT thread makes one per message."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    rx_ts: float
    conn: int = 0  # which broker connection it came on (see Receiver.ack)


Ack = Callable[[list[Message]], None]  # every message of one committed batch, once
# (mid, qos, topic, payload, connection generation), called from the MQTT thread
Offer = Callable[[int, int, str, bytes, int], None]


class Intake:
    def __init__(
        self,
        store: Store,
        ack: Ack,
        metrics: Metrics,
        *,
        root: str,
        max_batch: int = 5000,
        maintenance_s: float = 30.0,
        committed: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        retry_s: float = 1.0,
        wait: Callable[[float], object] | None = None,
        throttle: Throttle | None = None,
        judge: Callable[[str, bytes, float, str], Admitted] = admit,
        confirm: Callable[[list[Event | Presence | Rejected]], None] = lambda items: None,
    ) -> None:
        self.store = store
        self.ack = ack
        self.metrics = metrics
        self.root = root
        self.max_batch = max_batch
        self.maintenance_s = maintenance_s
        self.committed = committed or threading.Event()
        self.clock = clock
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.retry_s = retry_s
        self.wait = wait or (lambda s: time.sleep(s))
        self.throttle = throttle or Throttle()
        self.judge = judge
        self.confirm = confirm  # told what each commit now holds (gateway/acks.py)
        self._held: list[Message] = []
        self._next_maintenance = 0.0

    def offer(self, mid: int, qos: int, topic: str, payload: bytes, conn: int = 0) -> None:
        """Called by the MQTT adapter for each message; stamps `rx_ts`. Thread-safe."""
        self.inbox.put(Message(mid, qos, topic, payload, self.clock(), conn))

    def step(self, timeout: float) -> int:
        """Commit and acknowledge everything waiting (at most `max_batch`); 0 if none came.

        A batch the store cannot take (disk full, I/O error) is kept and retried
        after `retry_s`, unacknowledged: the broker keeps those messages meanwhile.
        """
        batch, self._held = self._held, []
        if not batch:
            try:
                batch = [self.inbox.get(timeout=timeout)]
            except queue.Empty:
                self._maintain()
                return 0
        while len(batch) < self.max_batch:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        items = [judged for m in batch if (judged := self._judge(m)) is not None]
        started = time.perf_counter()
        try:
            result = self._put(items)
        except sqlite3.OperationalError as err:
            self._held = batch
            self.metrics.store_errors.inc()
            log_event(
                log,
                logging.ERROR,
                "store commit failed; holding the batch, not acked",
                error=str(err),
                messages=len(batch),
                retry_in_s=self.retry_s,
            )
            self.wait(self.retry_s)
            return 0
        self._durable(batch, items, result, time.perf_counter() - started)
        self._maintain()
        return len(batch)

    def _durable(
        self,
        batch: list[Message],
        items: list[Event | Presence | Rejected],
        result: PutResult,
        commit_s: float,
    ) -> None:
        """What follows the commit, and only the commit: `_put` returned, so every message of
        the batch is in the store (or dead-lettered there). Only now the PUBACKs go out (MQTT
        3.1.1 section 4.3.2), the whole batch's in one call. The acks owed to the devices
        were handed to gateway/acks.py in `_put`, right after the commit; its own thread
        publishes them."""
        self.ack(batch)
        self.committed.set()
        self.metrics.commit_seconds.observe(commit_s)
        self.metrics.commit_batch.observe(len(batch))
        self.metrics.received(batch, items, result)
        self.metrics.flag_throttled(len(self.throttle.limited))
        if result.dropped:
            log_event(log, logging.WARNING, "store full: dropped oldest", **result.dropped)

    def _judge(self, m: Message) -> Event | Presence | Rejected | None:
        """Throttle, then judge one message; whatever happens it becomes an item."""
        # Topics that name no valid device share one bucket, so junk topics flood no more.
        device = topic_device(m.topic, self.root) or INVALID_TOPICS
        was_limited = device in self.throttle.limited
        if not self.throttle.take(device, m.rx_ts):
            if not was_limited:  # once per episode, not once per message of a flood
                log_event(log, logging.WARNING, "device over its rate: throttling", device=device)
            return reject(m.topic, m.payload, THROTTLED, m.rx_ts, device)
        try:
            judged = self.judge(m.topic, m.payload, m.rx_ts, self.root)
        except Exception as err:  # noqa: BLE001
            # Last line of defence, by design: `admit` turns every failure it knows
            # (InvalidEvent, pydantic's ValidationError) into a Rejected, and the
            # bounds in contract.protocol keep the parsers within their limits. A
            # message that still raises is a bug we have not met; it must not end
            # this thread, or its message stays unacknowledged and the broker hands
            # it back after every restart (issue 12). It becomes a dead letter.
            return self._internal(m, err)
        if isinstance(judged, Rejected):
            log_event(
                log,
                logging.WARNING,
                "dead letter",
                topic=judged.topic,
                reason=judged.reason,
                size=judged.size,
            )
        return judged

    def _internal(self, m: Message, err: BaseException) -> Rejected:
        name = type(err).__name__
        self.metrics.internal_errors.labels(name).inc()
        log_event(
            log,
            logging.ERROR,
            "internal error judging a message; dead-lettered",
            topic=cut_topic(m.topic),
            size=len(m.payload),
            error=name,
        )
        return reject(m.topic, m.payload, f"{INTERNAL}: {name}", m.rx_ts)

    def _put(self, items: list[Event | Presence | Rejected]) -> PutResult:
        """Commit the batch; if one item cannot be stored (ITEM_ERRORS), commit the
        items one by one and dead-letter the ones that fail, so a message cannot
        hold its neighbours (or itself) unacknowledged forever."""
        try:
            result = self.store.put(items)
        except ITEM_ERRORS:
            return self._put_one_by_one(items)
        self.confirm(items)
        return result

    def _put_one_by_one(self, items: list[Event | Presence | Rejected]) -> PutResult:
        total = PutResult()
        for item in items:
            try:
                one = self.store.put([item])
                self.confirm([item])
            except ITEM_ERRORS as err:
                if isinstance(item, Rejected):  # keep only that it happened
                    message = Message(0, 0, "(unstorable)", b"", item.rx_ts)
                else:
                    topic = f"{self.root}/{item.device}/{getattr(item, 'kind', 'status')}"
                    message = Message(0, 0, topic, getattr(item, "body", b""), item.rx_ts)
                one = self.store.put([self._internal(message, err)])
            total.add(one)
        return total

    def drain(self) -> int:
        """Commit what is already waiting (shutdown: finish the batch in hand)."""
        total = 0
        while not self.inbox.empty() or self._held:
            done = self.step(timeout=0)
            if not done and self._held:
                break  # the store still fails: leave them to the broker
            total += done
        return total

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(timeout=0.2)
        self.drain()

    def _maintain(self) -> None:
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + self.maintenance_s
        expired = retention.expire(self.store)
        trimmed = retention.trim_dead_letters(self.store)
        if expired:
            self.metrics.dropped.labels("expired").inc(expired)
            log_event(log, logging.WARNING, "dropped expired events", count=expired)
        if trimmed:
            self.metrics.dropped.labels("dead_letter_overflow").inc(trimmed)
            log_event(log, logging.WARNING, "dropped oldest dead letters", count=trimmed)
