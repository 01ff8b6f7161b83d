"""Surveys, roles, the relationship calendar, the link choice and the settings, in micropython.

The logic runs in micropython -X heapsize=64k (tests/firmware/micropython/mp_survey.py);
the feedback event it builds is validated here against the contract models.
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.protocol import FeedbackEvent, parse_event
from tests.firmware.test_sampling import run_units

ROLES = {"end_user", "operator", "technician", "buyer", "sponsor"}  # contract additions, Dec 2026


def test_survey_units_under_micropython(
    micropython_bin: str, firmware_code: Path, tmp_path: Path
) -> None:
    lines = run_units("mp_survey", micropython_bin, firmware_code, tmp_path, least=6)
    [line] = [ln for ln in lines if ln.startswith("EVENT ")]
    raw = json.loads(line[len("EVENT ") :])
    event = parse_event(raw)
    assert isinstance(event, FeedbackEvent) and event.score == 5
    # Until contract/protocol.py has the fields (helper H4), check them against the contract text.
    assert raw["survey"] in ("transactional", "relationship")
    assert raw["role"] is None or raw["role"] in ROLES
    assert raw["role"] == "sponsor"
