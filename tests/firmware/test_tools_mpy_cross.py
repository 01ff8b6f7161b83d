"""CI proof: every file under firmware/device/ compiles with mpy-cross for the ESP32 (xtensawin).

The list is globbed, so a new device module is covered the moment it is added.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware import bundle

SOURCES = bundle.device_sources(bundle.DEVICE_DIR)


@pytest.fixture(scope="module")
def mpy_cross() -> bundle.MpyCross:
    return bundle.MpyCross()


def test_the_device_tree_is_there() -> None:
    assert (bundle.DEVICE_DIR / "main.py").is_file(), "firmware/device/main.py is missing"
    assert len(SOURCES) > 5


@pytest.mark.parametrize("rel", SOURCES, ids=[str(p) for p in SOURCES])
def test_compiles_for_esp32(rel: Path, mpy_cross: bundle.MpyCross, tmp_path: Path) -> None:
    target = tmp_path / "out.mpy"
    flags = bundle.mpy_cross_flags("xtensawin", source_lines=False)  # what `build` uses
    mpy_cross.compile(bundle.DEVICE_DIR / rel, target, name=rel.as_posix(), flags=flags)
    assert target.read_bytes()[:2] == b"M\x06"


@pytest.mark.parametrize("board", bundle.available_boards())
def test_the_shipped_firmware_builds_for_each_board(board: str, tmp_path: Path) -> None:
    manifest = bundle.build(tmp_path / "bundle", compiler=bundle.MpyCross(), board=board)
    names = {f.path for f in manifest.files}
    assert {"main.py", "board.txt", f"boards/{board}.mpy"} <= names
    assert [n for n in names if n.startswith("boards/") and board not in n] == [
        "boards/__init__.mpy"
    ]
