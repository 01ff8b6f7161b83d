"""`nps-edge sim`: the unchanged device firmware under the MicroPython unix port, one per device.

Each simulated device gets a flash folder (config.json, outbox, counters)
and a script of input lines on stdin (docs/firmware.md). The summary counts
only what the devices saved in this run and reported as acknowledged by the
broker (their `saved` and `acked` lines), never what the script intended, nor
an earlier run's events a device sends again because no gateway confirmed them.
"""

from __future__ import annotations

import json
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from contract.address import AddressError, parse_host_port
from contract.protocol import TOPIC_ROOT
from firmware.sim.device import (
    HEAPSIZE,
    REBOOT_EXIT,
    DeviceProcess,
    SimError,
    cached_firmware,
    tool,
)
from firmware.sim.plans import PAUSE, Plan, device_id, random_plan, scenario_plan


@dataclass
class Tally:
    """What one device reported acknowledged, deduplicated by event id."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved: int = 0
    made: set[int] = field(default_factory=set)  # seqs saved by this run (not an earlier one's)
    log: list[str] = field(default_factory=list)
    last_line: float = field(default_factory=time.monotonic)

    def feed(self, line: str) -> None:
        self.last_line = time.monotonic()
        if line.startswith("acked "):
            _, _, _, payload = line.split(" ", 3)
            try:
                event = json.loads(payload)
                self.events[event["id"]] = event
            except (ValueError, KeyError, TypeError):
                self.log.append(f"unreadable acked line: {line[:200]}")
        elif line.startswith("saved "):
            self.saved += 1
            self.made.add(int(line.split()[2]))


def summarize(tallies: list[Tally]) -> dict[str, Any]:
    scores = {str(n): 0 for n in range(11)}
    events = answered = shown = 0
    for tally in tallies:
        for event in tally.events.values():
            if event.get("seq") not in tally.made:
                continue  # an earlier run's, sent again: the gateway never confirmed it
            events += 1
            if event.get("type") != "feedback":
                continue
            shown += 1
            if event.get("outcome") == "answered":
                answered += 1
                scores[str(event["score"])] += 1
    return {
        "devices": len(tallies),
        "events": events,
        "answered": answered,
        "scores": scores,
        "shown": shown,
    }


# -- running -----------------------------------------------------------------


def run_device(
    plan: Plan,
    folder: Path,
    micropython: str,
    code: Path,
    tally: Tally,
    stall_s: float = 60.0,
    heapsize: str = HEAPSIZE,
    pace_s: float = 0.0,
) -> None:
    """Run one device through all parts of its plan, restarting it after each reboot.

    A device that reports nothing for stall_s (its broker never acknowledges) is stopped.
    With pace_s, a paced plan's prompts are fed one at a time, pace_s apart on average.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for index, lines in enumerate(plan.parts):
        cfg = dict(plan.config)
        if plan.restart_sim:
            sim = dict(plan.restart_sim[index])
            cfg["fw"] = sim.pop("fw", cfg["fw"])
            cfg["sim"] = dict(cfg["sim"], **sim)
        (folder / "config.json").write_text(json.dumps(cfg, indent=1))
        proc = DeviceProcess(
            folder, code, micropython, heapsize=heapsize, on_line=tally.feed, keep_lines=False
        )
        if pace_s:
            feed_paced(proc, lines, pace_s, tally, random.Random(plan.device))
        else:
            proc.send(*lines)
        proc.close_input()
        tally.last_line = time.monotonic()
        while proc.proc.poll() is None:
            if time.monotonic() - tally.last_line > stall_s:
                proc.kill()
                host, port = plan.config["broker"]["host"], plan.config["broker"]["port"]
                raise SimError(
                    f"{plan.device}: nothing acknowledged for {stall_s:.0f}s; "
                    f"is the broker at {host}:{port} up?"
                )
            time.sleep(0.2)
        code_ = proc.wait()
        last = index == len(plan.parts) - 1
        if code_ == REBOOT_EXIT and not last:
            continue
        if code_ != 0:
            tail = (folder / "device.log").read_text(errors="replace")[-800:]
            raise SimError(f"{plan.device} exited with code {code_}:\n{tail}")


def feed_paced(
    proc: DeviceProcess, lines: list[str], pace_s: float, tally: Tally, rng: random.Random
) -> None:
    """Send a paced plan prompt by prompt in real time, 1 to 2 x pace_s apart.

    Keep pace_s above the device's cool-down (min_answer_interval_s + thanks_s,
    13 s by default), or the next prompt's answer is refused as spam.
    """
    group: list[str] = []
    for line in [*lines, PAUSE]:
        if line != PAUSE:
            group.append(line)
            continue
        proc.send(*group)
        group = []
        tally.last_line = deadline = time.monotonic() + pace_s * rng.uniform(1.0, 2.0)
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                return
            time.sleep(0.2)


def run_plans(
    plans: list[Plan],
    state: Path,
    progress: bool = True,
    stall_s: float = 60.0,
    heapsize: str = HEAPSIZE,
    pace_s: float = 0.0,
) -> list[Tally]:
    micropython = tool("micropython")
    code = cached_firmware()
    tallies = [Tally() for _ in plans]
    errors: list[str] = []

    def work(plan: Plan, tally: Tally) -> None:
        try:
            run_device(
                plan, state / plan.device, micropython, code, tally, stall_s, heapsize, pace_s
            )
        except SimError as err:
            errors.append(str(err))
        if progress:
            typer.echo(
                f"sim: {plan.device} done, {len(tally.events)} events acknowledged", err=True
            )

    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(plans, tallies, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tally in tallies:
        for line in tally.log:
            typer.echo(f"sim: {line}", err=True)
    if errors:
        raise SimError("\n".join(errors))
    return tallies


def check_broker(address: tuple[str, int]) -> None:
    """Fail early and clearly when nothing listens at the broker address."""
    try:
        with socket.create_connection(address, timeout=5):
            pass
    except OSError as err:
        raise SimError(f"cannot reach the broker at {address[0]}:{address[1]}: {err}") from None


@contextmanager
def state_dir(state: Path | None) -> Iterator[Path]:
    """The folder of per-device flash folders: STATE, kept; else a temporary one, removed."""
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        yield state
        return
    # Flash writes end in fsync under the unix port; a RAM disk keeps 20 simulated
    # devices from queueing behind the host's disk (SIGKILL safety is the same).
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(
        prefix="nps-sim-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    ) as tmp:
        yield Path(tmp)


def sim(
    broker: Annotated[str, typer.Option(help="MQTT broker HOST:PORT.", envvar="NPS_EDGE_BROKER")],
    devices: Annotated[
        int, typer.Option(min=1, help="How many devices.", envvar="NPS_EDGE_DEVICES")
    ] = 1,
    responses: Annotated[
        int, typer.Option(min=1, help="Answers per device.", envvar="NPS_EDGE_RESPONSES")
    ] = 10,
    seed: Annotated[
        int, typer.Option(help="Seed for ids, scores and timing.", envvar="NPS_EDGE_SEED")
    ] = 1,
    site: Annotated[
        str, typer.Option(help="Site of every device.", envvar="NPS_EDGE_SITE")
    ] = "sim-site",
    state: Annotated[
        Path | None,
        typer.Option(
            help="Folder of per-device flash folders (default: a temporary one).",
            envvar="NPS_EDGE_STATE",
        ),
    ] = None,
    topic_root: Annotated[
        str, typer.Option(help="MQTT topic root.", envvar="NPS_EDGE_TOPIC_ROOT")
    ] = TOPIC_ROOT,
    fw: Annotated[
        str | None,
        typer.Option(help="Firmware version the devices report.", envvar="NPS_EDGE_FW"),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(
            help="Folder of scenario files, one device per *.json (docs/firmware.md).",
            envvar="NPS_EDGE_SCENARIO",
        ),
    ] = None,
    stall_timeout: Annotated[
        float,
        typer.Option(
            min=1,
            help="Stop a device that reports nothing for this many seconds.",
            envvar="NPS_EDGE_STALL_TIMEOUT",
        ),
    ] = 60.0,
    heapsize: Annotated[
        str,
        typer.Option(
            help="MicroPython heap per device: 64k is the tight test size, an ESP32"
            " without PSRAM gives MicroPython about 90-110k.",
            envvar="NPS_EDGE_HEAPSIZE",
        ),
    ] = HEAPSIZE,
    pace: Annotated[
        float,
        typer.Option(
            min=0,
            help="Real time instead of fast-forward: one prompt per device every PACE to"
            " 2 x PACE seconds; keep it above the device's 13 s cool-down (0: as fast as"
            " possible, on a scripted clock).",
            envvar="NPS_EDGE_PACE",
        ),
    ] = 0.0,
) -> None:
    """Run the real firmware under the MicroPython unix port, one per device."""
    try:
        address = parse_host_port(broker)
    except AddressError as err:
        raise typer.BadParameter(str(err), param_hint="'--broker'") from None
    started = time.monotonic()
    try:
        if scenario is not None and pace:
            raise SimError("--pace is for generated devices; a scenario has its own times")
        if scenario is not None:
            files = sorted(scenario.glob("*.json"))
            if not files:
                raise SimError(f"no *.json scenario files in {scenario}")
            plans = [scenario_plan(f, address, topic_root=topic_root, fw=fw) for f in files]
        else:
            now_ms = int(time.time() * 1000)
            plans = [
                random_plan(
                    device_id(seed, i),
                    site,
                    address,
                    responses,
                    random.Random(f"{seed}:{i}"),
                    now_ms,
                    topic_root=topic_root,
                    fw=fw,
                    paced=pace > 0,
                )
                for i in range(devices)
            ]
        check_broker(address)
        with state_dir(state) as folder:
            tallies = run_plans(
                plans, folder, stall_s=stall_timeout, heapsize=heapsize, pace_s=pace
            )
    except SimError as err:
        typer.echo(f"nps-edge sim: {err}", err=True)
        raise typer.Exit(1) from None
    summary = summarize(tallies)
    typer.echo(
        f"sim: {summary['events']} events from {len(plans)} devices in "
        f"{time.monotonic() - started:.1f}s",
        err=True,
    )
    typer.echo(json.dumps(summary))
