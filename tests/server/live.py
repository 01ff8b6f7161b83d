"""Real HTTP on free ports: the app under uvicorn in a thread, and a webhook receiver."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import uvicorn
from fastapi import FastAPI
from sqlmodel import Session

from nps_edge.broker import free_port
from nps_edge.processes import answers, wait_until
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start", interval=0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Served(NamedTuple):
    base: str
    gateway: str  # a gateway token
    operator: str  # an operator token


@contextmanager
def server_process(bin_: str, db: str, log: Path, workers: int = 1) -> Iterator[str]:
    """`nps-edge server --workers N` on `db` (migrated), a process of its own: its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [bin_, "server", "--db", db, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/healthz"), what="the server's /healthz")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def served(bin_: str, db: str, log: Path, workers: int = 1) -> Iterator[Served]:
    """`server_process` with a gateway token (site store-1) and an operator token."""
    engine = make_engine(db)  # tokens through the library: the command is tested elsewhere
    upgrade(engine)
    with Session(engine) as session:
        gw = create_token(session, name="gw-1", role="gateway", site="store-1")
        op = create_token(session, name="op", role="operator")
    engine.dispose()
    with server_process(bin_, db, log, workers) as base:
        yield Served(base, gw, op)


@contextmanager
def stream_ids(base: str, token: str, count: int) -> Iterator[list[str]]:
    """Open `/api/v1/stream` and collect, in a thread, the ids of the first `count` items
    into the list yielded (closed on exit)."""
    seen: list[str] = []
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{base}/api/v1/stream", headers=auth, timeout=30) as resp:
        lines = resp.iter_lines()
        assert next(lines) == ": connected"

        def read() -> None:
            for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: "))["id"])
                    if len(seen) == count:
                        return

        threading.Thread(target=read, daemon=True).start()
        yield seen


def sse_events(lines: Iterable[str], count: int) -> list[tuple[str, Any]]:
    """The first `count` server-sent events in `lines`: each (event name, decoded data)."""
    events: list[tuple[str, Any]] = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
            if len(events) == count:
                break
    return events


class Receiver:
    """Records webhook POSTs; answers `fail_first` of them with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[Any]:
        return [json.loads(b) for _, b in self.requests]
