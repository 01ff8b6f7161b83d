"""The periodic checks that no ingest triggers: devices gone offline, and cases that
missed the response-time target (escalated once each)."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from server.alerts.escalation import escalate_overdue
from server.alerts.notify import CaseNotifier
from server.alerts.store import check_offline
from server.db.engine import write_session
from server.periodic import PeriodicCheck
from server.realtime.bus import Bus
from server.settings import Settings


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


class OfflineWatch(PeriodicCheck):
    """Every `alert_check_interval_s`: devices gone offline, then overdue cases."""

    def __init__(
        self, engine: Engine, bus: Bus, settings: Settings, notifier: CaseNotifier | None = None
    ) -> None:
        def step() -> None:
            check_once(engine, bus, settings)
            escalate_once(engine, bus, notifier, settings)

        super().__init__("offline-watch", settings.alert_check_interval_s, step, (SQLAlchemyError,))
