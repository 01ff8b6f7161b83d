"""What the bundle's build flags cost on the device: `python -m bench.fwtools_bundle`.

Builds the firmware twice with the sim board profile, lean (the default,
`-X no-source-lines`) and debug (`--source-lines`), boots each from its .mpy files under
`micropython -X heapsize=96k` (code from .mpy files sits in the heap: romfs.MPY_HEAP) with
an unreachable broker, and reports bundle bytes and the free heap the firmware logs after
boot. The debug build is the reference.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from firmware.tools import bundle
from firmware.tools.romfs import MPY_HEAP

BOOTS = 5
HEAP = re.compile(r"heap free after boot: (\d+)")


def micropython() -> str:
    path = Path(sys.executable).parent / "micropython"
    return str(path) if path.exists() else shutil.which("micropython") or "micropython"


def boot_heap(out: Path, workdir: Path) -> int:
    """Free heap after boot, median of BOOTS fresh boots from the bundle's files."""
    seen = []
    for n in range(BOOTS):
        device = workdir / f"{out.name}-boot-{n}"
        shutil.copytree(out, device)
        (device / "config.json").write_text(
            json.dumps(
                {"device_id": "bench-1", "site": "lab", "broker": {"host": "127.0.0.1", "port": 9}}
            )
        )
        done = subprocess.run(
            [micropython(), "-X", f"heapsize={MPY_HEAP}", "main.py"],
            cwd=device,
            env={**os.environ, "MICROPYPATH": f"{device}:.frozen"},
            input="quit\n",  # stop once booted (closing stdin would wait to drain)
            capture_output=True,
            text=True,
            timeout=60,
        )
        match = HEAP.search(done.stdout + done.stderr)
        if match is None:
            raise SystemExit(f"no heap line from the firmware: {done.stderr[-300:]}")
        seen.append(int(match.group(1)))
    return sorted(seen)[len(seen) // 2]


def measure(source_lines: bool, workdir: Path) -> dict[str, float]:
    out = workdir / ("debug" if source_lines else "lean")
    started = time.perf_counter()
    manifest = bundle.build(
        out, compiler=bundle.MpyCross(), board="unix_sim", source_lines=source_lines
    )
    seconds = time.perf_counter() - started
    code = sum(f.size for f in manifest.files if f.path.endswith(".mpy"))
    return {"mpy_bytes": code, "build_s": seconds, "heap_free": boot_heap(out, workdir)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        debug = measure(True, Path(tmp))
        lean = measure(False, Path(tmp))
    print(f"{'build':<28}{'.mpy bytes':>12}{'heap free':>12}{'build s':>10}")
    for name, row in (("debug (--source-lines)", debug), ("lean (default)", lean)):
        print(f"{name:<28}{row['mpy_bytes']:>12}{row['heap_free']:>12}{row['build_s']:>10.2f}")
    print(
        f"lean/debug: .mpy bytes x{lean['mpy_bytes'] / debug['mpy_bytes']:.3f}, "
        f"heap free +{lean['heap_free'] - debug['heap_free']} bytes "
        f"(x{lean['heap_free'] / debug['heap_free']:.3f})"
    )


if __name__ == "__main__":
    main()
