"""The periodic rollout check (as `server.alerts.watch`): judge each rolling rollout's
canary, halt or widen it, and tell the live view and webhooks of a canary alert."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from server.db.engine import write_session
from server.fleet import keys, rollout
from server.periodic import PeriodicCheck
from server.realtime.bus import Bus
from server.settings import Settings


def check_once(engine: Engine, bus: Bus, settings: Settings, now: float | None = None) -> int:
    """One pass over the rolling rollouts; the number of canary alerts opened. The key
    file is read (or made) only when a rollout is rolling."""
    with Session(engine) as session:
        if not rollout.rolling(session):
            return 0
    key = keys.load_or_create(keys.command_key_path(settings))
    with write_session(engine) as session:
        opened = rollout.tick(session, key=key, now=time.time() if now is None else now)
        session.commit()
    bus.published([], opened)
    return len(opened)


class RolloutWatch(PeriodicCheck):
    """Every `canary_interval_s`: `check_once`."""

    def __init__(self, engine: Engine, bus: Bus, settings: Settings) -> None:
        super().__init__(
            "rollout-watch",
            settings.canary_interval_s,
            lambda: check_once(engine, bus, settings),
            (SQLAlchemyError, keys.KeyFileError),
        )
