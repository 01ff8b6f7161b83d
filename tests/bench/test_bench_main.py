"""`python -m bench`: which benchmarks a command line runs, with which options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.__main__ import BENCHMARKS, main, runs


def test_help_lists_every_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["-h"], ["--help"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: python -m bench")
        assert all(f"  {name} " in out for name in BENCHMARKS)


def test_several_names_run_each_on_its_defaults() -> None:
    assert runs(["fleet_load", "ingest_batch"]) == [["fleet_load"], ["ingest_batch"]]


def test_options_follow_one_name_and_are_passed_on() -> None:
    assert runs(["fleet_load", "--devices", "2000", "--burst", "9"]) == [
        ["fleet_load", "--devices", "2000", "--burst", "9"]
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["nope"], "unknown benchmark(s): nope"),
        (["--devices", "3", "fleet_load"], "options go after a single benchmark's name"),
        (["fleet_load", "ingest_batch", "--x"], "options go after a single benchmark's name"),
    ],
)
def test_a_line_it_cannot_run_says_why_and_runs_nothing(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert says in captured.err and "usage: python -m bench" in captured.err
    assert "==>" not in captured.out


def test_the_options_reach_the_benchmark() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "ack_publish", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "==> bench.ack_publish --help" in done.stdout
    assert "--messages" in done.stdout
