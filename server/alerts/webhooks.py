"""Webhooks for new alerts: signed POSTs, retried with backoff, every attempt logged.

Signature: `X-NPS-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`.
Retried on transport errors, 429 and 5xx (the receiver may recover); a 4xx
other than 429 is the receiver refusing, logged and not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from server.db.engine import write_session
from server.metrics import Metrics
from server.models import WebhookDelivery

log = logging.getLogger("nps_edge.server.webhooks")
HEADER = "X-NPS-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


class WebhookSender:
    """One background thread delivering alerts to every configured URL, in order."""

    def __init__(
        self,
        engine: Engine,
        *,
        urls: list[str],
        secret: str,
        attempts: int,
        backoff_s: float,
        metrics: Metrics,
        client: httpx.Client | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.urls = urls
        self.secret = secret
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.client = client or httpx.Client(timeout=10.0)
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start delivering (again, after a stop: an app may run its lifespan more than once)."""
        if self.urls and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def enqueue(self, alert: Mapping[str, Any]) -> None:
        if self.urls:
            self._queue.put(alert)

    def _run(self) -> None:
        while not self._stop.is_set():
            alert = self._queue.get()
            if alert is None:
                return
            body = json.dumps(alert, separators=(",", ":")).encode("utf-8")
            for url in self.urls:
                self.deliver(url, alert["id"], body)

    def deliver(self, url: str, alert_id: int, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", HEADER: sign(body, self.secret)}
        for attempt in range(1, self.attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                status = self.client.post(url, content=body, headers=headers).status_code
            except httpx.TransportError as err:
                error = f"{type(err).__name__}: {err}"
            ok = status is not None and 200 <= status < 300
            self._log(alert_id, url, attempt, status, error, ok)
            if ok:
                self.metrics.webhook_deliveries.labels(result="delivered").inc()
                return True
            if status is not None and not retryable(status):
                self.metrics.webhook_deliveries.labels(result="refused").inc()
                return False
            self.metrics.webhook_deliveries.labels(result="retry").inc()
            if attempt < self.attempts and self._stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                return False
        self.metrics.webhook_deliveries.labels(result="failed").inc()
        return False

    def _log(
        self, alert_id: int, url: str, attempt: int, status: int | None, error: str | None, ok: bool
    ) -> None:
        with write_session(self.engine) as session:
            session.add(
                WebhookDelivery(
                    alert_id=alert_id, url=url, attempt=attempt, status_code=status,
                    error=error, delivered=ok, at=time.time(),
                )
            )  # fmt: skip
            session.commit()
