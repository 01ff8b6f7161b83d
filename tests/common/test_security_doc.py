"""docs/security.md stays true: every test it names exists, and a file not there yet is
marked TODO on the same line (filled in when the branches of issue 12 are merged)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text()
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_named_test_exists_or_is_marked_todo() -> None:
    named = 0
    for line in DOC.splitlines():
        for path, name in REFERENCE.findall(line):
            named += 1
            if not (ROOT / path).is_file():
                assert "**TODO**" in line, f"{path} does not exist and is not marked TODO"
                continue
            if name:
                assert f"def {name}(" in (ROOT / path).read_text(), f"{path}::{name}"
    assert named >= 20


def test_the_etsi_table_has_the_13_provisions() -> None:
    rows = re.findall(
        r"^\| 5\.(\d+) .*?\| (met|partly[^|]*|not met|not applicable[^|]*) \|", DOC, re.M
    )
    assert [int(n) for n, _ in rows] == list(range(1, 14))
