"""CI proof: every file under firmware/device/ compiles with mpy-cross for the ESP32 (xtensawin).

The list is globbed, so a new device module is covered the moment it is added.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.tools import bundle, stubcheck

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
    profiles = bundle.board_profiles(bundle.DEVICE_DIR, board)  # it and what it builds on
    assert {n for n in names if n.startswith("boards/")} == {"boards/__init__.mpy"} | {
        f"boards/{p}.mpy" for p in profiles
    }


ESP32_BOARDS = [b for b in bundle.available_boards() if b.startswith("esp32_")]


@pytest.mark.parametrize("board", ESP32_BOARDS)
def test_an_esp32_bundle_holds_every_module_it_imports(board: str) -> None:
    """Each static import is a bundle module or built into MicroPython for the ESP32."""
    sources = bundle.bundle_sources(bundle.DEVICE_DIR, board)
    shipped = {".".join(rel.with_suffix("").parts) for rel in sources} | {bundle.BOARDS}
    builtin = stubcheck.builtin_modules()
    unresolved = {
        f"{rel}: {name}"
        for rel in sources
        for name in bundle.imported_modules(bundle.DEVICE_DIR / rel)
        if name not in shipped | builtin
        and name.rpartition(".")[0] not in shipped | builtin  # `from x import name`
    }
    assert not unresolved


def test_a_board_built_on_another_ships_both(tmp_path: Path) -> None:
    profiles = bundle.board_profiles(bundle.DEVICE_DIR, "esp32_buttons")
    assert profiles == {"esp32_buttons", "esp32_oled_encoder"}
    manifest = bundle.build(tmp_path / "b", compiler=bundle.MpyCross(), board="esp32_buttons")
    names = {f.path for f in manifest.files}
    assert {"boards/esp32_buttons.mpy", "boards/esp32_oled_encoder.mpy"} <= names
    assert "boards/unix_sim.mpy" not in names
