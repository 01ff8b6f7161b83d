"""The dashboard benchmark's data (bench/overview_data.py): rows made in SQL the same on
every build, rollups equal to ingest's own aggregation, a cache reused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench import overview_data


def test_counts_parse() -> None:
    assert overview_data.parse_count("10M") == 10_000_000
    assert overview_data.parse_count("200k") == 200_000
    assert overview_data.parse_count("1234") == 1234


def _digest(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT site, COUNT(*), SUM(category IS 'promoter'), SUM(category IS 'detractor'),"
            " SUM(survey = 'relationship'), COUNT(role), COUNT(reason), MIN(t), MAX(t)"
            " FROM feedback GROUP BY site ORDER BY site"
        ).fetchall()


def test_build_is_deterministic_and_its_rollups_are_ingests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = overview_data.database(6000)  # builds, and checks a day against ingest's sums
    assert first == overview_data.cache_path(6000) and first.exists()
    assert overview_data.database(6000) == first  # reused, not built again
    again = tmp_path / "again.db"
    overview_data.build(6000, again)
    rows = _digest(first)
    assert rows == _digest(again)
    assert len(rows) == overview_data.DEVICES // overview_data.PER_SITE
    assert sum(r[1] for r in rows) == 6000
    with sqlite3.connect(first) as conn:
        fleet = conn.execute(
            "SELECT SUM(promoters), SUM(detractors), SUM(shown) FROM rollup_fleet_day"
        ).fetchone()
        raw = conn.execute(
            "SELECT SUM(category IS 'promoter'), SUM(category IS 'detractor'), COUNT(*)"
            " FROM feedback WHERE survey = 'transactional'"
        ).fetchone()
        assert fleet == raw
        assert conn.execute("SELECT COUNT(*) FROM voice_comment").fetchone()[0] > 0
    for day in (overview_data.END - 300 * overview_data.DAY, overview_data.END - 2 * 86400):
        assert overview_data.verify(f"sqlite:///{first}", day // 86400 * 86400) > 0
