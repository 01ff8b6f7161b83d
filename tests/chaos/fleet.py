"""The chaos run's devices: the real firmware under the unix port, fed prompts in real time.

Each device answers a prompt every `pace_s` to 2 x `pace_s`; its prompts come from the
simulator's own plan (firmware/sim/plans.random_plan, one answered prompt per chunk) on its
scripted clock, so the same seed asks the same questions. Every line a device prints goes
to `<id>.out` with the seconds since the run started: its `saved` lines (the event is on
flash and the screen says thanks) and `acked` lines (the broker's PUBACK) are the truth the
verdict holds the server to.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import IO, Any

from firmware.sim.device import DeviceProcess
from firmware.sim.plans import random_plan

START_MS = int((time.time() - 20 * 86400) * 1000)  # answers dated from 20 days ago on


class FleetDevice:
    """One device: its flash folder, its process (restarted after a kill) and its prompts."""

    def __init__(
        self,
        *,
        device: str,
        site: str,
        password: str,
        broker: tuple[str, int],
        folder: Path,
        out: Path,
        code: Path,
        micropython: str,
        seed: int,
        t0: float,
    ) -> None:
        self.device = device
        self.folder = folder
        self.code = code
        self.micropython = micropython
        self.t0 = t0
        self.rng = random.Random(f"{seed}:{device}")
        self.broker = broker
        self.site = site
        self.t_ms = START_MS
        plan = random_plan(device, site, broker, 1, self.rng, self.t_ms)
        self.config: dict[str, Any] = plan.config
        self.config["broker"] |= {"username": device, "password": password}
        self.pending = plan.parts[0][:-1]  # the first chunk; its "drain" is the run's end
        self.lock = threading.Lock()
        self.proc: DeviceProcess | None = None
        self.kills = 0
        self.exits: list[int] = []  # exit codes of runs that ended without our SIGKILL
        out.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[str] = out.open("a", buffering=1)
        self._out_lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def _line(self, line: str) -> None:
        with self._out_lock:
            self._out.write(f"{time.monotonic() - self.t0:.3f} {line}\n")

    def start(self) -> None:
        """Boot from flash (outbox, counters) with the clock where the last prompt left it."""
        with self.lock:
            cfg = dict(self.config, sim=dict(self.config["sim"], start_ms=self.t_ms))
            (self.folder / "config.json").write_text(json.dumps(cfg))
            self.proc = DeviceProcess(
                self.folder, self.code, self.micropython, on_line=self._line, keep_lines=False
            )

    def kill(self) -> None:
        """SIGKILL: a power cut as far as the firmware can tell."""
        with self.lock:
            assert self.proc is not None
            self._note_exit()
            self.proc.kill()
            self.kills += 1
            self._line("# chaos: SIGKILL")

    def _note_exit(self) -> None:
        if self.proc is not None and self.proc.proc.poll() is not None:
            self.exits.append(self.proc.proc.returncode)  # ended on its own: a crash

    def feed(self) -> None:
        """The next chunk of prompts (to the dead process if it is down: those never happen)."""
        with self.lock:
            lines = self.pending
            self.t_ms = max(int(ln.split()[1]) for ln in lines if ln.startswith("at "))
            plan = random_plan(self.device, self.site, self.broker, 1, self.rng, self.t_ms)
            self.pending = plan.parts[0][:-1]
            if self.proc is not None:
                self.proc.send(*lines)

    def drain(self) -> None:
        """End of input: the device sends all it holds and exits."""
        with self.lock:
            assert self.proc is not None
            self._note_exit()
            self.proc.close_input()

    def finished(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is not None

    def close(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.proc.poll() is None:
                self.proc.kill()
        with self._out_lock:
            self._out.close()


class Feeder(threading.Thread):
    """Feeds every device its next prompt when due, until stopped (one thread for all)."""

    def __init__(self, devices: list[FleetDevice], pace_s: float, seed: int) -> None:
        super().__init__(name="chaos-feeder", daemon=True)
        self.devices = devices
        self.pace_s = pace_s
        self.rng = random.Random(f"pace:{seed}")
        self.stopped = threading.Event()

    def run(self) -> None:
        due = [time.monotonic() + self.rng.uniform(0, self.pace_s) for _ in self.devices]
        while not self.stopped.is_set():
            i = min(range(len(due)), key=due.__getitem__)
            # The pace itself, not a wait for a condition: prompts come when people do.
            if self.stopped.wait(max(0.0, due[i] - time.monotonic())):
                return
            self.devices[i].feed()
            due[i] = time.monotonic() + self.pace_s * self.rng.uniform(1.0, 2.0)

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)
