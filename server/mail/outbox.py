"""Sending e-mail in the background, in order: a request only queues its message."""

from __future__ import annotations

import logging
import queue
import smtplib
import threading
from collections.abc import Callable
from email.message import EmailMessage

from sqlalchemy.exc import SQLAlchemyError

from server.mail.smtp import SmtpMailer
from server.metrics import Metrics

log = logging.getLogger("nps_edge.server.mail")
# What the thread runs: a message, or a function that reads the database and
# returns the messages to send (who wants a case's change is looked up here, off
# the request's path).
Job = EmailMessage | Callable[[], list[EmailMessage]]


class Outbox:
    def __init__(self, mailer: SmtpMailer, metrics: Metrics) -> None:
        self.mailer = mailer
        self.metrics = metrics
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, job: Job) -> None:
        """Queue `job`, starting the thread on first use (nothing runs without SMTP)."""
        if not self.mailer.enabled:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mail", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                messages = [job] if isinstance(job, EmailMessage) else job()
            except SQLAlchemyError:  # a lookup that failed must not end the thread
                log.exception("could not build an e-mail")
                continue
            for message in messages:
                self.send(message)

    def send(self, message: EmailMessage) -> bool:
        try:
            self.mailer.send(message)
        except (OSError, smtplib.SMTPException) as err:
            log.warning("e-mail to %s not sent: %s", message["To"], err)
            self.metrics.mails.labels(result="failed").inc()
            return False
        self.metrics.mails.labels(result="sent").inc()
        return True
