"""From the store to the server: `POST /api/v1/ingest`, delete only what the server confirmed.

The forwarder receives its `httpx.Client` (base URL and token already set), so
tests hand it one on an `httpx.MockTransport`. It sends the oldest events first
(hence in order per device), as many as the contract allows per request, so
a backlog drains at full speed while live events join its tail. One forwarder
is one lane with one request in flight; with several (lanes.py) each sends the
oldest events of its own devices (policy.lane_of), and one refusal stops all.

Answers: 200 -> delete the batch, the `rejected` indexes become dead letters
with the server's reason; transport errors and 5xx (and 429) -> retry the same
batch after an exponential backoff with jitter; 413 -> halve the batch;
422 -> halve, and a single event the server cannot parse becomes a dead letter;
401, 403 and other 4xx -> stop forwarding with a loud error (a configuration
error, not a reason for a retry storm); receiving and storing go on. A server
certificate that does not verify is retried like any transport error (the
certificate may be renewed, or `server_ca` fixed and the gateway restarted) but
logged once per change, with cause `tls` and what to do.
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import httpx
from pydantic import ValidationError

from contract.protocol import (
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    IngestResult,
    PresenceRequest,
    PresenceUpdate,
)
from gateway.logs import log_event
from gateway.metrics import Metrics
from gateway.policy import Backoff, batch_size, envelope, outcome
from gateway.store import Row, Store

log = logging.getLogger("nps_edge.gateway.forwarder")

INGEST_PATH = "/api/v1/ingest"
PRESENCE_PATH = "/api/v1/presence"
HALT_REPEAT_S = 60.0


class Step(Enum):
    IDLE = "idle"
    SENT = "sent"
    RETRY = "retry"
    HALTED = "halted"


class Halted(RuntimeError):
    """The server refused us for a reason retrying cannot fix (wrong token, wrong URL)."""


@dataclass
class Halt:
    """Why forwarding stopped, shared by the lanes: the token or URL is the same for all."""

    reason: str | None = None


class Resume:
    """Shared by the lanes: a lane that gets through after failing ends the others'
    back-offs, so that when the server is back every lane sends again at once.

    Each lane backs off on its own (jittered, up to `retry_max_s`), so after an outage
    one lane found the server back while another still slept: half a backlog waited
    seconds more (`bench.gateway_throughput --lanes 2`: a drain of 20,000 events at
    4,300-6,200 events/s in some reps against 17,000-18,500 in others, docs/gateway.md).
    A lane whose failures are its own (a batch the server cannot take) is not hurried
    by the others' successes: only a lane's recovery ends the others' waits.
    """

    SLICE_S = 0.05  # how often a lane waiting out a back-off looks at the others

    def __init__(self, lanes: int, stop: threading.Event) -> None:
        self.back = [threading.Event() for _ in range(lanes)]
        self.stop = stop

    def sending(self, lane: int) -> None:
        """`lane` sends: what happened before its request no longer ends its next back-off."""
        self.back[lane].clear()

    def got_through(self, lane: int) -> None:
        """`lane` was answered after failing: the server is back for every lane."""
        for other, back in enumerate(self.back):
            if other != lane:
                back.set()

    def pause(self, lane: int, delay: float) -> bool:
        """Wait out `lane`'s back-off until `delay` passes, another lane gets through since
        `lane` sent, or the gateway stops (then True)."""
        back = self.back[lane]
        deadline = time.monotonic() + delay
        while not back.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.stop.wait(min(left, self.SLICE_S)):
                return True
        return False


class Forwarder:
    def __init__(
        self,
        store: Store,
        client: httpx.Client,
        metrics: Metrics,
        *,
        gateway: str,
        backoff: Backoff | None = None,
        max_events: int = MAX_BATCH_EVENTS,
        max_bytes: int = MAX_BODY_BYTES,
        wait: Callable[[float], bool] | None = None,
        linger_s: float = 0.0,
        lane: int = 0,
        lanes: int = 1,
        halt: Halt | None = None,
        resume: Resume | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.metrics = metrics
        self.gateway = gateway
        self.backoff = backoff or Backoff()
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.limit = max_events  # lowered by 413 answers, raised again by successes
        self.wait = wait or (lambda s: threading.Event().wait(s))
        self.lane, self.lanes = lane, lanes
        self.halt = halt or Halt()
        self.resume = resume  # shared by the lanes (gateway.lanes.Resume); None: one lane
        # This lane has no event up to this seq but those in the batch in hand: where its
        # next look into the store starts (Store.peek_lane), so that a lane does not
        # read again, at every batch, a backlog that belongs to the others.
        self.after = 0
        self.presence_supported = True
        self.tls_failing: str | None = None  # the TLS failure last logged, until it changes
        # After a part batch, let the next gather this long: the server's cost per
        # request is fixed (about 10 ms of CPU), so a steady trickle sent as it comes
        # costs it ten times what the same events cost in one request (docs/gateway.md).
        self.linger_s = linger_s
        self.part_batch = False  # the last batch sent was smaller than the limit

    @property
    def halted(self) -> str | None:
        return self.halt.reason

    # -- one step ----------------------------------------------------------

    def step(self) -> Step:
        """Send one batch (and pending presence); what happened decides the next wait."""
        if self.halted:
            return Step.HALTED
        try:
            if self.lane == 0:  # one lane is enough: presence is the latest status per device
                self._presence()
            peek = self.store.peek_lane(self.limit, self.lane, self.lanes, self.after)
            rows = peek.rows
            if not rows:
                self.after = peek.seen
                return Step.IDLE
            n = batch_size([len(r.body) for r in rows], self.gateway, self.limit, self.max_bytes)
            self.part_batch = n == len(rows) < self.limit
            after = peek.seen if n == len(rows) else rows[n].seq - 1
            rows = rows[:n]
            body = envelope(self.gateway, [r.body for r in rows])
            if self.resume is not None:
                self.resume.sending(self.lane)
            started = time.perf_counter()
            self.metrics.forward_in_flight.inc()
            try:
                response = self._post(INGEST_PATH, body, {"Content-Type": "application/json"})
            finally:
                self.metrics.forward_in_flight.dec()
            self.metrics.forward_latency.observe(time.perf_counter() - started)
            step = self._answer(rows, response)
            if step is Step.SENT:  # the batch is deleted: nothing of this lane up to `after`
                self.after = after
            return step
        except httpx.TransportError as err:
            tls = tls_failure(err)
            if tls is not None:
                return self._tls_retry(tls)
            return self._retry("transport", f"{type(err).__name__}: {err}")
        except sqlite3.OperationalError as err:
            self.metrics.store_errors.inc()
            return self._retry("store", f"store: {err}")
        except Halted as err:
            return self._halt(str(err))

    def _answer(self, rows: list[Row], response: httpx.Response) -> Step:
        status = response.status_code
        if status == 200:
            try:
                result = IngestResult.model_validate_json(response.content)
                rejected = outcome(len(rows), result)
            except (ValidationError, ValueError) as err:
                return self._retry("bad_answer", f"unusable 200 answer: {err}")
            done = self.store.done(rows, rejected, duplicates=result.duplicates)
            self.metrics.forwarded.inc(done.forwarded)
            if result.duplicates:
                self.metrics.duplicates.labels("server").inc(result.duplicates)
            if done.dead_letters:
                self.metrics.dead_letters.labels("server").inc(done.dead_letters)
                for i, reason in sorted(rejected.items())[:10]:
                    log_event(log, logging.WARNING, "server rejected", id=rows[i].id, reason=reason)
            if self.backoff.attempt and self.resume is not None:
                self.resume.got_through(self.lane)
            self.backoff.reset()
            self.limit = min(self.max_events, self.limit * 2)
            return Step.SENT
        if status in (413, 422) and len(rows) > 1:
            self.limit = max(1, len(rows) // 2)
            self.metrics.forward_errors.labels(str(status)).inc()
            log_event(
                log,
                logging.WARNING,
                "server refused batch, halving",
                status=status,
                batch=len(rows),
                next=self.limit,
                lane=self.lane,
            )
            return Step.RETRY
        if status in (413, 422):
            reason = f"HTTP {status}: {_detail(response)}"
            self.store.done(rows, {0: reason})
            self.metrics.dead_letters.labels("server").inc()
            log_event(log, logging.WARNING, "server refused event", id=rows[0].id, reason=reason)
            return Step.SENT
        if status >= 500 or status == 429:
            return self._retry(str(status), f"HTTP {status}: {_detail(response)}")
        raise Halted(f"HTTP {status} from {response.request.url}: {_detail(response)}")

    def _presence(self) -> None:
        if not self.presence_supported:
            return
        pending = self.store.pending_presence()
        if not pending:
            return
        request = PresenceRequest(
            gateway=self.gateway,
            updates=[
                PresenceUpdate(
                    device=p.device,
                    online=p.online,
                    fw=p.fw,
                    boot=p.boot,
                    rx_ts=p.rx_ts,
                    cfg=p.cfg,
                    cmd=p.cmd,
                    cmd_error=p.cmd_error,
                    update=p.update,
                )  # fmt: skip
                for p in pending[:MAX_BATCH_EVENTS]
            ],
        )
        response = self._post(PRESENCE_PATH, request.model_dump_json().encode())
        if response.status_code == 200:
            self.store.presence_done(pending[:MAX_BATCH_EVENTS])
        elif response.status_code in (401, 403):
            raise Halted(f"HTTP {response.status_code} on presence: {_detail(response)}")
        elif response.status_code in (404, 405):
            self.presence_supported = False
            log_event(
                log,
                logging.ERROR,
                "server has no presence endpoint; presence not forwarded",
                status=response.status_code,
            )
        else:
            log_event(
                log,
                logging.WARNING,
                "presence not accepted, will retry",
                status=response.status_code,
                detail=_detail(response),
            )

    def _post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        response = self.client.post(path, content=body, headers=headers)
        if self.tls_failing is not None:  # an answer came back: TLS works again
            self.tls_failing = None
            log_event(log, logging.INFO, "server certificate verified again", cause="tls")
        return response

    # -- outcomes ----------------------------------------------------------

    def _tls_retry(self, err: ssl.SSLError) -> Step:
        """Retry with backoff; log only when the failure is new (not at every attempt)."""
        if isinstance(err, ssl.SSLCertVerificationError):
            detail = f"server certificate not trusted: {err.verify_message or err}"
            what_to_do = (
                "set server_ca to the CA (PEM) that signed the server's certificate if it is"
                " a private CA, and check that the host in `server` is a name the"
                " certificate holds"
            )
        else:
            detail = f"TLS handshake failed: {err}"
            what_to_do = "check that the server speaks HTTPS on the port in `server`"
        if detail != self.tls_failing:
            self.tls_failing = detail
            log_event(
                log,
                logging.ERROR,
                "cannot reach the server over HTTPS, retrying",
                cause="tls",
                detail=detail,
                what_to_do=what_to_do,
                server=str(self.client.base_url),
            )
        return self._retry("tls", detail, quiet=True)

    def _retry(self, cause: str, detail: str, *, quiet: bool = False) -> Step:
        self.metrics.forward_errors.labels(cause).inc()
        if cause != "tls":
            self.tls_failing = None
        delay = self.backoff.next_delay()
        if not quiet:
            log_event(
                log,
                logging.WARNING,
                "forward failed, retrying",
                cause=cause,
                detail=detail,
                retry_in_s=round(delay, 2),
                attempt=self.backoff.attempt,
                lane=self.lane,
            )
        if self.resume is None:
            self.wait(delay)
        else:
            self.resume.pause(self.lane, delay)
        return Step.RETRY

    def _halt(self, reason: str) -> Step:
        self.halt.reason = reason
        self.metrics.halted.set(1)
        self.store.set_state("halted", reason)
        log_event(
            log,
            logging.ERROR,
            "FORWARDING STOPPED: fix the configuration and restart",
            reason=reason,
            lane=self.lane,
        )
        return Step.HALTED

    # -- loop --------------------------------------------------------------

    def run(self, stop: threading.Event, wake: threading.Event, idle_s: float = 1.0) -> None:
        """Forward until `stop`; the batch in hand is always finished first. Whoever
        starts the lanes clears the store's `halted` state once, before any runs."""
        last_halt_log = 0.0
        while not stop.is_set():
            wake.clear()
            step = self.step()
            self.metrics.observe_store(self.store.stats())
            if step is Step.IDLE:
                wake.wait(idle_s)
            elif step is Step.SENT and self.part_batch and self.linger_s:
                stop.wait(self.linger_s)  # the store had less than a batch: let more come
            elif step is Step.HALTED:
                if self.lane == 0 and time.monotonic() - last_halt_log > HALT_REPEAT_S:
                    last_halt_log = time.monotonic()
                    log_event(log, logging.ERROR, "forwarding stopped", reason=self.halted)
                stop.wait(idle_s)


def tls_failure(err: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error (httpx wraps httpcore, which wraps ssl), if any."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    return str(detail)[:300]
