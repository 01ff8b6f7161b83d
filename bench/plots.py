"""The benchmarks' figures as PNGs in docs/img/ (matplotlib, from their result JSON).

    .venv/bin/python -m bench.plots fleet_load docs/img/fleet_load.json
    .venv/bin/python -m bench.plots gateway_throughput RESULT.json   # its printed JSON, saved

bench.fleet_load and bench.firmware_memory call these at the end of a run;
the gateway comparison is drawn from bench/gateway_throughput.py's printed
result (its JSON object, the table after it is ignored), without touching
that benchmark. Small figures (about 50 KB each) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
DPI = 80


def _save(fig: Any, name: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _stamp(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    return f"{m.get('nproc', '?')} CPUs, {m.get('date', '')}"


def fleet_load(result: dict[str, Any], out: Path = IMG) -> list[Path]:
    """Throughput against offered load, and latency percentiles per offered rate."""
    steps = result["steps"]
    offered = [s["offered"] for s in steps]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    top = 1.15 * max(offered + [result["saturation"]["rate"]])
    ax.plot([0, top], [0, top], color="0.8", linestyle=":", label="delivered = offered")
    ax.plot(offered, [s["delivered_rate"] for s in steps], "o-", label="delivered, end to end")
    ax.axhline(
        result["saturation"]["rate"],
        color="C1",
        linestyle="--",
        label=f"saturation, end to end: {result['saturation']['rate']:,}/s",
    )
    bare = result["bare_subscriber"]["rate"]
    label = f"bare subscriber, same run: {bare:,.0f}/s"
    if bare < top:
        ax.axhline(bare, color="C2", linestyle="-.", label=label)
    else:  # far above: named, not drawn, so the knee stays readable
        ax.plot([], [], " ", label=label + " (off the scale)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("offered events/s (all devices)")
    ax.set_ylabel("events/s confirmed by the server")
    ax.set_title(f"Fleet load, {result['devices']:,} devices ({_stamp(result)})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths = [_save(fig, "fleet_load_throughput.png", out)]

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for q, style in (("p50_s", "o-"), ("p95_s", "s-"), ("p99_s", "^-")):
        pts = [(s["offered"], s["latency"][q]) for s in steps if q in s["latency"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=q[:3])
    ax.axhline(2.0, color="red", linestyle=":", label="goal: p99 < 2 s at 1,000/s")
    ax.set_xlabel("offered events/s (all devices)")
    ax.set_ylabel("publish to queryable (s, log scale)")
    ax.set_yscale("log")
    ax.set_title(f"Latency through broker, gateway, server ({_stamp(result)})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, "fleet_load_latency.png", out))
    return paths


def firmware_memory(results: dict[str, dict[str, Any]], out: Path = IMG) -> Path:
    """heap_free and heap_min from the device's telemetry over the three weeks, per build."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, (name, r) in enumerate(results.items()):
        days = [p[0] for p in r["series"]]
        ax.plot(days, [p[1] / 1024 for p in r["series"]], color=f"C{k}", label=f"{name}: heap_free")
        ax.plot(
            days,
            [p[2] / 1024 for p in r["series"]],
            color=f"C{k}",
            linestyle=":",
            label=f"{name}: heap_min",
        )
    ax.axvspan(7, 14, color="0.9", label="broker down (week 2)")
    ax.set_xlabel("day of scripted time")
    ax.set_ylabel("KB")
    ax.set_ylim(bottom=0)
    ax.set_title("Firmware heap over three weeks (device telemetry)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, "firmware_memory_heap.png", out)


GATEWAY_PATHS = (
    ("bare_subscriber", "bare paho subscriber"),
    ("thingsboard_live", "ThingsBoard gateway (peer)"),
    ("gateway_sink_FULL", "nps-edge gw -> endpoint, live"),
    ("gateway_sink_backlog", "nps-edge gw -> endpoint, backlog"),
    ("gateway_server_FULL", "nps-edge gw -> server, live"),
    ("gateway_server_backlog", "nps-edge gw -> server, backlog"),
)


def read_printed_json(path: Path) -> dict[str, Any]:
    """The JSON object at the start of a benchmark's saved output (a table may follow)."""
    result, _ = json.JSONDecoder().raw_decode(path.read_text().lstrip())
    if not isinstance(result, dict):
        raise ValueError(f"{path}: no JSON object at the start")
    return result


def gateway_paths(result: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(label, events/s, CPU ms per event or None) of each path of bench.gateway_throughput:
    the median over its reps (`runs`), the bare subscriber as the result gives it."""
    runs = result.get("runs") or [result]
    rows = []
    for key, label in GATEWAY_PATHS:
        found = [result[key]] if key == "bare_subscriber" and key in result else []
        found = found or [run[key] for run in runs if key in run]
        if found:
            cpu = [p["cpu_ms"] for p in found if p.get("cpu_ms") is not None]
            rate = statistics.median(p["rate"] for p in found)
            rows.append((label, rate, statistics.median(cpu) if cpu else None))
    return rows


def gateway_throughput(result: dict[str, Any], out: Path = IMG) -> Path:
    """Events/s and CPU per event of each path of bench.gateway_throughput, same run."""
    paths = gateway_paths(result)
    with_cpu = [row for row in paths if row[2] is not None and "subscriber" not in row[0]]
    fig, (rate_ax, cpu_ax) = plt.subplots(2, 1, figsize=(6.4, 4.6))
    for ax, rows, column, unit in (
        (rate_ax, paths, 1, "events/s (median of the reps)"),
        (cpu_ax, with_cpu, 2, "gateway CPU ms per event"),
    ):
        labels = [row[0] for row in rows][::-1]  # first path on top
        ax.barh(
            labels,
            [row[column] for row in rows][::-1],
            color=["0.6" if "ThingsBoard" in label else "C0" for label in labels],
        )
        ax.set_xlabel(unit)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    reps = len(result.get("runs") or [result])
    fig.suptitle(
        f"Gateway vs ThingsBoard IoT Gateway, one run: {reps} reps of "
        f"{result.get('events', 0):,} events",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, "gateway_throughput.png", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", choices=("fleet_load", "gateway_throughput"))
    parser.add_argument("result", type=Path, help="the benchmark's result JSON")
    parser.add_argument("--out", type=Path, default=IMG)
    args = parser.parse_args()
    result = read_printed_json(args.result)
    if args.benchmark == "fleet_load":
        written = fleet_load(result, args.out)
    else:
        written = [gateway_throughput(result, args.out)]
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
