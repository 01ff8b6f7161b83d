"""Issue 14, the gateway's command relay against a real Mosquitto: commands signed by the
server's key (server.fleet), a device simulated by a paho client that checks each
signature with `cryptography` the way the firmware does, and a fake server."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from contract.protocol import PresenceRequest
from server.fleet.commands import command_text, signed_message
from server.models.fleet import CommandKind

SERVER_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
DEVICE = "nps-dev001"


class CommandServer:
    """The server's two fleet routes the relay uses: commands after an id, and presence."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self.presence: list[Any] = []
        self.asked: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def add(self, n: int, *, key: Ed25519PrivateKey = SERVER_KEY, device: str = DEVICE,
            cfg: int | None = None) -> None:  # fmt: skip
        body = {"cfg": cfg or n, "set": {"prompt": {"text": f"question {n}"}}}
        text = command_text(device=device, n=n, kind=CommandKind.CONFIG, exp=None, body=body)
        with self.lock:
            self.commands.append(
                {
                    "id": len(self.commands) + 1,
                    "device": device,
                    "n": n,
                    "payload": signed_message(key, text),
                }  # fmt: skip
            )

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != "Bearer good":
            return httpx.Response(401, json={"detail": "bad token"})
        with self.lock:
            if request.url.path == "/api/v1/gateway/commands":
                self.asked.append(dict(request.url.params))
                after = int(request.url.params.get("after", "0"))
                return httpx.Response(
                    200, json={"commands": [c for c in self.commands if c["id"] > after]}
                )
            if request.url.path == "/api/v1/presence":
                self.presence.extend(PresenceRequest.model_validate_json(request.content).updates)
                return httpx.Response(200, json={"accepted": 1, "ignored": []})
        return httpx.Response(200, json={"accepted": 0, "duplicates": 0, "rejected": []})

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url="http://server.test", transport=httpx.MockTransport(self.handler),
            headers={"Authorization": "Bearer good"},
        )  # fmt: skip


class Device:
    """The firmware's rules for `cmd` (docs/protocol.md): signature first, then own id,
    then n above the last accepted; status reports cfg, cmd and the last refusal."""

    def __init__(self, address: str, pub: bytes) -> None:
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.pub_raw = pub
        self.last_n = 0
        self.cfg = 0
        self.errors: list[str] = []
        self.got = threading.Event()
        self.client: mqtt.Client | None = None

    def connect(self) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:6]}")
        c.will_set(f"nps/v1/{DEVICE}/status", b'{"online": false}', qos=1, retain=True)
        c.on_message = self._on_message
        c.connect(self.host, self.port)
        c.subscribe(f"nps/v1/{DEVICE}/cmd", qos=1)
        c.loop_start()
        self.client = c
        self.status()

    def disconnect(self) -> None:
        assert self.client is not None
        self.client.publish(
            f"nps/v1/{DEVICE}/status", b'{"online": false}', qos=1, retain=True
        ).wait_for_publish(10)
        self.client.disconnect()
        self.client.loop_stop()

    def status(self) -> None:
        assert self.client is not None
        body = {"online": True, "fw": "1.0.0", "boot": 1, "cfg": self.cfg, "cmd": self.last_n,
                "cmd_error": self.errors[-1] if self.errors else None, "update": None}  # fmt: skip
        self.client.publish(f"nps/v1/{DEVICE}/status", json.dumps(body), qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        message = json.loads(msg.payload)
        try:
            Ed25519PublicKey.from_public_bytes(self.pub_raw).verify(
                base64.b64decode(message["s"]), message["c"].encode()
            )
        except InvalidSignature:
            self.errors.append("cmd_sig")
        else:
            cmd = json.loads(message["c"])
            if cmd["device"] != DEVICE:
                self.errors.append("cmd_device")
            elif cmd["n"] <= self.last_n:
                self.errors.append("cmd_replay")
            else:
                self.last_n, self.cfg = cmd["n"], cmd["cfg"]
        self.status()
        self.got.set()


@pytest.fixture
def server() -> CommandServer:
    return CommandServer()


def _pub_raw() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return SERVER_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_commands_wait_for_the_device_then_are_confirmed_and_dropped(
    mqtt_broker, run_gateway, server: CommandServer, make
) -> None:
    server.add(1)
    gw = run_gateway(mqtt_broker.address, server.client(), command_poll_s=0.1)
    make.wait_until(lambda: gw.relay.pending() == [(DEVICE, 1)], timeout=20, what="stored")
    device = Device(mqtt_broker.address, _pub_raw())
    assert not device.got.is_set()  # offline: nothing published to it
    device.connect()
    make.wait_until(lambda: device.last_n == 1, timeout=20, what="command applied")
    make.wait_until(lambda: gw.relay.pending() == [], timeout=20, what="dropped once confirmed")
    assert device.cfg == 1 and device.errors == []
    # The server hears the device's report through presence.
    make.wait_until(
        lambda: any(p.cmd == 1 and p.cfg == 1 for p in server.presence), timeout=20,
        what="report forwarded",
    )  # fmt: skip

    # While it is away, two more are queued; on reconnect both arrive, in order.
    device.disconnect()
    make.wait_until(lambda: any(p.online is False for p in server.presence), timeout=20,
                    what="offline seen")  # fmt: skip
    server.add(2)
    server.add(3)
    make.wait_until(lambda: len(gw.relay.pending()) == 2, timeout=20, what="two stored")
    device.connect()
    make.wait_until(lambda: device.last_n == 3, timeout=20, what="both applied")
    make.wait_until(lambda: gw.relay.pending() == [], timeout=20, what="both dropped")
    assert device.errors == []


def test_a_forged_command_is_refused_by_the_device_and_not_confirmed(
    mqtt_broker, run_gateway, server: CommandServer, make
) -> None:
    device = Device(mqtt_broker.address, _pub_raw())
    device.connect()
    server.add(1, key=Ed25519PrivateKey.generate())  # a stolen gateway's own key, say
    gw = run_gateway(mqtt_broker.address, server.client(), command_poll_s=0.1)
    make.wait_until(lambda: device.errors == ["cmd_sig"], timeout=20, what="refused")
    assert device.last_n == 0 and device.cfg == 0
    assert gw.relay.pending() == [(DEVICE, 1)]  # not confirmed: kept, retried later, bounded
    # A replay of an accepted n is refused too.
    server.add(1)
    server.add(2)
    make.wait_until(lambda: device.last_n == 2, timeout=20, what="the good one applied")
    make.wait_until(lambda: gw.relay.pending() == [], timeout=20, what="all dropped")


def test_the_gateway_asks_only_after_its_cursor(
    mqtt_broker, run_gateway, server: CommandServer, make
) -> None:
    server.add(1)
    gw = run_gateway(mqtt_broker.address, server.client(), command_poll_s=0.1)
    make.wait_until(lambda: len(server.asked) >= 3, timeout=20, what="polled")
    assert server.asked[-1]["after"] == "1" and "fw_url" not in server.asked[-1]
    assert gw.relay.pending() == [(DEVICE, 1)]


def test_unreadable_answers_from_the_server_are_counted_not_fatal(tmp_path) -> None:
    from prometheus_client import CollectorRegistry

    from gateway.commands import Relay
    from gateway.store import Store

    answers = [
        httpx.Response(200, json={"commands": [
            {"id": 1, "device": DEVICE, "n": 1, "payload": "not json"},
            {"id": 2, "device": DEVICE, "payload": "{}"},
            {"id": "x"},
            "a string",
        ]}),
        httpx.Response(200, content=b"<html>proxy error</html>"),
        httpx.Response(503, json={"detail": "busy"}),
        httpx.Response(404, json={"detail": "an older server"}),
    ]  # fmt: skip
    client = httpx.Client(
        base_url="http://server.test", transport=httpx.MockTransport(lambda r: answers.pop(0))
    )
    Store(tmp_path / "gw.db").close()
    registry = CollectorRegistry()
    relay = Relay(tmp_path / "gw.db", client, lambda t, p: True, registry, root="nps/v1")
    assert relay.fetch() == 0
    assert registry.get_sample_value("nps_gateway_commands_total", {"outcome": "bad"}) == 4
    for _ in range(2):
        with pytest.raises((httpx.HTTPError, ValueError)):
            relay.fetch()  # the run loop logs these and asks again next round
    assert relay.fetch() == 0
    assert relay.pending() == []
    relay.close()
