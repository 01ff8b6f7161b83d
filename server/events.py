"""What happened, told to whoever listens: SSE subscribers (in process) and webhooks.

Ingest runs in worker threads; subscribers are asyncio queues, so publishing
hops onto each subscriber's loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.models.events import FeedbackPublic

QUEUE_MAX = 1000


ITEM_FIELDS = tuple(FeedbackPublic.model_fields)


def feedback_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored feedback row as the read API and the stream show it."""
    return {k: row["t"] if k == "ts" else row[k] for k in ITEM_FIELDS}


@dataclass
class Bus:
    webhook: Callable[[dict[str, Any]], None] | None = None
    _subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[str, dict[str, Any]]]]] = (
        field(default_factory=list)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self) -> asyncio.Queue[tuple[str, dict[str, Any]]]:
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_MAX)
        with self._lock:
            self._subs.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        with self._lock:
            self._subs = [(lp, q) for lp, q in self._subs if q is not queue]

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            subs = list(self._subs)
        for loop, queue in subs:
            loop.call_soon_threadsafe(_offer, queue, (kind, data))

    def published(
        self, feedback: Sequence[Mapping[str, Any]], alerts: Sequence[dict[str, Any]]
    ) -> None:
        """After a commit: tell subscribers about new feedback and alerts, send webhooks."""
        if self._subs:
            for row in feedback:
                self.publish("feedback", feedback_item(row))
            for alert in alerts:
                self.publish("alert", alert)
        if self.webhook is not None:
            for alert in alerts:
                self.webhook(alert)


def _offer(
    queue: asyncio.Queue[tuple[str, dict[str, Any]]], item: tuple[str, dict[str, Any]]
) -> None:
    """A slow subscriber loses its oldest item, never blocks ingest."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
