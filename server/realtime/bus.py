"""What happened, told to whoever listens: SSE subscribers and webhooks.

Ingest runs in worker threads; subscribers are asyncio queues, so publishing
hops onto each subscriber's loop with `call_soon_threadsafe`. With several
server workers, what one publishes reaches the others' subscribers through
`server.realtime.relay`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.models.events import FeedbackPublic
from server.realtime.relay import Item, StreamRelay

QUEUE_MAX = 1000


ITEM_FIELDS = tuple(FeedbackPublic.model_fields)


def feedback_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored feedback row as the read API and the stream show it (a phone comment,
    not part of the row, comes later: None)."""
    return {k: row["t"] if k == "ts" else row.get(k) for k in ITEM_FIELDS}


@dataclass
class Bus:
    webhook: Callable[[Mapping[str, Any]], None] | None = None
    relay: StreamRelay | None = None  # the other processes' streams (`server.realtime`), if any
    _subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Item]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self) -> asyncio.Queue[Item]:
        """A queue of what is published from now on (call on the event loop)."""
        queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_MAX)
        with self._lock:
            self._subs.append((asyncio.get_running_loop(), queue))
        if self.relay is not None:
            self.relay.listen(self._deliver)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Item]) -> None:
        with self._lock:
            self._subs = [(lp, q) for lp, q in self._subs if q is not queue]
            idle = not self._subs
        if idle and self.relay is not None:
            self.relay.close()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """One item to every subscriber, this worker's and the others'."""
        peers = self.relay.peers() if self.relay is not None else []
        self._fan_out([(kind, data)], peers)

    def _fan_out(self, items: list[Item], peers: list[str]) -> None:
        for item in items:
            self._deliver(item)
        if self.relay is not None and peers:
            self.relay.send(peers, items)

    def _deliver(self, item: Item) -> None:
        """One item to this worker's subscribers."""
        with self._lock:
            subs = list(self._subs)
        for loop, queue in subs:
            loop.call_soon_threadsafe(_offer, queue, item)

    def published(
        self, feedback: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]
    ) -> None:
        """After a commit: tell subscribers, this worker's and (relayed) the others',
        about new feedback and alerts; send webhooks."""
        peers = self.relay.peers() if self.relay is not None else []
        if self._subs or peers:  # else not even the items are built
            items = [("feedback", feedback_item(row)) for row in feedback]
            self._fan_out([*items, *(("alert", alert) for alert in alerts)], peers)
        if self.webhook is not None:
            for alert in alerts:
                self.webhook(alert)


def _offer(queue: asyncio.Queue[Item], item: Item) -> None:
    """A slow subscriber loses its oldest item, never blocks ingest."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
