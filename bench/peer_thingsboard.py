"""The peer, measured in the same run: ThingsBoard IoT Gateway from PyPI, on the same stream.

`bench.gateway_throughput` calls `run()` after its own phases. The peer is
installed from PyPI (`thingsboard-gateway==VERSION`) into a virtual
environment of its own under `~/.cache/nps-edge/peers/` the first time (a
minute; `--no-peer` skips the phase), so its dependencies never touch ours.

The path is the one ../shared/peers.md describes: the device broker ->
the gateway's MQTT connector (QoS 1, persistent session) -> its SQLite
storage -> MQTT (QoS 1) to "ThingsBoard". ThingsBoard itself is a second
Mosquitto and a paho client here: it answers the gateway's one RPC
(`getSessionLimits`, with no limits) and counts the data points that arrive on
`v1/gateway/telemetry`, each event carrying its own `id` as a key, so the
count is of distinct events delivered.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.broker import DEPLOY_CONFIG, Broker, start_mosquitto

VERSION = "3.8.5"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nps-edge" / "peers"
NO_LIMITS = "0:0,"  # the gateway's notation for "no rate limit"
RATE_LIMIT_KEYS = (
    "rateLimits", "dpRateLimits", "messagesRateLimits",
    "deviceMessagesRateLimits", "deviceRateLimits", "deviceDpRateLimits",
)  # fmt: skip
SESSION_LIMITS = {
    "rateLimits": {k: NO_LIMITS for k in ("messages", "telemetryMessages", "telemetryDataPoints")},
    "maxInflightMessages": 100,
    "maxPayloadSize": 65536,
}
DEVICE_NAME = r"(?<=nps/v1/)(.*?)(?=/)"
# The peer's persistent session on the device broker: dropped after each run, or the
# broker queues every later phase's events for it (and the next run delivers them).
CLIENT_ID = "tb-peer"
# The peer packs telemetry up to its `maxPayloadSizeBytes` (8,196 here, the session's limit
# 65,536): past the device broker's 8,192-byte `message_size_limit` Mosquitto answers an MQTT 5
# PUBACK with 0x95 "Packet too large", which the peer's paho (tb-paho-mqtt-client 2.1.2) cannot
# name for a PUBACK: its network thread dies and reconnects every 5 s, delivering nothing.
# ThingsBoard takes 65,536 bytes, so the platform broker takes any size.
PLATFORM_MESSAGE_SIZE_LIMIT = "message_size_limit 0"


def install(say: Callable[[str], None] = print) -> Path:
    """The peer's `thingsboard-gateway` executable, installing it first if needed."""
    env = CACHE / f"thingsboard-gateway-{VERSION}"
    exe = env / "bin" / "thingsboard-gateway"
    if exe.exists():
        return exe
    say(f"installing thingsboard-gateway {VERSION} from PyPI into {env} (once; about a minute)")
    shutil.rmtree(env, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(env)
    subprocess.run(
        [str(env / "bin" / "pip"), "install", "--quiet", f"thingsboard-gateway=={VERSION}"],
        check=True,
    )
    return exe


def write_config(directory: Path, device_broker: Broker, platform: Broker, data: Path) -> None:
    """tb_gateway.json, the MQTT connector's mqtt.json and logs.json (to files, INFO)."""
    directory.mkdir(parents=True, exist_ok=True)
    gateway = {
        "thingsboard": {
            "host": platform.host, "port": platform.port, "remoteShell": False,
            "remoteConfiguration": False, "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 60},
            "deviceFiltering": {"enable": False}, "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60, "handleDeviceRenaming": True,
            "security": {"type": "accessToken", "accessToken": "bench"}, "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
            **{key: NO_LIMITS for key in RATE_LIMIT_KEYS},
        },
        "storage": {
            "type": "sqlite", "data_file_path": f"{data}/", "messages_ttl_check_in_hours": 1,
            "messages_ttl_in_days": 7, "max_read_records_count": 1000,
            "writing_batch_size": 1000, "size_limit": 1024, "max_db_amount": 10,
        },
        "grpc": {"enabled": False},
        "connectors": [{"type": "mqtt", "name": "nps", "configuration": "mqtt.json"}],
    }  # fmt: skip
    connector = {
        "broker": {
            "host": device_broker.host, "port": device_broker.port, "clientId": CLIENT_ID,
            "version": 4, "maxMessageNumberPerWorker": 10, "maxNumberOfWorkers": 100,
            "cleanSession": False, "security": {"type": "anonymous"},
        },
        "mapping": [
            {
                "topicFilter": f"nps/v1/+/{kind}", "subscriptionQos": 1,
                "converter": {
                    "type": "json", "timeout": 60000, "attributes": [],
                    "deviceInfo": {
                        "deviceNameExpressionSource": "topic",
                        "deviceNameExpression": DEVICE_NAME,
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": "nps",
                    },
                    "timeseries": [
                        {"type": "string", "key": "id", "value": "${id}"},
                        {"type": "integer", "key": "seq", "value": "${seq}"},
                    ],
                },
            }
            for kind in ("feedback", "telemetry")
        ],
    }  # fmt: skip
    handler = {
        "class": "logging.FileHandler", "filename": str(directory / "peer.log"),
        "formatter": "plain", "level": "INFO",
    }  # fmt: skip
    names = ("database", "service", "connector", "converter", "tb_connection", "storage")
    logs = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": handler},
        "loggers": {n: {"handlers": ["file"], "level": "INFO", "propagate": False} for n in names},
    }  # fmt: skip
    for name, body in (("tb_gateway.json", gateway), ("mqtt.json", connector), ("logs.json", logs)):
        (directory / name).write_text(json.dumps(body, indent=1))


class Platform:
    """The ThingsBoard side: answers `getSessionLimits`, counts distinct event ids delivered."""

    def __init__(self, broker: Broker, expected: set[str]) -> None:
        self.expected = expected
        self.ids: set[str] = set()
        self.points = 0
        self.last = 0.0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-platform")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("v1/gateway/telemetry", 1), ("v1/devices/me/rpc/request/+", 1)])
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.startswith("v1/devices/me/rpc/request/"):
            request = json.loads(msg.payload)
            if request.get("method") == "getSessionLimits":
                reply = "v1/devices/me/rpc/response/" + msg.topic.rsplit("/", 1)[1]
                client.publish(reply, json.dumps(SESSION_LIMITS), 1)
            return
        body = json.loads(msg.payload)
        with self._lock:
            for rows in body.values():
                for row in rows:
                    values = row.get("values", row)
                    if values.get("id") in self.expected:
                        self.points += 1
                        self.ids.add(values["id"])
                        self.last = time.time()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(
    device_broker: Broker,
    stream: dict[str, list[tuple[str, str]]],
    workdir: Path,
    publish: Callable[[Broker, dict[str, list[tuple[str, str]]], Path], float],
    proc_cpu_s: Callable[[int], float],
    peak_rss_mb: Callable[[int], float],
    forget_session: Callable[[Broker, str], None],
    timeout_s: float = 600.0,
) -> dict[str, float]:
    """The peer gateway live on `stream`: events/s, CPU ms per event, share of a core, peak RSS,
    events missing and duplicated at its output."""
    exe = install()
    total = sum(len(v) for v in stream.values())
    platform_broker = start_mosquitto(
        workdir / "platform-broker", template=platform_config(workdir / "platform.conf")
    )
    platform = Platform(
        platform_broker, {json.loads(p)["id"] for lines in stream.values() for _, p in lines}
    )
    config = workdir / "config"
    write_config(config, device_broker, platform_broker, workdir / "data")
    (workdir / "run" / "logs").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(exe)], cwd=workdir / "run", env=dict(os.environ, TB_GW_CONFIG_DIR=str(config)),
        stdout=subprocess.DEVNULL, stderr=(workdir / "peer.err").open("wb"),
    )  # fmt: skip
    try:
        _wait_ready(config / "peer.log", workdir / "run", proc, timeout_s=60)
        cpu0 = proc_cpu_s(proc.pid)
        start = publish(device_broker, stream, workdir)
        deadline = time.monotonic() + timeout_s
        while len(platform.ids) < total and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the peer gateway stopped; see {workdir / 'peer.err'}")
            time.sleep(0.05)
        cpu = proc_cpu_s(proc.pid) - cpu0  # to the last event, as for nps-edge's gateway
        peak = peak_rss_mb(proc.pid)
        time.sleep(1.0)  # late duplicates
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        forget_session(device_broker, CLIENT_ID)
        platform.stop()
        platform_broker.stop()
    delivered = len(platform.ids)
    wall = max(platform.last - start, 1e-9)
    return {
        "rate": delivered / wall,
        "cpu_ms": 1000 * cpu / max(delivered, 1),
        "cpu_share": cpu / wall,
        "peak_mb": peak,
        "missing": total - delivered,
        "duplicates": platform.points - delivered,
    }


def platform_config(path: Path) -> Path:
    """The shipped Mosquitto config with no message size limit (see PLATFORM_MESSAGE_SIZE_LIMIT)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        PLATFORM_MESSAGE_SIZE_LIMIT if line.startswith("message_size_limit ") else line
        for line in DEPLOY_CONFIG.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_ready(log: Path, run_dir: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until the gateway has its session limits and its connector is subscribed (the connector
    logs to a file of its own, `<name>_connector.log`, in the working directory `run_dir`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        files = [log, *run_dir.glob("*.log")]
        text = "".join(p.read_text(errors="replace") for p in files if p.exists())
        if "configuration was successfully retrieved" in text and "subscription success" in text:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit(f"the peer gateway did not start within {timeout_s:.0f} s; see {log}")
