"""Heap over three weeks of a device offline the middle week: `python -m bench.firmware_memory`.

The real firmware under the MicroPython unix port on a scripted clock (`at`
lines: three weeks take seconds), answers every 20 minutes for 12 hours a
day, telemetry every 4 hours, and the broker stopped for the whole middle
week (the backlog then drains at once). Reports, from the device's own
telemetry, the lowest free heap (heap_min) and so the peak heap in use, for
the code run from its ROM image in a 64 KB heap, and, as the same-run
reference, the code loaded from .mpy files into the heap (96 KB: it does not
fit in 64 KB). Draws heap_free and heap_min over the scripted days, both
builds, into docs/img/firmware_memory_heap.png (bench/plots.py; `--no-plot`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import plots
from firmware.sim.device import DeviceProcess, compile_firmware, firmware_command, tool
from firmware.sim.plans import answer_lines, device_config
from firmware.tools import romfs
from nps_edge.broker import free_port, start_mosquitto

T0 = 1793000000000
HOUR = 3600 * 1000
DAY = 24 * HOUR


def day_lines(day: int, rng: random.Random) -> list[str]:
    """One day: telemetry every 4 h, an answer every 20 minutes from 8:00 to 20:00."""
    lines: list[str] = []
    for h in range(24):
        t = T0 + day * DAY + h * HOUR
        if h % 4 == 0:
            lines += [f"at {t}", "telemetry"]
        if 8 <= h < 20:
            for m in (0, 20, 40):
                at = t + m * 60000
                lines += [f"at {at}", f"trigger cycle_complete tx-{day}-{h}-{m}"]
                score = rng.randint(0, 10)
                lines += answer_lines(score, rng.choice([None, 0, 2]), at + 3000)
    return lines


# The fixed buffers allocated when outbox and mqtt load: 3 records, MQTT transmit and receive.
BUFFER_BYTES = 3 * 1024 + 1280 + 1024


def code_heap(code: Path, heapsize: str) -> int:
    """Heap the resident code's objects take (what main.py keeps imported), buffers excluded."""
    snippet = (
        "import gc\ngc.collect()\n_a = gc.mem_alloc()\n"
        "import mqtt, outbox, boards.unix_sim, app\n"
        "gc.collect()\nprint(gc.mem_alloc() - _a)\n"
    )
    cmd = firmware_command(tool("micropython"), code, heapsize)
    if cmd[-2] == "-m":  # code loaded from .mpy: run the snippet instead of main
        cmd[-2:] = ["-c", snippet]
    else:
        cmd[-1] = cmd[-1].replace("import main", snippet)
    env = dict(os.environ, MICROPYPATH=f"{code}:.frozen")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=30)
    return int(done.stdout.split()[-1]) - BUFFER_BYTES


def run(code: Path, heapsize: str, work: Path, seed: int) -> dict[str, Any]:
    port = free_port()
    broker = start_mosquitto(work / "broker", port=port)
    folder = work / "device"
    folder.mkdir()
    cfg = device_config("nps-bench1", "bench", ("127.0.0.1", port), sim={"start_ms": T0})
    cfg["telemetry_interval_s"] = 0  # the script sends it every 4 h of virtual time
    (folder / "config.json").write_text(json.dumps(cfg))
    rng = random.Random(seed)
    started = time.monotonic()
    dev = DeviceProcess(folder, code, tool("micropython"), heapsize=heapsize)
    saved = 0
    try:
        for week in range(3):
            if week == 1:
                broker.stop()  # a week offline: everything waits on flash
            if week == 2:
                broker = start_mosquitto(work / "broker", port=port)
            for day in range(week * 7, week * 7 + 7):
                lines = day_lines(day, rng)
                dev.send(*lines)
                saved += sum(1 for ln in lines if ln == "telemetry" or ln == "press")
                dev.wait_for("saved t ", count=(day + 1) * 6 + 1, timeout=60)
        dev.close_input()
        code_ = dev.wait(120)
    finally:
        broker.stop()
    wall = time.monotonic() - started
    log = (folder / "device.log").read_text()
    figures = []
    series = []  # (day of scripted time, heap_free, heap_min), for the plot
    for line in dev.lines:
        if line.startswith("acked t "):
            event = json.loads(line.split(" ", 3)[3])
            figures.append((event["heap_free"], event["heap_min"]))
            at_ms = event["ts"] * 1000 if event["ts"] is not None else T0 + event["up_ms"]
            series.append((round((at_ms - T0) / DAY, 3), event["heap_free"], event["heap_min"]))
    acked = {ln.split()[2] for ln in dev.lines if ln.startswith("acked ")}
    return {
        "exit": code_,
        "memory_errors": log.count("MemoryError"),
        "events_acked": len(acked),
        "telemetry": len(figures),
        "heap_free_min": min(f for f, _ in figures),
        "heap_free_max": max(f for f, _ in figures),
        "heap_min": min(low for _, low in figures),
        "boot_free": int(log.split("heap free after boot: ")[1].split()[0]),
        "wall_s": round(wall, 1),
        "series": series,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-plot", action="store_true", help="do not write docs/img/firmware_memory_heap.png"
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="nps-bench-mem-"))
    try:
        rom = compile_firmware(root / "rom")
        mpy = root / "mpy"
        shutil.copytree(rom, mpy)
        (mpy / romfs.IMAGE).unlink()  # the same code, loaded from .mpy into the heap
        results = {}
        for name, code, heap in (("romfs, 64k", rom, "64k"), ("mpy in heap, 96k", mpy, "96k")):
            work = root / name.split(",")[0].replace(" ", "-")
            work.mkdir()
            (work / "broker").mkdir()
            results[name] = r = run(code, heap, work, args.seed)
            budget = romfs.free_after_start(tool("micropython"), heap)
            r["peak_in_use"] = budget - r["heap_min"]
            r["code_objects"] = code_heap(code, heap)
            r["state_after_boot"] = budget - r["boot_free"] - r["code_objects"]
            r["state_peak"] = r["peak_in_use"] - r["code_objects"]
            print(
                f"{name:18} heap_min {r['heap_min']:6d} B  peak in use {r['peak_in_use']:6d} B"
                f"  free after boot {r['boot_free']:6d} B  heap_free {r['heap_free_min']}-"
                f"{r['heap_free_max']} B  events {r['events_acked']}  MemoryError "
                f"{r['memory_errors']}  {r['wall_s']} s\n{'':18} code objects in heap "
                f"{r['code_objects']} B  state after boot {r['state_after_boot']} B  state at "
                f"peak {r['state_peak']} B"
            )
        rom_use = results["romfs, 64k"]["peak_in_use"]
        mpy_use = results["mpy in heap, 96k"]["peak_in_use"]
        print(f"heap the code takes when loaded from .mpy: {mpy_use - rom_use} B")
        if not args.no_plot:
            print(f"wrote {plots.firmware_memory(results)}")
        for r in results.values():
            del r["series"]  # plotted; the printed result keeps the figures
        print(json.dumps(results))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
