"""Light simulated devices for bench.fleet_load: one MQTT connection each, in one asyncio process.

    python -m bench.fleet_devices --broker HOST:PORT --logins FILE

`FILE` is a JSON list of `[device, site, password]` (logins from the registry).
Each device logs in as itself (client id = username, as the site broker
requires) and publishes contract events, feedback and telemetry, QoS 1, with
its own `seq` counter, using the firmware's own MQTT 3.1.1 codec
(firmware/device/mqtt_codec.py) over asyncio transports: thousands of
connections in one process, no thread per device.

Driven by lines on stdin, answering one JSON line on stdout each:

- `rate R SECONDS`: publish R events/s in all, round-robin over the devices
  (a device with `--window` PUBACKs outstanding is skipped: counted as `held`);
- `burst N`: N events in all, each device keeping `--window` in flight;
- `quit`.

The answer gives events published, acknowledged, and the wall-clock times of
the first publish and the last PUBACK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from typing import Any

import orjson

from firmware.device import mqtt_codec as codec

TRIGGERS = ("cycle_complete", "service_visit", "walkup")


def raise_open_files() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (one socket per device); returns it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def event(device: str, site: str, seq: int, rng: random.Random) -> tuple[str, bytes]:
    """(topic, payload) of a contract event: 80 % feedback (scores uniform 0-10), 20 % telemetry."""
    common: dict[str, Any] = {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": site, "seq": seq,
        "boot": 1, "up_ms": seq * 1000, "ts": round(time.time(), 3), "fw": "1.0.0",
    }  # fmt: skip
    if rng.random() < 0.8:
        answered = rng.random() < 0.65
        body = common | {
            "type": "feedback",
            "outcome": "answered" if answered else "timeout",
            "prompt": "nps",
            "trigger": {"kind": rng.choice(TRIGGERS), "ref": f"tx-{seq}"},
            "reason": None,
            "answer_ms": rng.randint(800, 9000) if answered else None,
            "ctx": {"rssi": rng.randint(-90, -40), "battery_mv": rng.randint(3300, 4200)},
        }
        if answered:
            body["score"] = rng.randint(0, 10)
        kind = "feedback"
    else:
        kind = "telemetry"
        body = common | {
            "type": kind, "battery_mv": 3900, "rssi": -61, "heap_free": 21000,
            "heap_min": 17000, "uptime_s": seq, "temp_c": 36.5, "outbox_depth": 0,
            "reset_cause": "power_on", "errors": {},
        }  # fmt: skip
    return f"nps/v1/{device}/{kind}", orjson.dumps(body)


class Device(asyncio.Protocol):
    """One device's connection: CONNECT, then QoS 1 PUBLISHes counted back by PUBACK."""

    def __init__(self, fleet: Fleet, name: str, site: str, password: str) -> None:
        self.fleet, self.name, self.site, self.password = fleet, name, site, password
        self.transport: asyncio.Transport | None = None
        self.connected = fleet.loop.create_future()
        self.buf = bytearray()
        self.seq = 0
        self.pid = 0
        self.inflight = 0
        self.owed = 0  # burst: events still to publish

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # 3.1: client id = login (use_username_as_clientid), keep-alive off, clean session.
        packet = codec.connect(self.name, 0, True, self.name, self.password)
        transport.write(packet)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (got := codec.take_packet(self.buf)) is not None:
            kind, _, body, used = got
            del self.buf[:used]
            if kind == codec.CONNACK and not self.connected.done():
                if body[1] == 0:  # 3.2.2.3: 0 accepted
                    self.connected.set_result(True)
                else:
                    self.connected.set_exception(OSError(f"{self.name}: CONNACK {body[1]}"))
            elif kind == codec.PUBACK:
                self.inflight -= 1
                self.fleet.acked += 1
                self.fleet.last_ack = time.time()
                if self.owed:
                    self.publish()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or OSError(f"{self.name}: closed"))
        self.fleet.lost += 1

    def publish(self) -> None:
        assert self.transport is not None
        self.seq += 1
        self.pid = self.pid % 65535 + 1  # 2.3.1: non-zero packet identifier
        topic, payload = event(self.name, self.site, self.seq, self.fleet.rng)
        self.transport.write(codec.publish(topic, payload, 1, False, self.pid))
        self.inflight += 1
        if self.owed:
            self.owed -= 1
        self.fleet.published += 1
        self.fleet.first_publish = self.fleet.first_publish or time.time()


class Fleet:
    def __init__(self, logins: list[list[str]], window: int, seed: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.logins = logins
        self.window = window
        self.rng = random.Random(seed)
        self.devices: list[Device] = []
        self.published = self.acked = self.lost = self.held = 0
        self.first_publish = self.last_ack = 0.0

    async def connect(self, host: str, port: int, parallel: int = 200) -> None:
        gate = asyncio.Semaphore(parallel)

        async def one(name: str, site: str, password: str) -> Device:
            async with gate:
                _, dev = await self.loop.create_connection(
                    lambda: Device(self, name, site, password), host, port
                )
                await asyncio.wait_for(dev.connected, 60)
                return dev

        self.devices = list(await asyncio.gather(*(one(*login) for login in self.logins)))

    def reset(self) -> None:
        self.published = self.acked = self.held = 0
        self.first_publish = self.last_ack = 0.0

    async def settle(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < self.published and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def rate(self, per_s: float, seconds: float) -> None:
        """Offered load: `per_s` events/s round-robin, in 10 ms ticks."""
        start = time.monotonic()
        i = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(per_s * elapsed) - self.published - self.held
            for _ in range(due):
                dev = self.devices[i % len(self.devices)]
                i += 1
                if dev.inflight < self.window:
                    dev.publish()
                else:
                    self.held += 1
            await asyncio.sleep(0.01)
        await self.settle()

    async def burst(self, n: int) -> None:
        """`n` events in all as fast as the broker acknowledges, `window` in flight per device."""
        share, extra = divmod(n, len(self.devices))
        for k, dev in enumerate(self.devices):
            dev.owed = share + (1 if k < extra else 0)
        for dev in self.devices:
            for _ in range(min(self.window, dev.owed)):
                dev.publish()
        await self.settle(600)

    def report(self, what: str) -> dict[str, Any]:
        return {
            "phase": what, "devices": len(self.devices), "published": self.published,
            "acked": self.acked, "held": self.held, "lost_connections": self.lost,
            "first_publish": self.first_publish, "last_ack": self.last_ack,
        }  # fmt: skip


async def serve(args: argparse.Namespace) -> None:
    logins = json.loads(open(args.logins).read())
    host, port = args.broker.rsplit(":", 1)
    fleet = Fleet(logins, args.window, args.seed)
    t0 = time.monotonic()
    await fleet.connect(host, int(port))
    print(json.dumps({"connected": len(fleet.devices), "s": time.monotonic() - t0}), flush=True)
    reader = asyncio.StreamReader()
    await fleet.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        fleet.reset()
        if line[0] == "rate":
            await fleet.rate(float(line[1]), float(line[2]))
        elif line[0] == "burst":
            await fleet.burst(int(line[1]))
        else:
            break
        print(json.dumps(fleet.report(line[0])), flush=True)
    for dev in fleet.devices:
        if dev.transport is not None:
            dev.transport.write(codec.DISCONNECT_PACKET)
            dev.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", required=True, help="HOST:PORT of the site's broker")
    parser.add_argument("--logins", required=True, help="JSON list of [device, site, password]")
    parser.add_argument("--window", type=int, default=4, help="PUBACKs outstanding per device")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    raise_open_files()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
