"""`python -m bench [NAME ...]`: list the benchmarks, or run the named ones in turn.

    python -m bench                                   # the list, with what each measures
    python -m bench fleet_load ingest_batch           # these two, each on its defaults
    python -m bench fleet_load --devices 2000         # one, with its own options

Each benchmark is also runnable alone as `python -m bench.NAME` (`--help` there gives
its options); docs/benchmarks.md gives the figures seen and how to read them.
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

USAGE = "usage: python -m bench [NAME ...] | python -m bench NAME [OPTIONS] | python -m bench -h"


def listing() -> str:
    lines = [USAGE, "", "benchmarks (python -m bench.NAME --help for one's options):"]
    lines += [f"  {name:20} {what}" for name, what in BENCHMARKS.items()]
    return "\n".join(lines)


def runs(argv: list[str]) -> list[list[str]] | str:
    """The command line as (name, *options) runs, or why it cannot be run."""
    first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:first_option], argv[first_option:]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        return f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}"
    if options and len(names) != 1:
        return (
            "options go after a single benchmark's name (python -m bench NAME --opt ...);"
            " several names run each on its defaults"
        )
    return [[names[0], *options]] if options else [[name] for name in names]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(listing())
        return 0
    planned = runs(argv)
    if isinstance(planned, str):
        print(f"{planned}\n{USAGE}", file=sys.stderr)
        return 2
    for name, *options in planned:
        print(f"==> bench.{name} {' '.join(options)}".rstrip(), flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *options])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
