"""`python -m bench [NAME ...]`: list the benchmarks, or run the named ones in turn.

Each benchmark is also runnable alone as `python -m bench.NAME --help`;
docs/benchmarks.md gives the figures seen and how to read them.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = {
    "firmware_mqtt": "device MQTT client: PUBACK latency and rate vs split writes and paho",
    "firmware_scenario": "a month of history for 20 devices through nps-edge sim --scenario",
    "firmware_memory": "heap over 3 weeks (1 offline): romfs in 64k vs .mpy in heap",
    "fwtools_bundle": "lean vs debug firmware build: .mpy size and free heap after boot",
    "gateway_throughput": "gateway events/s vs a bare subscriber and ThingsBoard (same run)",
    "server_load": "GET /api/v1/nps p50/p95 at fleet scale and ingest events/s vs a bare INSERT",
    "ingest_batch": "a fleet-shaped batch (1,000 devices) in process vs a bare INSERT of its rows",
    "ingest_instructions": "instructions per ingest batch (valgrind) vs a bare INSERT of its rows",
    "pg_partitions": "month partitions vs the plain table: ingest, reads, dropping a month",
    "dashboard_overview": "overview page complete in Chromium vs its API calls alone",
    "fleet_load": "10,000 devices through brokers, gateways, server on PostgreSQL vs bare refs",
    "ack_publish": "the gateway's acks to devices: paho CPU per publish, QoS 1 vs QoS 0",
}


def main(argv: list[str]) -> int:
    if not argv:
        print("benchmarks (run: make bench BENCH_ARGS=NAME, or python -m bench NAME):")
        for name, what in BENCHMARKS.items():
            print(f"  {name:20} {what}")
        return 0
    unknown = [name for name in argv if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    for name in argv:
        print(f"==> bench.{name}", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
