"""Gateway throughput, broker to server, against a bare paho subscriber on the same stream.

    .venv/bin/python -m bench.gateway_throughput [--events 20000] [--devices 20] [--reps 3]
    .venv/bin/python -m bench.gateway_throughput --events 4000 --reps 1   # a quick look
    .venv/bin/python -m bench.gateway_throughput --no-peer --lanes 1,2 \
        --server-db postgresql+psycopg://root@127.0.0.1:5432/DB --server-workers 2

One Mosquitto with the shipped config (docs/deploy/mosquitto.conf). The
publishers are `mosquitto_pub -l -q 1` (C, one per device, 1,000 in flight),
so they limit neither figure. In the same run, on the same broker:

1. a bare paho subscriber (QoS 1, no store, no forwarding) receives the stream;
2. `nps-edge gateway` (a real process, SQLite synchronous=FULL) forwards it to a
   minimal accepting endpoint (bench/gateway_sink.py), so the figure is the
   gateway's own; then the same with synchronous=NORMAL (the cost of FULL);
   then draining a backlog into that endpoint, taken while it was down (the
   gateway's own drain rate, which no server bounds);
3. when `nps-edge server` is available, the gateway forwards to the real server
   on SQLite (end to end, everything on this machine), live and then draining
   a backlog held while the server was down (a drain clock starts at the first
   batch taken, so neither the retry back-off nor a start-up counts);
4. the peer, ThingsBoard IoT Gateway from PyPI (bench/peer_thingsboard.py), live on
   the same stream through its SQLite storage: the ratios to it are of this run,
   not of figures from another machine (`--no-peer` skips it).

Phases 2 to 4 run `--reps` times, interleaved (peer, then ours, rep after
rep) so that the load of a shared machine falls on both; the report gives the
median of each figure and of the per-rep ratios to the peer, with every rep's
value, the CPU model and the load average.

`--lanes 1,2` runs the real-server phases once per `forward_lanes` value (keys
`..._lanes1`, `..._lanes2`; the order alternates from rep to rep) and reports
each lane count's rate and CPU per event against one lane's, rep by rep.
`--server-db` puts the real server on a database of the caller's (PostgreSQL,
created empty beforehand; the backlog phases then use it too, through a second
server process), `--server-workers` sets its worker processes.

Each rate is events / (last event delivered - publishing started). CPU per
message is the gateway process's user+system time over the run / events, for
the peer and for ours alike (/proc/PID/stat).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench import peer_thingsboard
from contract.protocol import decode_payload
from gateway.policy import admit
from gateway.store import Store
from nps_edge.broker import Broker, free_port, start_mosquitto, wait_for_port
from tests.gateway.processes import GatewayProcess, ServerProcess

GOAL_VS_PEER = 4.0  # issue 17: 4 x the peer's rate and 4 x less CPU per event, same run


def make_stream(devices: int, per_device: int, seed: int = 7) -> dict[str, list[tuple[str, str]]]:
    """device -> [(topic, payload line)], 80% feedback and 20% telemetry, seq in order."""
    rng = random.Random(seed)
    out: dict[str, list[tuple[str, str]]] = {}
    for d in range(devices):
        device = f"nps-bench{d:03d}"
        lines = []
        for seq in range(1, per_device + 1):
            common = {
                "v": 1, "id": f"{device}:{seq}", "device": device, "site": "bench",
                "seq": seq, "boot": 1, "up_ms": seq * 1000, "ts": 1795000000.0 + seq,
                "fw": "1.0.0",
            }  # fmt: skip
            if rng.random() < 0.8:
                kind = "feedback"
                event = common | {
                    "type": kind, "outcome": "answered", "score": rng.randint(0, 10),
                    "prompt": "nps", "trigger": {"kind": "cycle_complete", "ref": f"tx-{seq}"},
                    "reason": None, "answer_ms": rng.randint(800, 9000),
                    "ctx": {"rssi": rng.randint(-90, -40), "battery_mv": rng.randint(3300, 4200)},
                }  # fmt: skip
            else:
                kind = "telemetry"
                event = common | {
                    "type": kind, "battery_mv": 3900, "rssi": -61, "heap_free": 81234,
                    "heap_min": 60111, "uptime_s": seq, "temp_c": 36.5, "outbox_depth": 0,
                    "reset_cause": "power_on", "errors": {"mqtt": 0},
                }  # fmt: skip
            lines.append((f"nps/v1/{device}/{kind}", json.dumps(event)))
        out[device] = lines
    return out


def renamed(stream: dict[str, list[tuple[str, str]]], suffix: str) -> dict:
    """The same stream from devices named `<device><suffix>`."""
    return {
        f"{d}{suffix}": [(t.replace(d, d + suffix), p.replace(d, d + suffix)) for t, p in lines]
        for d, lines in stream.items()
    }


def publish(broker: Broker, stream: dict[str, list[tuple[str, str]]], workdir: Path) -> float:
    """Run one `mosquitto_pub -l` per (device, topic); returns the start time."""
    procs = []
    start = time.time()
    for device, lines in stream.items():
        for kind in ("feedback", "telemetry"):
            topic = f"nps/v1/{device}/{kind}"
            data = "\n".join(p for t, p in lines if t == topic) + "\n"
            proc = subprocess.Popen(
                ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1",
                 "-M", "1000", "-l", "-t", topic, "-i", f"pub-{device}-{kind}"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            procs.append((proc, data))
    for proc, data in procs:
        threading.Thread(target=proc.communicate, args=(data.encode(),), daemon=True).start()
    for proc, _ in procs:
        proc.wait(timeout=600)
    return start


def bare_subscriber(broker: Broker, stream: dict, workdir: Path) -> dict[str, float]:
    total = sum(len(v) for v in stream.values())
    done = threading.Event()
    state = {"n": 0, "last": 0.0}

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        state["n"] += 1
        if state["n"] == total:
            state["last"] = time.time()
            done.set()

    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=True)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(broker.host, broker.port)
    client.subscribe([("nps/v1/+/feedback", 1), ("nps/v1/+/telemetry", 1)])
    client.loop_start()
    subscribed.wait(10)
    cpu0 = time.process_time()
    start = publish(broker, stream, workdir)
    if not done.wait(300):
        raise RuntimeError(f"bare subscriber got {state['n']} of {total}")
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return {"rate": total / (state["last"] - start), "cpu_ms": 1000 * cpu / total}


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def forget_session(broker: Broker, client_id: str) -> None:
    """Drop a gateway's persistent session so later phases do not queue for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(broker.host, broker.port)
    client.disconnect()


def through_gateway(
    broker: Broker,
    stream: dict,
    workdir: Path,
    server_url: str,
    token: str,
    synchronous: str,
    delivered: Any,
    settings: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Run a gateway process over the stream; `delivered()` -> (count, wall time of last)."""
    total = sum(len(v) for v in stream.values())
    metrics_port = free_port()
    gw = GatewayProcess(
        workdir, broker.address, server_url, token,
        settings={"synchronous": synchronous} | (settings or {}), metrics_port=metrics_port,
    )  # fmt: skip
    gw.start()
    assert gw.proc is not None
    cpu0 = proc_cpu_s(gw.proc.pid)
    start = publish(broker, stream, workdir)
    deadline = time.monotonic() + 600
    while True:
        count, last = delivered()
        if count >= total:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {total} delivered; see {gw.log}")
        time.sleep(0.02)
    cpu = proc_cpu_s(gw.proc.pid) - cpu0
    peak = peak_rss_mb(gw.proc.pid)
    scraped = scrape(metrics_port)
    gw.stop()
    forget_session(broker, gw.client_id)
    store = Store(gw.store, readonly=True)
    stats = store.stats()
    store.close()
    return {
        "rate": total / (last - start),
        "cpu_ms": 1000 * cpu / total,
        "cpu_share": cpu / (last - start),
        "peak_mb": peak,
        "left_in_store": stats.depth,
        "duplicates": stats.counters.get("duplicates_server", 0),
        "commit_batch_mean": scraped["nps_gateway_commit_batch_messages_sum"]
        / max(scraped["nps_gateway_commit_batch_messages_count"], 1),
        "commit_ms_mean": 1000
        * scraped["nps_gateway_commit_seconds_sum"]
        / max(scraped["nps_gateway_commit_seconds_count"], 1),
        "forward_batch_mean": total / max(scraped["nps_gateway_forward_latency_seconds_count"], 1),
        "forward_ms_mean": 1000
        * scraped["nps_gateway_forward_latency_seconds_sum"]
        / max(scraped["nps_gateway_forward_latency_seconds_count"], 1),
    }


class SinkProcess:
    """bench/gateway_sink.py as a drain target: down until `start()`, like ServerProcess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def token_for(self, site: str) -> str:
        return "bench"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway_sink", "--port", str(self.port)]
        )
        wait_for_port("127.0.0.1", self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()


def drain_backlog(
    broker: Broker,
    stream: dict,
    workdir: Path,
    server: ServerProcess | SinkProcess,
    settings: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The gateway takes the whole stream while the server is down, then the server starts:
    events/s and gateway CPU per event from the first batch taken until the store is empty."""
    total = sum(len(v) for v in stream.values())
    gw = GatewayProcess(
        workdir, broker.address, server.url, server.token_for("bench"), settings=settings or {}
    )
    gw.start()
    assert gw.proc is not None
    publish(broker, stream, workdir)
    held = store_depth(gw.store)
    deadline = time.monotonic() + 600
    while held() < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway held only {held()} of {total}; see {gw.log}")
        time.sleep(0.05)
    server.start()
    forwarded = store_delivered(gw.store)
    # The clock starts at the first batch the server took: not the gateway's retry back-off
    # while the server was down, nor the server's start-up.
    while (first := forwarded()[0]) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing drained; see {gw.log}")
        time.sleep(0.005)
    start, cpu0 = time.time(), proc_cpu_s(gw.proc.pid)
    while forwarded()[0] < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {forwarded()[0]} of {total} drained; see {gw.log}")
        time.sleep(0.02)
    last = time.time()
    cpu = proc_cpu_s(gw.proc.pid) - cpu0
    total -= first
    peak = peak_rss_mb(gw.proc.pid)
    gw.stop()
    forget_session(broker, gw.client_id)
    return {"rate": total / (last - start), "cpu_ms": 1000 * cpu / total,
            "cpu_share": cpu / (last - start), "peak_mb": peak}  # fmt: skip


def store_depth(store_path: Path) -> Any:
    def depth() -> int:
        if not store_path.exists():
            return 0
        store = Store(store_path, readonly=True)
        try:
            return store.stats().depth
        finally:
            store.close()

    return depth


def scrape(port: int) -> dict[str, float]:
    """Unlabelled samples of the gateway's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def edge_validation_cost(stream: dict, n: int = 5000) -> dict[str, float]:
    """Microseconds per event: JSON decode alone vs the full admit() (contract models)."""
    items = [(t, p.encode()) for lines in stream.values() for t, p in lines][:n]
    t0 = time.perf_counter()
    for _, p in items:
        decode_payload(p)
    t1 = time.perf_counter()
    for t, p in items:
        admit(t, p, 1.0, "nps/v1")
    t2 = time.perf_counter()
    return {"decode_us": 1e6 * (t1 - t0) / len(items), "admit_us": 1e6 * (t2 - t1) / len(items)}


def store_cost(stream: dict, workdir: Path, n: int = 20_000) -> dict[str, dict[str, float]]:
    """The store alone: events/s committed in batches of 1, 10, 100 and 1,000, FULL vs NORMAL."""
    items = [admit(t, p.encode(), 1.0, "nps/v1") for lines in stream.values() for t, p in lines]
    events = [i for i in items if i is not None][:n]
    out: dict[str, dict[str, float]] = {}
    for sync in ("FULL", "NORMAL"):
        for batch in (1, 10, 100, 1000):
            path = workdir / f"store-{sync}-{batch}.db"
            store = Store(path, synchronous=sync)
            count = min(len(events), 2000 if batch == 1 else len(events))
            t0 = time.perf_counter()
            for start in range(0, count, batch):
                store.put(events[start : start + batch])  # type: ignore[arg-type]
            elapsed = time.perf_counter() - t0
            store.close()
            out.setdefault(sync, {})[f"batch_{batch}"] = count / elapsed
    return out


def sink_delivered(url: str) -> Any:
    client = httpx.Client(base_url=url)

    def delivered() -> tuple[int, float]:
        s = client.get("/stats").json()
        return s["events"], s["last"]

    return delivered


def store_delivered(store_path: Path) -> Any:
    def delivered() -> tuple[int, float]:
        if not store_path.exists():
            return 0, 0.0
        store = Store(store_path, readonly=True)
        try:
            return store.stats().counters.get("forwarded", 0), time.time()
        finally:
            store.close()

    return delivered


PHASES = ("gateway_sink_FULL", "gateway_sink_NORMAL", "gateway_sink_backlog",
          "gateway_server_FULL", "gateway_server_backlog")  # fmt: skip
PEER = "thingsboard_live"


def one_rep(
    rep: int,
    broker: Broker,
    stream: dict,
    work: Path,
    sink_url: str,
    server: ServerProcess | None,
    peer: bool,
    lanes: list[int] | None = None,
) -> dict[str, dict[str, float]]:
    """Every phase once, each on its own device names (the sink, the server and the peer
    count distinct event ids): the peer first, then this gateway's paths."""
    out: dict[str, dict[str, float]] = {}
    here = work / f"rep{rep}"
    if peer:
        out[PEER] = peer_thingsboard.run(
            broker, renamed(stream, f"t{rep}"), here / "peer", publish, proc_cpu_s, peak_rss_mb,
            forget_session,
        )  # fmt: skip
    for sync in ("FULL", "NORMAL"):
        count = sink_delivered(sink_url)
        before = count()[0]
        out[f"gateway_sink_{sync}"] = through_gateway(
            broker, renamed(stream, f"{sync[0].lower()}{rep}"), here / f"gw-{sync}",
            sink_url, "bench", sync, lambda c=count, b=before: (c()[0] - b, c()[1]),
        )  # fmt: skip
    sink = SinkProcess()
    try:
        out["gateway_sink_backlog"] = drain_backlog(
            broker, renamed(stream, f"b{rep}"), here / "gw-sink-backlog", sink
        )
    finally:
        sink.stop()
    if server is None:
        return out
    # Each lane count in turn, the order reversed every other rep (the machine's load drifts).
    counts: list[int | None] = list(lanes) if lanes else [None]
    for n in counts if rep % 2 == 0 else counts[::-1]:
        suffix = "" if n is None else f"_lanes{n}"
        settings = {} if n is None else {"forward_lanes": n}
        name = f"s{rep}" if n is None else f"s{rep}l{n}"
        out[f"gateway_server_FULL{suffix}"] = through_gateway(
            broker, renamed(stream, name), here / f"gw-server{suffix}", server.url,
            server.token_for("bench"), "FULL",
            store_delivered(here / f"gw-server{suffix}" / "gateway.db"), settings,
        )  # fmt: skip
        # On a shared database (--server-db) the live server's tokens serve; a SQLite
        # backlog server has a fresh file of its own and makes its own tokens.
        shared = {} if server.db_url is None else dict(
            gateway_token=server.gateway_token, operator_token=server.operator_token,
            site_tokens=dict(server.site_tokens),
        )  # fmt: skip
        backlog = ServerProcess(
            here / f"server-backlog{suffix}", db_url=server.db_url, workers=server.workers,
            **shared,
        )  # fmt: skip
        try:
            out[f"gateway_server_backlog{suffix}"] = drain_backlog(
                broker, renamed(stream, f"d{name[1:]}"), here / f"gw-backlog{suffix}", backlog,
                settings,
            )  # fmt: skip
        finally:
            backlog.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions of every phase; medians reported"
    )
    parser.add_argument("--no-server", action="store_true", help="skip the real-server phases")
    parser.add_argument(
        "--no-peer", action="store_true", help="skip the ThingsBoard IoT Gateway phase"
    )
    parser.add_argument(
        "--lanes",
        type=lambda v: [int(n) for n in v.split(",")],
        help="forward_lanes values for the real-server phases, e.g. 1,2 (default: the"
        " gateway's default only)",
    )
    parser.add_argument(
        "--server-db",
        help="database URL for the real server (an empty PostgreSQL database of yours);"
        " default a SQLite file",
    )
    parser.add_argument("--server-workers", type=int, help="the real server's worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    parser.add_argument(
        "--store-only", action="store_true", help="only the store's FULL/NORMAL cost"
    )
    args = parser.parse_args()
    if shutil.which("mosquitto_pub") is None:
        sys.exit("mosquitto_pub is needed (apt-get install mosquitto-clients)")
    per_device = args.events // args.devices
    stream = make_stream(args.devices, per_device)
    total = per_device * args.devices
    work = Path(tempfile.mkdtemp(prefix="nps-gw-bench-"))
    if args.keep:
        print(f"keeping {work} (logs of every process)")
    broker = start_mosquitto(work / "broker")
    results: dict[str, Any] = {
        "events": total, "devices": args.devices, "reps": args.reps, "machine": machine(),
        "server": {"db": (args.server_db or "sqlite").split(":")[0],
                   "workers": args.server_workers},
    }  # fmt: skip
    try:
        results["edge_validation"] = edge_validation_cost(stream)
        results["store_events_per_s"] = store_cost(stream, work)
        if args.store_only:
            print(json.dumps(results, indent=1, default=lambda x: round(x)))
            return
        if not args.no_peer:
            peer_thingsboard.install()  # before any clock starts
        bare = [bare_subscriber(broker, stream, work)]
        sink_port = free_port()
        sink = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway_sink", "--port", str(sink_port)]
        )
        server = (
            None
            if args.no_server
            else ServerProcess(work / "server", db_url=args.server_db, workers=args.server_workers)
        )
        try:
            wait_for_port("127.0.0.1", sink_port, proc=sink)
            if server is not None:
                server.start()
            reps = [
                one_rep(
                    rep,
                    broker,
                    stream,
                    work,
                    f"http://127.0.0.1:{sink_port}",
                    server,
                    not args.no_peer,
                    args.lanes,
                )  # fmt: skip
                for rep in range(args.reps)
            ]
        finally:
            sink.terminate()
            sink.wait()
            if server is not None:
                server.stop()
        results["runs"] = reps
        bare.append(bare_subscriber(broker, stream, work))
        results["bare_subscriber"] = max(bare, key=lambda b: b["rate"])
        results["bare_subscriber_runs"] = [round(b["rate"]) for b in bare]
        results["machine_after"] = machine()
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results)


def machine() -> dict[str, Any]:
    """The CPU model, its count and the load average, for the record."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {"cpu": model, "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}


def median_of(runs: list[dict[str, Any]], key: str, field: str) -> float:
    return statistics.median(run[key][field] for run in runs)


def report(r: dict[str, Any]) -> None:
    bare = r["bare_subscriber"]["rate"]
    runs: list[dict[str, Any]] = r["runs"]
    print(json.dumps(r, indent=1, default=lambda x: round(x, 3)))
    print()
    m, after = r["machine"], r["machine_after"]
    print(
        f"machine: {m['cpu']} x {m['cpus']}; load average {m['loadavg'][0]:.1f} at the start,"
        f" {after['loadavg'][0]:.1f} at the end"
    )
    print(
        f"events: {r['events']} from {r['devices']} devices, QoS 1, shipped mosquitto.conf;"
        f" {len(runs)} reps, medians (each rep's values in brackets)"
    )
    print(f"bare paho subscriber: {bare:,.0f} events/s (runs: {r['bare_subscriber_runs']})")

    def each(key: str, field: str, fmt: str) -> str:
        return "[" + ", ".join(format(run[key][field], fmt) for run in runs) + "]"

    has_peer = PEER in runs[0]
    if has_peer:
        print(
            f"peer, ThingsBoard IoT Gateway {peer_thingsboard.VERSION} live:"
            f" {median_of(runs, PEER, 'rate'):,.0f} events/s {each(PEER, 'rate', ',.0f')};"
            f" {median_of(runs, PEER, 'cpu_ms'):.3f} ms CPU/event {each(PEER, 'cpu_ms', '.3f')},"
            f" {median_of(runs, PEER, 'cpu_share'):.0%} of a core,"
            f" peak {median_of(runs, PEER, 'peak_mb'):.0f} MB;"
            f" missing {each(PEER, 'missing', 'd')}, duplicated {each(PEER, 'duplicates', 'd')}"
        )
        # The publishers set a ceiling: a gateway that cost nothing would take the bare
        # subscriber's rate, so no rate ratio above this one can be shown on this stream.
        print(
            f"ceiling: the bare subscriber took {bare / median_of(runs, PEER, 'rate'):.2f} x the"
            " peer's rate from the same publishers; no gateway can show a higher rate ratio"
        )
    phases = [k for k in PHASES if k in runs[0]]
    phases += sorted(k for k in runs[0] if k not in PHASES and k != PEER)
    for key in phases:
        versus = ""
        if has_peer:
            rate_x = [run[key]["rate"] / run[PEER]["rate"] for run in runs]
            # A drain shorter than a clock tick (a small --events) counts no CPU at all.
            cpu_x = [run[PEER]["cpu_ms"] / (run[key]["cpu_ms"] or 1e-9) for run in runs]
            versus = (
                f" {statistics.median(rate_x):.1f} x the peer's rate"
                f" [{', '.join(f'{x:.1f}' for x in rate_x)}],"
                f" {statistics.median(cpu_x):.1f} x less CPU per event"
                f" [{', '.join(f'{x:.1f}' for x in cpu_x)}] (goal {GOAL_VS_PEER:.0f} x both);"
            )
        print(
            f"{key}: {median_of(runs, key, 'rate'):,.0f} events/s {each(key, 'rate', ',.0f')}"
            f" = {median_of(runs, key, 'rate') / bare:.2f} x bare,{versus}"
            f" {median_of(runs, key, 'cpu_ms'):.3f} ms CPU/event {each(key, 'cpu_ms', '.3f')},"
            f" {median_of(runs, key, 'cpu_share'):.0%} of a core,"
            f" peak {median_of(runs, key, 'peak_mb'):.0f} MB"
        )
    for key in phases:
        one = key.rsplit("_lanes", 1)[0] + "_lanes1"
        if "_lanes" in key and key != one and one in runs[0]:
            rate_x = [run[key]["rate"] / run[one]["rate"] for run in runs]
            cpu_x = [run[key]["cpu_ms"] / (run[one]["cpu_ms"] or 1e-9) for run in runs]
            print(
                f"{key} against one lane: {statistics.median(rate_x):.2f} x the rate"
                f" [{', '.join(f'{x:.2f}' for x in rate_x)}],"
                f" {statistics.median(cpu_x):.2f} x the gateway CPU per event"
                f" [{', '.join(f'{x:.2f}' for x in cpu_x)}]"
            )
    full, normal = (median_of(runs, f"gateway_sink_{k}", "rate") for k in ("FULL", "NORMAL"))
    full_cpu, normal_cpu = (
        median_of(runs, f"gateway_sink_{k}", "cpu_ms") for k in ("FULL", "NORMAL")
    )
    print(
        f"synchronous=FULL vs NORMAL: {full / normal:.2f} x the rate,"
        f" {full_cpu / normal_cpu:.2f} x the CPU per event"
    )
    for batch in ("batch_1", "batch_10", "batch_100", "batch_1000"):
        full_s, normal_s = (r["store_events_per_s"][k][batch] for k in ("FULL", "NORMAL"))
        print(
            f"store commit, {batch.replace('_', ' of ')}: FULL {full_s:,.0f}/s,"
            f" NORMAL {normal_s:,.0f}/s (FULL = {full_s / normal_s:.2f} x NORMAL)"
        )
    v = r["edge_validation"]
    print(
        f"edge validation: decode {v['decode_us']:.1f} us/event,"
        f" full admit() {v['admit_us']:.1f} us/event"
    )


if __name__ == "__main__":
    main()
