"""What bench.fleet_load measures with: latency marker devices, and CPU and memory from /proc.

The prober's method (publish, then poll the read API until the event is
there) is described in bench/fleet_load.py's docstring.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.fleet_devices import event
from bench.gateway_throughput import peak_rss_mb, proc_cpu_s, scrape
from bench.server_load import percentile
from firmware.device import mqtt_codec as codec

Marker = tuple[str, int, list[str]]  # broker host, port, [device, site, password]


class Prober:
    """Marker devices: publish one event a second each, then poll the read API until it is
    there. Latencies are kept under the label of the phase running when published."""

    def __init__(self, markers: list[Marker], api: str, token: str, poll_s: float) -> None:
        self.api, self.token, self.poll_s = api, token, poll_s
        self.phase = ""
        self.latencies: dict[str, list[float]] = {}
        self.polls = 0  # read API requests made: load the measurement adds to the server
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(marker,), daemon=True) for marker in markers
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def run(self, marker: Marker) -> None:
        host, port, (name, site_name, password) = marker
        rng = random.Random(name)
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(codec.connect(name, 0, True, name, password))
        read_packet(sock)  # CONNACK
        headers = {"Authorization": f"Bearer {self.token}"}
        seq = 0
        with httpx.Client(base_url=self.api, headers=headers, timeout=30) as api:
            while not self.stop.is_set():
                tick = time.monotonic()
                seq += 1
                topic, payload = event(name, site_name, seq, rng)
                phase = self.phase
                t0 = time.monotonic()
                sock.sendall(codec.publish(topic, payload, 1, False, seq % 65535 + 1))
                read_packet(sock)  # PUBACK
                while not self.stop.is_set():
                    time.sleep(self.poll_s)
                    self.polls += 1
                    r = api.get(f"/api/v1/devices/{name}/gaps")
                    if r.status_code == 200 and r.json()["max_seq"] >= seq:
                        self.latencies.setdefault(phase, []).append(time.monotonic() - t0)
                        break
                self.stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
        sock.close()


def read_packet(sock: Any) -> tuple[int, bytes]:
    buf = bytearray()
    while (got := codec.take_packet(buf)) is None:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("broker closed the connection")
        buf += chunk
    return got[0], got[2]


def latency_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_s": round(percentile(values, 0.5), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "p99_s": round(percentile(values, 0.99), 3),
        "max_s": round(max(values), 3),
    }


def process_tree(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def sample(pids: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """CPU seconds so far and peak RSS (MB, the largest process of a group) per group."""
    out = {}
    for name, group in pids.items():
        cpu, peak = 0.0, 0.0
        for pid in group:
            try:
                cpu += proc_cpu_s(pid)
                peak = max(peak, peak_rss_mb(pid))
            except (OSError, IndexError):
                continue  # ended since listed
        out[name] = {"cpu_s": cpu, "peak_mb": peak, "processes": len(group)}
    return out


def cpu_between(a: dict[str, Any], b: dict[str, Any], seconds: float) -> dict[str, float]:
    """Each group's share of one core between two samples."""
    return {k: round((b[k]["cpu_s"] - a[k]["cpu_s"]) / seconds, 3) for k in b if k in a}


def forward_counts(metrics_ports: list[int]) -> tuple[float, float]:
    """Ingest requests the gateways completed and the seconds they took, summed (/metrics)."""
    count = total = 0.0
    for port in metrics_ports:
        got = scrape(port)
        count += got.get("nps_gateway_forward_latency_seconds_count", 0.0)
        total += got.get("nps_gateway_forward_latency_seconds_sum", 0.0)
    return count, total
