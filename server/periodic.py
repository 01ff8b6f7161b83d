"""A check that runs every so often in a daemon thread, beside the requests: the offline and
escalation check (`server.alerts.watch`) and the rollout check (`server.fleet.watch`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("nps_edge.server.periodic")


class PeriodicCheck:
    """Runs `step` every `interval_s` seconds until `stop()`; an error of the `retry` kinds
    is logged and the next interval tries again (any other ends the thread, loudly)."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        step: Callable[[], object],
        retry: tuple[type[BaseException], ...],
    ) -> None:
        self.name, self.interval_s, self.step, self.retry = name, interval_s, step, retry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except self.retry:
                log.exception("%s failed; retrying next interval", self.name)
