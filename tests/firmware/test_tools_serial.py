"""flash and verify: the exact esptool/mpremote commands, and a round trip through a stand-in
board (a folder as its filesystem, the real MicroPython unix port running the device-side
hashing code that `verify` sends over mpremote exec)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from firmware import cli
from firmware.tools import bundle, install
from firmware.tools import serial_tools as st
from firmware.tools import verify as ver
from nps_edge.cli import app as root_app

PORT = "/dev/ttyUSB0"
ESPTOOL = [sys.executable, "-m", "esptool"]
MPREMOTE = [sys.executable, "-m", "mpremote", "connect", PORT]
DEVICE_FILES = {
    "main.py": "import app\napp.run()\n",
    "version.py": 'FW_VERSION = "2.0.1"\n',
    "app.py": "import lib.codec\ndef run():\n    return lib.codec.encode([1])\n",
    "lib/codec.py": "def encode(x):\n    return bytes(x)\n",
    "boards/esp32_oled_encoder.py": "NAME = 'oled'\n",
    "boards/unix_sim.py": "NAME = 'sim'\n",
}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, bundle.Manifest]:
    source = tmp_path / "src"
    for name, text in DEVICE_FILES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    out = tmp_path / "bundle"
    manifest = bundle.build(
        out,
        compiler=bundle.MpyCross(),
        device_dir=source,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return out, manifest


def invoke(runner: st.Runner, *args: str) -> Result:
    app = typer.Typer()
    app.add_typer(cli.firmware_app(lambda dry_run: runner), name="firmware")
    return CliRunner().invoke(app, ["firmware", *args])


def test_flash_runs_erase_write_then_copies_main_last(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice, tmp_path: Path
) -> None:
    out, _ = built
    image = tmp_path / "ESP32_GENERIC-v1.29.0.bin"
    image.write_bytes(b"\xe9" + bytes(100))
    result = invoke(board, "flash", "--port", PORT, "--firmware", str(image), "--bundle", str(out))
    assert result.exit_code == 0, result.output
    ran = board.ran
    assert ran[0] == [*ESPTOOL, "--chip", "esp32", "--port", PORT, "erase-flash"]
    assert ran[1] == [
        *ESPTOOL, "--chip", "esp32", "--port", PORT, "--baud", "460800",
        "write-flash", "--compress", "0x1000", str(image),
    ]  # fmt: skip
    assert ran[2] == [*MPREMOTE, "sleep", "2", "exec", install.REMOVE_CODE]
    assert ran[3] == [*MPREMOTE, "reset"]
    mkdirs = install.make_dirs_code(["boards", "lib"])
    assert ran[4] == [*MPREMOTE, "sleep", "2", "exec", mkdirs]
    copies = [argv[5:] for argv in ran if argv[5:7] == ["fs", "cp"]]
    assert copies == [
        ["fs", "cp", "--force", str(out / name), f":{name}"]
        for name in [
            "app.mpy",
            "board.txt",
            "boards/esp32_oled_encoder.mpy",
            "lib/codec.mpy",
            "version.mpy",
            "main.py",
        ]
    ]
    assert ran[-2] == [*MPREMOTE, "exec", ver.DEVICE_LISTING]
    assert ran[-1] == [*MPREMOTE, "reset"]
    assert (board.root / "lib/codec.mpy").read_bytes() == (out / "lib/codec.mpy").read_bytes()


def test_flash_shows_progress_per_file(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice
) -> None:
    out, _ = built
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 0, result.output
    assert "[1/6] app.mpy" in result.stderr
    assert "[6/6] main.py" in result.stderr
    assert "device on /dev/ttyUSB0 runs firmware 2.0.1" in result.stdout


def test_flash_for_an_s3_writes_at_zero() -> None:
    argv = st.write_flash(PORT, Path("fw.bin"), chip="esp32s3", baud=921600)
    assert argv[-6:] == ["--baud", "921600", "write-flash", "--compress", "0x0", "fw.bin"]
    with pytest.raises(st.ToolError, match="unknown chip 'esp8266'"):
        st.write_flash(PORT, Path("fw.bin"), chip="esp8266")


def test_dry_run_prints_every_command_and_touches_nothing(
    built: tuple[Path, bundle.Manifest], tmp_path: Path
) -> None:
    out, manifest = built
    image = tmp_path / "mp.bin"
    image.write_bytes(b"\xe9")
    printed: list[str] = []
    dry = st.DryRunRunner(echo=printed.append)
    result = invoke(
        dry, "flash", "--port", PORT, "--firmware", str(image), "--bundle", str(out), "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert printed[0].startswith("$ ") and printed[0].endswith(f"--port {PORT} erase-flash")
    assert sum(" fs cp --force " in line for line in printed) == len(manifest.files)
    assert printed[-1].endswith(f"connect {PORT} reset")
    assert not any(" exec " in line and "sha256" in line for line in printed)


def test_cli_dry_run_uses_the_printing_runner(built: tuple[Path, bundle.Manifest]) -> None:
    out, _ = built
    result = CliRunner().invoke(
        root_app, ["firmware", "verify", "--port", PORT, "--bundle", str(out), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"$ {sys.executable} -m mpremote connect {PORT} exec ")


def flashed(board: st.LocalDevice, out: Path) -> None:
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 0, result.output


def test_verify_reports_each_file_ok(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice
) -> None:
    out, manifest = built
    flashed(board, out)
    (board.root / "outbox.dat").write_bytes(bytes(300))  # the firmware's data: not a module
    result = invoke(board, "verify", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 0, result.output
    first, *lines = result.stdout.splitlines()
    assert first == "device on /dev/ttyUSB0: MicroPython 1.29.0, loads .mpy v6"
    assert [line.split()[:2] for line in lines[: len(manifest.files)]] == [
        ["ok", f.path] for f in manifest.files
    ]
    assert "6 ok, 0 wrong, 0 extra" in lines


def test_verify_names_missing_different_and_shadowing_files(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice
) -> None:
    out, _ = built
    flashed(board, out)
    (board.root / "app.mpy").unlink()
    (board.root / "lib/codec.mpy").write_bytes(b"M\x06corrupted")
    (board.root / "version.py").write_text('FW_VERSION = "0.9"\n')  # left from an old install
    (board.root / "debug.py").write_text("x = 1\n")
    result = invoke(board, "verify", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 1
    out_lines = result.stdout.splitlines()
    assert "missing   app.mpy  (not on the device)" in out_lines
    assert any(line.startswith("different lib/codec.mpy") for line in out_lines)
    assert "shadowed  version.py  (imported instead of version.mpy; remove it)" in out_lines
    assert "extra     debug.py  (not in the bundle)" in out_lines
    assert "4 ok, 3 wrong, 1 extra" in out_lines
    assert "error: the device does not match firmware 2.0.1" in result.stderr


def test_verify_refuses_a_bundle_the_device_cannot_load(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice
) -> None:
    out, manifest = built
    flashed(board, out)
    listing = install.read_listing(board, PORT)
    older = bundle.Manifest(**{**manifest.__dict__, "mpy_cross": "mpy-cross emitting mpy v5.1"})
    problem = ver.bytecode_problem(older, listing)
    assert problem is not None and "loads v6" in problem
    assert ver.bytecode_problem(manifest, listing) is None


def test_a_cut_short_listing_is_an_error_not_a_verdict() -> None:
    with pytest.raises(ver.ListingError, match="full file listing"):
        ver.parse_listing("I 2822 1.29.0\nF 21 abc main.py\n")
    with pytest.raises(ver.ListingError, match="could not enter raw repl"):
        ver.parse_listing("mpremote: could not enter raw repl\n")


class Failing:
    """A board that refuses mpremote, like one stuck in a boot loop."""

    def run(self, argv: Sequence[str], *, capture: bool = False) -> st.Result:
        return st.Result(1, stderr="mpremote: failed to access /dev/ttyUSB0 (it may be in use)")


def test_tool_failure_is_one_clear_line(built: tuple[Path, bundle.Manifest]) -> None:
    out, _ = built
    result = invoke(Failing(), "verify", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 1
    assert result.stderr == (
        "error: reading the device failed: "
        "mpremote: failed to access /dev/ttyUSB0 (it may be in use)\n"
    )


def test_missing_bundle_says_how_to_make_one(tmp_path: Path) -> None:
    result = invoke(Failing(), "verify", "--port", PORT, "--bundle", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert "build one with `nps-edge firmware build`" in result.stderr


class Unplugged(st.LocalDevice):
    """A board pulled off the cable after `copies` files."""

    copies = 2

    def _copy(self, local: Path, remote: str) -> st.Result:
        if self.copies == 0:
            return st.Result(1, stderr="mpremote: failed to access /dev/ttyUSB0")
        self.copies -= 1
        return super()._copy(local, remote)


def test_an_update_replaces_old_code_and_keeps_data(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice
) -> None:
    out, _ = built
    (board.root / "lib").mkdir()
    (board.root / "lib/codec.py").write_text("OLD = 1\n")  # would shadow lib/codec.mpy
    (board.root / "retired.mpy").write_bytes(b"M\x06")
    (board.root / "config.json").write_text('{"site": "s1"}')
    (board.root / "ob").mkdir()
    (board.root / "ob/0001").write_bytes(b"queued answers")
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 0, result.output
    assert not (board.root / "lib/codec.py").exists()
    assert not (board.root / "retired.mpy").exists()
    assert (board.root / "config.json").read_text() == '{"site": "s1"}'
    assert (board.root / "ob/0001").read_bytes() == b"queued answers"
    assert "6 ok, 0 wrong, 0 extra" in result.stdout


def test_an_update_cut_short_leaves_no_application_to_start(
    built: tuple[Path, bundle.Manifest], tmp_path: Path, micropython_bin: str
) -> None:
    out, _ = built
    board = Unplugged(tmp_path / "running", micropython_bin)
    board.root.mkdir()
    (board.root / "main.py").write_text("import old_app\n")  # a board running older firmware
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 1
    assert "error: copying boards/esp32_oled_encoder.mpy failed" in result.stderr
    assert not (board.root / "main.py").exists()


def test_flash_refuses_a_bundle_changed_after_the_build(
    built: tuple[Path, bundle.Manifest], board: st.LocalDevice
) -> None:
    out, _ = built
    (out / "lib/codec.mpy").write_bytes(b"M\x06edited by hand")
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out))
    assert result.exit_code == 2
    assert "lib/codec.mpy is not the file manifest.json lists" in result.stderr
    assert board.ran == []
    (out / "lib/codec.mpy").unlink()
    result = invoke(board, "flash", "--port", PORT, "--bundle", str(out))
    assert "lib/codec.mpy is missing from the bundle: run build again" in result.stderr


def test_the_subprocess_runner_runs_and_captures(tmp_path: Path) -> None:
    runner = st.SubprocessRunner()
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    assert runner.run([sys.executable, "-c", code], capture=True) == st.Result(3, "out\n", "err\n")
    assert runner.run([sys.executable, "-c", "pass"]) == st.Result(0)
    with pytest.raises(st.ToolError, match="cannot run"):
        runner.run([str(tmp_path / "no-such-tool")])
