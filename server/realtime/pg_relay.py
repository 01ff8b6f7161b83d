"""The live stream across server processes that share nothing but a PostgreSQL database.

Same surface as `server.realtime.relay.Relay` (which joins the workers of one
host over UNIX sockets), so the bus does not know which one it has. Items go
out with `NOTIFY` on one channel and come in on a `LISTEN` connection held by a
thread, so two servers on two hosts behind a load balancer show one stream
with no new service to run (issue 17; docs/scaling.md).

Who listens is known without asking every process: a listener holds a shared
session-level advisory lock on `LISTENERS_KEY` for as long as it listens, and a
sender looks for other holders in `pg_locks` at most once a second. While
nobody listens, nothing is encoded or sent, as with the UNIX relay.

A NOTIFY payload is at most 8000 bytes (PostgreSQL's limit), so items go in
chunks of at most CHUNK_BYTES; an item larger than that on its own is dropped
and counted (`nps_edge_stream_relay_dropped_total`), as is everything a
send fails to deliver: the stream is a live view, figures come from the
database.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import orjson
import psycopg

from server.metrics import Metrics
from server.realtime.relay import Item

log = logging.getLogger("nps_edge.server.pg_relay")

CHANNEL = "nps_edge_stream"
CHUNK_BYTES = 7_800  # NOTIFY's payload limit is 8000 bytes, with room for the envelope
LISTENERS_KEY = 0x6E70_7365_6467_6501  # "npsedge\x01": the advisory lock number of listeners
PEERS_TTL_S = 1.0
PEER = "postgresql"  # what `peers()` returns when another process listens
_OTHER_LISTENERS = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid <> pg_backend_pid() AND objsubid = 1"
    " AND ((classid::bigint << 32) | objid::bigint) = %s)"
)


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it (`postgresql+psycopg://` -> `postgresql://`)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.partition('+')[0]}{sep}{rest}"


class PgRelay:
    def __init__(self, url: str, *, metrics: Metrics, name: str | None = None) -> None:
        self.url = libpq_url(url)
        self.metrics = metrics
        self.name = name or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._send_lock = threading.Lock()
        self._out: psycopg.Connection[tuple[object, ...]] | None = None
        self._peers_at = -PEERS_TTL_S
        self._peers: list[str] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()

    # -- sending ---------------------------------------------------------

    def peers(self) -> list[str]:
        """`[PEER]` while another process listens (checked at most once a second), else `[]`."""
        now = time.monotonic()
        if now - self._peers_at >= PEERS_TTL_S:
            self._peers_at = now
            try:
                with self._send_lock:
                    row = self._connection().execute(_OTHER_LISTENERS, (LISTENERS_KEY,)).fetchone()
                self._peers = [PEER] if row and row[0] else []
            except psycopg.Error as err:
                self._drop_connection()
                log.warning(
                    "relay: cannot see who listens (%s); the stream shows this process only", err
                )
                self._peers = []
        return self._peers

    def send(self, peers: Sequence[str], items: Sequence[Item]) -> None:
        """NOTIFY `items` in chunks; from any thread, never raising."""
        if not peers or not items:
            return
        for payload in _payloads(self.name, items, self.metrics):
            try:
                with self._send_lock:
                    self._connection().execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.Error as err:
                self._drop_connection()
                self.metrics.relay_dropped.inc()
                log.debug("relay: %d bytes not notified: %s", len(payload), err)

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._out is None or self._out.closed:
            self._out = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return self._out

    def _drop_connection(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.close()

    # -- receiving -------------------------------------------------------

    def listen(self, deliver: Callable[[Item], None]) -> None:
        """Start receiving other processes' items, each to `deliver` (thread-safe callable)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._receive, args=(deliver,), name="pg-relay", daemon=True
        )
        self._thread.start()

    def wait_listening(self, timeout: float) -> bool:
        """True once the LISTEN is in place (for tests and for start-up ordering)."""
        return self._listening.wait(timeout)

    def _receive(self, deliver: Callable[[Item], None]) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute("SELECT pg_advisory_lock_shared(%s)", (LISTENERS_KEY,))
                    self._listening.set()
                    backoff = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._take(note.payload, deliver)
            except psycopg.Error as err:
                self._listening.clear()
                log.warning("relay: listening connection lost (%s); reconnecting", err)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self._listening.clear()

    def _take(self, payload: str, deliver: Callable[[Item], None]) -> None:
        items = _items_of(payload)
        if items is None:
            # Anyone who may log in to the database may NOTIFY on the channel.
            self.metrics.relay_dropped.inc()
            log.warning("relay: a notification that is not ours (%d bytes)", len(payload))
            return
        sender, chunk = items
        if sender == self.name:
            return  # delivered here already, before it was sent
        for item in chunk:
            deliver(item)

    def close(self) -> None:
        """Stop receiving (no subscriber left, or shutting down) and let the sending connection go;
        a later send opens a new one."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)
        with self._send_lock:
            self._drop_connection()
        self._peers_at = -PEERS_TTL_S


def _items_of(payload: str) -> tuple[str, list[Item]] | None:
    """`[sender, [[kind, data], ...]]` as `_payloads` makes it, or None for anything else."""
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not (isinstance(decoded, list) and len(decoded) == 2):
        return None
    sender, chunk = decoded
    if not (isinstance(sender, str) and isinstance(chunk, list)):
        return None
    items: list[Item] = []
    for item in chunk:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        kind, data = item
        if not (isinstance(kind, str) and isinstance(data, dict)):
            return None
        items.append((kind, data))
    return sender, items


def _payloads(name: str, items: Sequence[Item], metrics: Metrics) -> Iterator[str]:
    """`[name, [item, ...]]` JSON texts of at most CHUNK_BYTES each; oversize items counted."""
    head = len(orjson.dumps(name)) + 8
    chunk: list[bytes] = []
    size = head
    for item in items:
        one = orjson.dumps(item, default=str)
        if head + len(one) > CHUNK_BYTES:
            metrics.relay_dropped.inc()
            continue
        if chunk and size + len(one) + 1 > CHUNK_BYTES:
            yield _envelope(name, chunk)
            chunk, size = [], head
        chunk.append(one)
        size += len(one) + 1
    if chunk:
        yield _envelope(name, chunk)


def _envelope(name: str, chunk: list[bytes]) -> str:
    return (b"[" + orjson.dumps(name) + b",[" + b",".join(chunk) + b"]]").decode()
