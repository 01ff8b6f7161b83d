"""The periodic checks that no ingest triggers: devices gone offline, and cases that
missed the response-time target (escalated once each)."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from server.alerts.escalation import escalate_overdue
from server.alerts.notify import CaseNotifier
from server.alerts.store import check_offline
from server.db.engine import write_session
from server.realtime.bus import Bus
from server.settings import Settings

log = logging.getLogger("nps_edge.server.watch")


def check_once(engine: Engine, bus: Bus, settings: Settings, now: float | None = None) -> int:
    with write_session(engine) as session:
        opened = check_offline(session, settings=settings, now=time.time() if now is None else now)
        session.commit()
    bus.published([], opened)
    return len(opened)


def escalate_once(
    engine: Engine,
    bus: Bus,
    notifier: CaseNotifier | None,
    settings: Settings,
    now: float | None = None,
) -> int:
    """Escalate the cases overdue now; told on the stream and (notifier) beyond."""
    with write_session(engine) as session:
        escalated = escalate_overdue(
            session,
            now=time.time() if now is None else now,
            target_s=settings.response_target_min * 60,
        )
        session.commit()
    cases = [c.model_dump() for c in escalated]
    for case in cases:
        bus.publish("alert", case)
    if notifier is not None:
        notifier.changed(cases, "escalated", None)
    return len(cases)


class OfflineWatch:
    def __init__(
        self, engine: Engine, bus: Bus, settings: Settings, notifier: CaseNotifier | None = None
    ) -> None:
        self.engine, self.bus, self.settings, self.notifier = engine, bus, settings, notifier
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="offline-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.settings.alert_check_interval_s):
            try:
                check_once(self.engine, self.bus, self.settings)
                escalate_once(self.engine, self.bus, self.notifier, self.settings)
            except SQLAlchemyError:
                log.exception("offline or escalation check failed; retrying next interval")
