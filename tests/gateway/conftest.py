"""Gateway test helpers: contract events and a fake ingest server on httpx.MockTransport."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from contract.protocol import (
    IngestRequest,
    InvalidEvent,
    PresenceRequest,
    PresenceUpdate,
    parse_event,
)
from gateway.config import GatewaySettings
from gateway.metrics import Metrics
from gateway.policy import Limits
from gateway.service import Gateway
from gateway.store import Store
from nps_edge.processes import wait_until
from tests.gateway.processes import Publisher


def common(device: str, seq: int, kind: str) -> dict:
    """The fields every event carries."""
    return {
        "v": 1,
        "id": f"{device}:{seq}",
        "device": device,
        "site": "store-12",
        "seq": seq,
        "boot": 1,
        "up_ms": 1000 + seq,
        "ts": 1795000000.0 + seq,
        "fw": "1.0.0",
        "type": kind,
    }


def feedback(device: str = "nps-a1b2c3", seq: int = 1, score: int | None = 9, **over: Any) -> dict:
    event = common(device, seq, "feedback") | {
        "outcome": "answered" if score is not None else "timeout",
        "prompt": "nps",
        "trigger": {"kind": "cycle_complete", "ref": f"tx-{seq}"},
        "reason": None,
        "answer_ms": 2300,
        "ctx": {"rssi": -61, "battery_mv": 3910},
    }
    if score is not None:
        event["score"] = score
    event.update(over)
    return event


def telemetry(device: str = "nps-a1b2c3", seq: int = 1, **over: Any) -> dict:
    event = common(device, seq, "telemetry") | {
        "ts": None,
        "battery_mv": 3900,
        "rssi": -60,
        "heap_free": 50000,
        "heap_min": 40000,
        "uptime_s": 12,
        "temp_c": 31.5,
        "outbox_depth": 0,
        "reset_cause": "power_on",
        "errors": {},
    }
    event.update(over)
    return event


def payload(event: dict) -> bytes:
    return json.dumps(event).encode()


@dataclass
class FakeServer:
    """An ingest endpoint that validates like the real one and remembers what it got.

    `script` is a list of status codes (or exceptions) served before normal 200s.
    """

    script: list[int | Exception] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    batches: list[int] = field(default_factory=list)
    bodies: list[int] = field(default_factory=list)
    presence: list[PresenceUpdate] = field(default_factory=list)
    presence_status: int = 200
    max_events: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if request.headers.get("authorization") != "Bearer good":
                return httpx.Response(401, json={"detail": "bad token"})
            if request.url.path.startswith("/api/v1/gateway/"):  # the fleet's (test_relay.py)
                return httpx.Response(404, json={"detail": "no fleet here"})
            if request.url.path == "/api/v1/presence":
                if self.presence_status == 200:
                    self.presence.extend(
                        PresenceRequest.model_validate_json(request.content).updates
                    )
                return httpx.Response(self.presence_status, json={"accepted": 0})
            if self.script:
                step = self.script.pop(0)
                if isinstance(step, Exception):
                    raise step
                return httpx.Response(step, json={"detail": f"scripted {step}"})
            body = IngestRequest.model_validate_json(request.content)
            if len(body.events) > self.max_events:
                return httpx.Response(413, json={"detail": "too many events"})
            self.batches.append(len(body.events))
            self.bodies.append(len(request.content))
            accepted = duplicates = 0
            rejected = []
            for i, event in enumerate(body.events):
                try:
                    parse_event(event, forwarded=True)
                except InvalidEvent as err:
                    rejected.append({"index": i, "id": event.get("id"), "error": str(err)})
                    continue
                if event["id"] in self.ids:
                    duplicates += 1
                else:
                    accepted += 1
                    self.ids.add(event["id"])
                    self.received.append(event)
            return httpx.Response(
                200, json={"accepted": accepted, "duplicates": duplicates, "rejected": rejected}
            )

    def client(self, token: str = "good") -> httpx.Client:
        return httpx.Client(
            base_url="http://server.test",
            transport=httpx.MockTransport(self.handler),
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture
def fake_server() -> FakeServer:
    return FakeServer()


class Clock:
    def __init__(self, now: float = 1795000000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_store(tmp_path: Any, clock: Clock) -> Iterator[Callable[..., Store]]:
    stores: list[Store] = []

    def open_(limits: Limits | None = None, name: str = "gw.db", **kw: Any) -> Store:
        store = Store(tmp_path / name, limits, clock=clock, **kw)
        stores.append(store)
        return store

    yield open_
    for s in stores:
        s.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def publish(address: str, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
    """Publish QoS 1 and wait for every PUBACK (a device's side of the contract)."""
    publisher = Publisher(address, inflight=500)
    try:
        publisher.publish(messages, retain=retain)
    finally:
        publisher.close()


@pytest.fixture
def run_gateway(tmp_path: Any) -> Iterator[Callable[..., Gateway]]:
    """Start an in-process gateway (real broker, injected HTTP client) in a thread."""
    running: list[tuple[Gateway, threading.Thread]] = []

    def start(broker: str, client: httpx.Client, wait: bool = True, **overrides: Any) -> Gateway:
        values: dict[str, Any] = {
            "server": "http://server.test",
            "token": "good",
            "broker": broker,
            "store": tmp_path / "gateway.db",
            "gateway_id": "gw-test",
            "client_id": f"gw-test-{tmp_path.name}",
            "metrics_port": 0,
        }
        settings = GatewaySettings(**(values | overrides))
        gw = Gateway(settings, client=client)
        thread = threading.Thread(target=gw.run, name="gateway")
        thread.start()
        if wait:
            wait_until(gw.receiver.subscribed.is_set, timeout=20, what="gateway subscribed")
        running.append((gw, thread))
        return gw

    yield start
    for gw, thread in running:
        gw.stop()
        thread.join(timeout=30)


class Make:
    """Event factories, handed to tests as the `make` fixture."""

    feedback = staticmethod(feedback)
    telemetry = staticmethod(telemetry)
    payload = staticmethod(payload)
    publish = staticmethod(publish)
    wait_until = staticmethod(wait_until)


@pytest.fixture
def make() -> type[Make]:
    return Make


def fail_next_put(store: Store, error: BaseException) -> None:
    """`store.put` raises `error` once, then works again (a commit that failed)."""
    real_put = store.put
    failures = [error]

    def put(items: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_put(items)

    store.put = put  # type: ignore[method-assign]
