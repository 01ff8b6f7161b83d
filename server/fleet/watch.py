"""The periodic rollout check (as `server.alerts.watch`): judge each rolling rollout's
canary, halt or widen it, and tell the live view and webhooks of a canary alert."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from server.db.engine import write_session
from server.fleet import keys, rollout
from server.realtime.bus import Bus
from server.settings import Settings

log = logging.getLogger("nps_edge.server.fleet")


def key_path(settings: Settings) -> Path:
    return Path(settings.command_key) if settings.command_key else keys.default_path(settings.db)


def check_once(engine: Engine, bus: Bus, settings: Settings, now: float | None = None) -> int:
    """One pass over the rolling rollouts; the number of canary alerts opened. The key
    file is read (or made) only when a rollout is rolling."""
    with Session(engine) as session:
        if not rollout.rolling(session):
            return 0
    key = keys.load_or_create(key_path(settings))
    with write_session(engine) as session:
        opened = rollout.tick(session, key=key, now=time.time() if now is None else now)
        session.commit()
    bus.published([], opened)
    return len(opened)


class RolloutWatch:
    def __init__(self, engine: Engine, bus: Bus, settings: Settings) -> None:
        self.engine, self.bus, self.settings = engine, bus, settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rollout-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.settings.canary_interval_s):
            try:
                check_once(self.engine, self.bus, self.settings)
            except (SQLAlchemyError, keys.KeyFileError):
                log.exception("rollout check failed; retrying next interval")
