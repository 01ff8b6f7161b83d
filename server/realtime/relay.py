"""The live stream across a server's worker processes, on one host.

Each worker (`nps-edge server --workers N`) has its own event bus, and a
dashboard's stream is held by one of them. So that it shows what every worker
stores, a worker with stream subscribers listens on a UNIX datagram socket in
the server's relay directory (made by the `server` command for its workers),
and every worker sends what it publishes to the sockets it finds there. A
worker without subscribers has no socket, and no worker encodes anything while
no other has subscribers. A datagram that does not fit in a listener's queue
is dropped and counted (`nps_edge_stream_relay_dropped_total`), as a
subscriber too slow for its own queue loses its oldest items: the stream is a
live view, the figures come from the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.metrics import Metrics

log = logging.getLogger("nps_edge.server.relay")

Item = tuple[str, Mapping[str, Any]]  # (event kind, data) as the stream sends it
CHUNK_BYTES = 48_000  # under the default datagram limit of a UNIX socket's send buffer
SUFFIX = ".sock"


class StreamRelay(Protocol):
    """What the bus needs from a relay: this one (one host) or `pg_relay.PgRelay` (any hosts)."""

    def peers(self) -> list[str]: ...
    def send(self, peers: Sequence[str], items: Sequence[Item]) -> None: ...
    def listen(self, deliver: Callable[[Item], None]) -> None: ...
    def close(self) -> None: ...


class Relay:
    def __init__(self, directory: Path, name: str | None = None, *, metrics: Metrics) -> None:
        self.directory = directory
        self.metrics = metrics
        self.path = directory / f"{name or os.getpid()}{SUFFIX}"
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._in: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, peers: Sequence[str], items: Sequence[Item]) -> None:
        """Send `items` to `peers` (from `peers()`); from any thread, never raising."""
        for datagram in _datagrams(items) if items else ():
            for peer in peers:
                try:
                    self._out.sendto(datagram, peer)
                except (ConnectionRefusedError, FileNotFoundError):
                    _forget(peer)  # a worker that stopped without removing its socket
                except OSError as err:  # a full queue (a slow listener), or too large
                    self.metrics.relay_dropped.inc()
                    log.debug("relay: %d bytes to %s dropped: %s", len(datagram), peer, err)

    def peers(self) -> list[str]:
        """The sockets of the other workers listening now."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        own = str(self.path)
        return [e.path for e in entries if e.name.endswith(SUFFIX) and e.path != own]

    def listen(self, deliver: Callable[[Item], None]) -> None:
        """Start receiving other workers' items on the running loop, each to `deliver`."""
        if self._in is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            _forget(str(self.path))
            sock.bind(str(self.path))
        except OSError as err:  # the stream still shows this worker's events
            sock.close()
            log.warning("relay: cannot listen on %s (%s): this stream shows only what its"
                        " own worker stores", self.path, err)  # fmt: skip
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._receive, sock, deliver)
        self._in, self._loop = sock, loop

    def _receive(self, sock: socket.socket, deliver: Callable[[Item], None]) -> None:
        while True:
            try:
                datagram = sock.recv(CHUNK_BYTES * 4)
            except BlockingIOError:
                return
            try:
                items = orjson.loads(datagram)
            except orjson.JSONDecodeError:
                log.warning("relay: a datagram that is not JSON (%d bytes)", len(datagram))
                continue
            for kind, data in items:
                deliver((kind, data))

    def close(self) -> None:
        """Stop receiving (no subscriber left, or shutting down)."""
        sock, self._in = self._in, None
        if sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        sock.close()
        _forget(str(self.path))


def _datagrams(items: Sequence[Item]) -> Iterator[bytes]:
    """The items as JSON arrays of at most about CHUNK_BYTES each."""
    encoded = [orjson.dumps(item, default=str) for item in items]
    start, size = 0, 0
    for i, one in enumerate(encoded):
        if size and size + len(one) > CHUNK_BYTES:
            yield b"[" + b",".join(encoded[start:i]) + b"]"
            start, size = i, 0
        size += len(one) + 1
    yield b"[" + b",".join(encoded[start:]) + b"]"


def _forget(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
