"""The forwarder's lanes: `forward_lanes` forwarders, so that many ingest requests are in flight.

Issue 17: with one request in flight the path waited on the server rather than
computed (fleet_load: a 1,000-event request took about 0.5 s while the two
cores were half idle). Each lane is a `Forwarder` with one request in flight,
its own store connection, backoff and batch limit (a 413 or 422 halves that
lane's batch only). Every event of a device goes through the same lane
(policy.lane_of) and a lane sends its own oldest events first, so each
device's events still reach the server in order; a lane deletes only what the
server confirmed of its own batch. One refusal (401, 403) stops every lane:
the token and the URL are the same for all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from contract.protocol import MAX_BATCH_EVENTS
from gateway.forwarder import Forwarder, Halt, Resume
from gateway.metrics import Metrics
from gateway.policy import Backoff
from gateway.store import Store


class Wake(threading.Event):
    """The intake's `committed` event, passed on to every lane's own (each clears its own,
    so one lane taking the signal cannot leave another asleep)."""

    def __init__(self, lanes: int) -> None:
        super().__init__()
        self.lanes = [threading.Event() for _ in range(lanes)]

    def set(self) -> None:
        super().set()
        for event in self.lanes:
            event.set()


class Lanes:
    def __init__(
        self,
        open_store: Callable[[], Store],
        client: httpx.Client,
        metrics: Metrics,
        *,
        gateway: str,
        lanes: int = 1,
        backoff: Callable[[], Backoff] = Backoff,
        max_events: int = MAX_BATCH_EVENTS,
        wait: Callable[[float], bool] | None = None,
        linger_s: float = 0.0,
        stop: threading.Event | None = None,
    ) -> None:
        """`open_store` gives each lane its own connection, `backoff` its own backoff.
        `stop`: the gateway's stop event; a back-off waits on it (`wait` defaults to its
        `wait`), and with several lanes a lane's recovery ends the others' (`Resume`).
        `wait` alone: tests that record back-offs rather than sleep them."""
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        if wait is None and stop is not None:
            wait = stop.wait
        self.halt = Halt()
        self.wake = Wake(lanes)
        resume = Resume(lanes, stop) if stop is not None and lanes > 1 else None
        self.forwarders = [
            Forwarder(
                open_store(),
                client,
                metrics,
                gateway=gateway,
                backoff=backoff(),
                max_events=max_events,
                wait=wait,
                linger_s=linger_s,
                lane=lane,
                lanes=lanes,
                halt=self.halt,
                resume=resume,
            )
            for lane in range(lanes)
        ]

    @property
    def halted(self) -> str | None:
        return self.halt.reason

    def threads(self, stop: threading.Event, idle_s: float = 1.0) -> list[threading.Thread]:
        """One thread per lane (not started); the store's `halted` state is cleared first."""
        self.forwarders[0].store.set_state("halted", None)
        return [
            threading.Thread(
                target=f.run,
                args=(stop, self.wake.lanes[f.lane], idle_s),
                name=f"forwarder-{f.lane}",
            )
            for f in self.forwarders
        ]

    def close(self) -> None:
        for f in self.forwarders:
            f.store.close()
