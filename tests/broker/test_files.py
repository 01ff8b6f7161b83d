"""Files written for the broker: private whatever the umask, replaced in one step."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from broker.files import broker_dir, data_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_whatever_the_umask_and_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "passwd"
    target.write_text("old\n")
    target.chmod(0o644)  # a hand-made file, readable by all
    inode = target.stat().st_ino
    old = os.umask(0)
    try:
        write_private(target, b"new\n", owner=None)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new\n"
    assert mode(target) == 0o600
    assert target.stat().st_ino != inode  # a new file renamed over: readers see old or new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]  # no temp file left


def test_folders_without_a_broker_user(tmp_path: Path) -> None:
    broker_dir(tmp_path / "b", owner=None)
    data_dir(tmp_path / "b" / "data", owner=None)
    assert mode(tmp_path / "b") == 0o700 and mode(tmp_path / "b" / "data") == 0o700
