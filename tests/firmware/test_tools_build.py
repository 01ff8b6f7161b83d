"""`nps-edge firmware build`: the bundle, its manifest and archive, and its errors."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firmware.tools import bundle
from nps_edge.cli import app

FIXED = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    """A small device tree shaped like firmware/device/."""
    root = tmp_path / "device"
    files = {
        "main.py": "import app\napp.run()\n",
        "boot.py": "# runs first\n",
        "version.py": 'FW_VERSION = "1.4.2"\n',
        "app.py": "def run():\n    return 'ran'\n",
        "lib/codec.py": "def encode(x):\n    return bytes(x)\n",
        "boards/esp32_oled_encoder.py": "NAME = 'oled'\n",
        "boards/esp32_three_buttons.py": "NAME = 'buttons'\n",
        "boards/unix_sim.py": "NAME = 'sim'\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def build(device_dir: Path, out: Path, **kwargs: object) -> bundle.Manifest:
    return bundle.build(out, compiler=bundle.MpyCross(), device_dir=device_dir, now=FIXED, **kwargs)  # type: ignore[arg-type]


def test_bundle_holds_bytecode_sources_only_for_main_and_boot(
    device_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    manifest = build(device_dir, out)
    assert [f.path for f in manifest.files] == [
        "app.mpy",
        "board.txt",
        "boards/esp32_oled_encoder.mpy",
        "boot.py",
        "lib/codec.mpy",
        "main.py",
        "version.mpy",
    ]
    assert (out / "main.py").read_text() == (device_dir / "main.py").read_text()
    assert (out / "board.txt").read_text() == "esp32_oled_encoder\n"  # main.py picks it
    assert (out / "app.mpy").read_bytes()[:2] == b"M\x06"  # .mpy magic, format 6
    assert manifest.firmware == "1.4.2"
    assert manifest.board == "esp32_oled_encoder"
    assert manifest.arch == "xtensawin"
    assert manifest.built_at == "2026-11-27T12:00:00Z"
    assert manifest.mpy_cross.startswith("MicroPython v")
    assert manifest.flags == ("-march=xtensawin", "-X", "no-source-lines")


def test_a_debug_build_keeps_line_numbers(device_dir: Path, tmp_path: Path) -> None:
    lean = build(device_dir, tmp_path / "lean")
    debug = build(device_dir, tmp_path / "debug", source_lines=True)
    assert debug.flags == ("-march=xtensawin",)
    lean_size = {f.path: f.size for f in lean.files}
    debug_size = {f.path: f.size for f in debug.files}
    assert debug_size["lib/codec.mpy"] > lean_size["lib/codec.mpy"]


def test_manifest_sums_and_sizes_match_the_files(device_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    build(device_dir, out)
    written = json.loads((out / "manifest.json").read_text())
    assert written["format"] == 1
    for entry in written["files"]:
        data = (out / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    assert bundle.Manifest.load(out) == bundle.Manifest.from_json(json.dumps(written))


def test_other_board_profile_replaces_the_default(device_dir: Path, tmp_path: Path) -> None:
    manifest = build(device_dir, tmp_path / "b", board="esp32_three_buttons")
    boards = [f.path for f in manifest.files if f.path.startswith("boards/")]
    assert boards == ["boards/esp32_three_buttons.mpy"]


def test_unknown_board_names_the_known_ones(device_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(bundle.BoardNotFound, match="esp32_oled_encoder, esp32_three_buttons"):
        build(device_dir, tmp_path / "b", board="esp32_lcd")


def test_archive_is_reproducible_and_matches_the_folder(device_dir: Path, tmp_path: Path) -> None:
    archives = []
    for attempt in ("one", "two"):
        out = tmp_path / attempt / "bundle"
        manifest = build(device_dir, out)
        archives.append(bundle.write_archive(out, [f.path for f in manifest.files]))
    assert archives[0].read_bytes() == archives[1].read_bytes()
    with tarfile.open(archives[0]) as tar:
        names = sorted(tar.getnames())
        packed = tar.extractfile("bundle/app.mpy")
        assert (
            packed is not None and packed.read() == (tmp_path / "one/bundle/app.mpy").read_bytes()
        )
    assert names == sorted(
        f"bundle/{p}" for p in [*(f.path for f in manifest.files), "manifest.json"]
    )


def test_syntax_error_names_file_and_line(device_dir: Path, tmp_path: Path) -> None:
    (device_dir / "lib/codec.py").write_text("def encode(x):\n    return x\ndef broken(:\n")
    with pytest.raises(bundle.CompileError) as caught:
        build(device_dir, tmp_path / "b")
    assert (caught.value.path, caught.value.line) == ("lib/codec.py", 3)
    assert str(caught.value) == "lib/codec.py, line 3: SyntaxError: invalid syntax"


def test_refuses_to_wipe_a_folder_that_is_not_a_bundle(device_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(bundle.BuildError, match="holds no bundle"):
        build(device_dir, out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_rebuild_replaces_a_previous_bundle(device_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    build(device_dir, out)
    (device_dir / "app.py").unlink()
    manifest = build(device_dir, out)
    assert "app.mpy" not in {f.path for f in manifest.files}
    assert not (out / "app.mpy").exists()


def test_cli_shows_progress_per_file_and_the_bundle(device_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    result = CliRunner().invoke(
        app, ["firmware", "build", "--source", str(device_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "[1/7] app.mpy" in result.stderr
    assert "[6/7] version.mpy" in result.stderr
    assert "[7/7] board.txt" in result.stderr
    assert "built firmware 1.4.2 for esp32_oled_encoder (xtensawin): 7 files" in result.stdout
    assert (tmp_path / "b.tar.gz").exists()


def test_cli_syntax_error_exits_non_zero_with_file_and_line(
    device_dir: Path, tmp_path: Path
) -> None:
    (device_dir / "app.py").write_text("def run(:\n")
    result = CliRunner().invoke(
        app, ["firmware", "build", "--source", str(device_dir), "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 1
    assert "error: app.py, line 1: SyntaxError: invalid syntax" in result.stderr


def test_same_sources_and_source_date_epoch_give_the_same_archive(
    device_dir: Path, tmp_path: Path
) -> None:
    archives = []
    for attempt in ("one", "two"):
        out = tmp_path / attempt / "bundle"
        result = CliRunner().invoke(
            app,
            ["firmware", "build", "--source", str(device_dir), "--out", str(out)],
            env={"SOURCE_DATE_EPOCH": "1764201600"},
        )
        assert result.exit_code == 0, result.output
        archives.append(out.with_name("bundle.tar.gz").read_bytes())
    assert archives[0] == archives[1]
    assert bundle.Manifest.load(tmp_path / "one/bundle").built_at == "2025-11-27T00:00:00Z"
