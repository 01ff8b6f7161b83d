"""A simulated device's firmware process: compiling the firmware, running and driving it.

`nps-edge sim` and the tests both use DeviceProcess; input and report lines are
described in docs/firmware.md (Simulator).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from firmware.tools import romfs
from firmware.tools.bundle import (
    DEFAULT_ARCH,
    DEVICE_DIR,
    BuildError,
    mpy_cross_binary,
    mpy_cross_flags,
)

HEAPSIZE = "64k"
REBOOT_EXIT = 3


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


# Exactly the ESP32 build's flags (firmware/tools/bundle.py): the simulator runs the
# bytecode that ships; it is plain bytecode, so the x64 unix port loads it.
MPY_FLAGS = mpy_cross_flags(DEFAULT_ARCH, source_lines=False)


def compile_firmware(dest: Path, source: Path = DEVICE_DIR) -> Path:
    """mpy-cross every device module into dest (as the ESP32 build does); returns dest.

    Compiled code is what the device runs: compiling .py on a 64 KB heap
    would not fit beside the application.
    """
    try:
        mpy_cross = mpy_cross_binary()
    except BuildError as err:
        raise SimError(str(err)) from None

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
    romfs.build_image(dest)  # the code runs from ROM, as on a device (docs/firmware.md)
    return dest


def cached_firmware(source: Path = DEVICE_DIR) -> Path:
    """The compiled firmware, reused across runs while the sources stay the same."""
    digest = hashlib.sha256(" ".join([*MPY_FLAGS, romfs.IMAGE]).encode())
    for src in sorted(source.rglob("*.py")):
        digest.update(str(src.relative_to(source)).encode() + b"\0" + src.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "nps-edge" / "firmware" / digest.hexdigest()[:16]
    if (root / romfs.IMAGE).exists():
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


@functools.cache
def _free_heap(micropython: str, heapsize: str) -> int:
    return romfs.free_after_start(micropython, heapsize)


def firmware_command(micropython: str, code: Path, heapsize: str) -> list[str]:
    """Code from code's ROM image when it has one (the heap keeps `heapsize` for the state)."""
    image = code / romfs.IMAGE
    if image.exists():
        return romfs.rom_command(micropython, image, heapsize, _free_heap(micropython, heapsize))
    return [micropython, "-X", f"heapsize={heapsize}", "-m", "main"]


def code_path(code: Path) -> str:
    """MICROPYPATH: only the port's frozen modules when code runs from its ROM image."""
    return ".frozen" if (code / romfs.IMAGE).exists() else f"{code}:.frozen"


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
        micropython = micropython or tool("micropython")
        with open(folder / "device.log", "ab") as log:
            self.proc = subprocess.Popen(
                firmware_command(micropython, code, heapsize),
                cwd=folder,
                # The factory code is in the ROM image (no copy on flash: an update writes
                # fw/<version> there); .frozen: the port's own frozen modules (ssl, ...).
                env=dict(os.environ, MICROPYPATH=code_path(code)),
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
