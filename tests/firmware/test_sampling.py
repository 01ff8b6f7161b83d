"""Sampling, throttling, expiry and the trigger line, inside the real micropython.

The logic runs in micropython -X heapsize=64k (tests/firmware/micropython/mp_sampling.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

UNITS = Path(__file__).resolve().parent / "micropython"


def run_units(module: str, micropython: str, code: Path, cwd: Path, least: int = 4) -> list[str]:
    """Runs a module's test_* functions under micropython; returns its output lines."""
    done = subprocess.run(
        [micropython, "-X", "heapsize=64k", str(UNITS / "runner.py"), module],
        cwd=cwd,
        env=dict(os.environ, MICROPYPATH=f"{UNITS}:{code}:.frozen"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert not [ln for ln in lines if ln.startswith("FAIL")], done.stdout + done.stderr
    assert lines and lines[-1].startswith("DONE "), done.stdout + done.stderr
    passed = int(lines[-1].split()[1])
    assert passed == sum(1 for ln in lines if ln.startswith("PASS ")) and passed >= least
    return lines


def test_sampling_units_under_micropython(
    micropython_bin: str, firmware_code: Path, tmp_path: Path
) -> None:
    run_units("mp_sampling", micropython_bin, firmware_code, tmp_path, least=6)
