"""The fleet benchmark's parts: contract-valid events, the light devices against a real
Mosquitto, and its plots (bench/fleet_devices.py, bench/plots.py)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import fleet_devices, plots
from contract.protocol import decode_payload, parse_event, parse_topic
from nps_edge.broker import Broker, mosquitto_binary, start_mosquitto

RUN = Path(__file__).resolve().parents[2] / "docs" / "img" / "fleet_load-run1.json"


def test_every_event_is_valid_under_the_contract() -> None:
    rng = random.Random(3)
    kinds = set()
    for seq in range(1, 400):
        topic, payload = fleet_devices.event("fl-a-00001", "fleet-a", seq, rng)
        device, kind = parse_topic(topic)
        event = parse_event(decode_payload(payload))
        assert (device, event.type, event.id, event.seq) == (
            "fl-a-00001",
            kind,
            f"fl-a-00001:{seq}",
            seq,
        )
        kinds.add(kind)
    assert kinds == {"feedback", "telemetry"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed: apt-get install mosquitto")
    b = start_mosquitto(tmp_path / "broker")
    yield b
    b.stop()


def test_light_devices_publish_a_burst_and_every_puback_comes_back(broker: Broker) -> None:
    async def burst() -> dict[str, Any]:
        fleet = fleet_devices.Fleet(
            [[f"fl-t-{i:05d}", "t", "pw"] for i in range(50)], window=4, seed=1
        )
        await fleet.connect(broker.host, broker.port)
        await fleet.burst(1000)
        return fleet.report("burst")

    report = asyncio.run(burst())
    assert report["devices"] == 50
    assert report["published"] == report["acked"] == 1000
    assert report["lost_connections"] == 0


def test_plots_are_written_and_small(tmp_path: Path) -> None:
    result = json.loads(RUN.read_text())
    paths = plots.fleet_load(result, tmp_path)
    assert [p.name for p in paths] == ["fleet_load_throughput.png", "fleet_load_latency.png"]
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size < 100_000


def test_the_gateway_comparison_is_drawn_from_that_benchmarks_printed_output(
    tmp_path: Path,
) -> None:
    def rep(i: int) -> dict[str, Any]:
        path = {"rate": 1000.0 + i, "cpu_ms": 0.1, "cpu_share": 0.4, "peak_mb": 60.0}
        return {
            "thingsboard_live": path | {"rate": 3000.0 + i, "cpu_ms": 0.3},
            "gateway_sink_FULL": path,
            "gateway_server_backlog": path | {"rate": 9000.0 * i},
        }

    result = {
        "events": 20000,
        "reps": 3,
        "runs": [rep(1), rep(2), rep(3)],
        "bare_subscriber": {"rate": 9000.0, "cpu_ms": 0.05},
    }
    printed = tmp_path / "gateway.out"
    printed.write_text(json.dumps(result, indent=1) + "\n\nbare paho subscriber: 9,000 events/s\n")
    read = plots.read_printed_json(printed)
    assert plots.gateway_paths(read) == [  # the median of the three reps
        ("bare paho subscriber", 9000.0, 0.05),
        ("ThingsBoard gateway (peer)", 3002.0, 0.3),
        ("nps-edge gw -> endpoint, live", 1002.0, 0.1),
        ("nps-edge gw -> server, backlog", 18000.0, 0.1),
    ]
    png = plots.gateway_throughput(read, tmp_path)
    assert png.name == "gateway_throughput.png" and png.read_bytes()[:4] == b"\x89PNG"
