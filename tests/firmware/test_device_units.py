"""The device's pure logic, unit-tested inside the real micropython binary (-X heapsize=64k)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent / "micropython"


@pytest.mark.parametrize("module", sorted(p.stem for p in UNITS.glob("unit_*.py")))
def test_unit_module_under_micropython(
    module: str, micropython_bin: str, firmware_code: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [micropython_bin, "-X", "heapsize=64k", str(UNITS / "runner.py"), module],
        cwd=tmp_path,  # the outbox tests write their files here
        env=dict(os.environ, MICROPYPATH=f"{UNITS}:{firmware_code}:.frozen"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    failures = [ln for ln in lines if ln.startswith("FAIL")]
    assert not failures, done.stdout + done.stderr
    assert lines and lines[-1].startswith("DONE "), done.stdout + done.stderr
    passed = int(lines[-1].split()[1])
    assert passed == sum(1 for ln in lines if ln.startswith("PASS ")) and passed >= 4
