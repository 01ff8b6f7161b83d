"""Sampling, throttling, expiry, roles and the relationship calendar, inside the real micropython.

The logic runs in micropython -X heapsize=64k (tests/firmware/micropython/mp_sampling.py);
the feedback event it builds is validated here against the contract models.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from contract.protocol import FeedbackEvent, parse_event

UNITS = Path(__file__).resolve().parent / "micropython"
ROLES = {"end_user", "operator", "technician", "buyer", "sponsor"}  # contract additions, Dec 2026


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
    lines = run_units("mp_sampling", micropython_bin, firmware_code, tmp_path, least=11)
    [line] = [ln for ln in lines if ln.startswith("EVENT ")]
    raw = json.loads(line[len("EVENT ") :])
    event = parse_event(raw)
    assert isinstance(event, FeedbackEvent) and event.score == 5
    # Until contract/protocol.py has the fields (helper H4), check them against the contract text.
    assert raw["survey"] in ("transactional", "relationship")
    assert raw["role"] is None or raw["role"] in ROLES
    assert raw["role"] == "sponsor"
