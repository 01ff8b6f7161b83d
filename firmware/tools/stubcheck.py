"""Type-check the ESP32 board layer against micropython-esp32-stubs with mypy.

The stubs install as loose top-level `.pyi` files (machine.pyi, network.pyi...) plus a
MicroPython typeshed (`stdlib/`), which mypy cannot find as PEP 561 packages. So this
links them into a scratch folder: the board stubs go on `mypy_path`, the MicroPython
`stdlib/` becomes `custom_typeshed_dir` (CPython's standard library must not leak in:
the board runs MicroPython). Errors inside the stubs themselves are not ours and are
silenced per module; modules the board imports are followed silently; only the board
files are reported, with `check_untyped_defs` since MicroPython code carries no hints
(and without `var-annotated`, which only asks for those hints, and without strict None
checks: board code sets hardware members to None in __init__ and fills them in
configure(), an order mypy cannot see without annotations; nor does it count errors about
the board's own lists, typed by their first append). What is checked is what the
stubs know: names, arguments and types of machine/network/esp32 calls. `explicit_package_bases`
names `boards/esp32_x.py` as module `boards.esp32_x`, as the device imports it.

    .venv/bin/python -m firmware.tools.stubcheck        # exit 0 when the board layer is clean
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware.tools.bundle import BOARDS, DEVICE_DIR

BOARD_STUBS = "micropython-esp32-stubs"
STDLIB_STUBS = "micropython-stdlib-stubs"


class StubsMissing(Exception):
    """The stub packages are not installed (pip install micropython-esp32-stubs)."""


def dist_root(dist: str) -> tuple[Path, set[str]]:
    """Where a distribution is installed and the top-level names it put there."""
    try:
        files = metadata.files(dist)
    except metadata.PackageNotFoundError as err:
        raise StubsMissing(f"{dist} is not installed: pip install {dist}") from err
    if not files:
        raise StubsMissing(f"{dist} lists no files")
    first = files[0]
    root = Path(str(first.locate())).parents[len(first.parts) - 1]
    tops = {f.parts[0] for f in files if not f.parts[0].endswith(".dist-info")}
    return root, tops


def stub_modules(names: set[str]) -> list[str]:
    return sorted(n.removesuffix(".pyi") for n in names if n.endswith(".pyi") or "." not in n)


def write_config(workdir: Path, device_dir: Path = DEVICE_DIR, cache: Path | None = None) -> Path:
    """Lay out the stubs under `workdir` and write the mypy config that uses them."""
    board_root, board_tops = dist_root(BOARD_STUBS)
    std_root, std_tops = dist_root(STDLIB_STUBS)
    stubs = workdir / "board-stubs"
    typeshed = workdir / "typeshed"
    stubs.mkdir()
    typeshed.mkdir()
    board_tops = {n for n in board_tops if n.endswith(".pyi") or (board_root / n).is_dir()}
    for name in board_tops:
        (stubs / name).symlink_to(board_root / name)
    shed = {n for n in std_tops if n not in ("stdlib", "stubs")}
    for name in shed:
        (stubs / name).symlink_to(std_root / name)
    for name in ("stdlib", "stubs"):
        if (std_root / name).exists():
            (typeshed / name).symlink_to(std_root / name)
    silenced = ",".join(f"{m},{m}.*" for m in stub_modules(board_tops | shed))
    config = workdir / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        "python_version = 3.11\n"
        f"mypy_path = {stubs}{os.pathsep}{device_dir}\n"
        f"custom_typeshed_dir = {typeshed}\n"
        "no_site_packages = True\n"
        "explicit_package_bases = True\n"
        "follow_imports = silent\n"
        "check_untyped_defs = True\n"
        # MicroPython code carries no annotations: `got = []` is not a hardware error, and a
        # member set to None in __init__ and filled in configure() is not one either.
        "disable_error_code = var-annotated\n"
        "strict_optional = False\n"
        "warn_unused_ignores = True\n"
        f"cache_dir = {cache or workdir / 'cache'}\n"
        f"\n[mypy-{silenced}]\n"
        "ignore_errors = True\n"
    )
    return config


# In the MicroPython typeshed for type checkers only; no ESP32 firmware has them built in.
TYPING_ONLY = frozenset(
    {"VERSIONS", "abc", "enum", "types", "typing", "typing_extensions"}
    | {"sre_compile", "sre_constants", "sre_parse"}
)


def builtin_modules() -> set[str]:
    """Modules an ESP32's MicroPython provides, as far as the stubs know them."""
    _, board_tops = dist_root(BOARD_STUBS)
    std_root, _ = dist_root(STDLIB_STUBS)
    stdlib = {p.name.removesuffix(".pyi") for p in (std_root / "stdlib").iterdir()}
    board = {n.removesuffix(".pyi") for n in board_tops if "." not in n.removesuffix(".pyi")}
    return board | {n for n in stdlib if not n.startswith("_")} - TYPING_ONLY


def board_files(device_dir: Path = DEVICE_DIR) -> list[Path]:
    return sorted((device_dir / BOARDS).glob("esp32_*.py"))


# In unannotated code mypy types `got = []` by its first append and then flags a later
# append of another shape: inference about the board's own lists, not about the hardware.
_OWN_LIST = re.compile(r': error: Argument \d+ to "\w+" of "(list|dict|set)" has incompatible type')


def without_own_list_errors(
    done: subprocess.CompletedProcess[str],
) -> subprocess.CompletedProcess[str]:
    """mypy's result with the errors about the board's own empty-literal lists left out."""
    if done.returncode != 1:
        return done  # 0: clean; 2: mypy could not run, report as it is
    lines = [line for line in done.stdout.splitlines() if not _OWN_LIST.search(line)]
    errors = sum(": error: " in line for line in lines)
    kept = [line for line in lines if not line.startswith(("Found ", "Success: "))]
    ignored = done.stdout.count("\n") - len(lines)
    summary = f"Found {errors} error{'s' * (errors > 1)}" if errors else "Success: no issues found"
    kept.append(f"{summary} ({ignored} about the board's own lists not counted)")
    return subprocess.CompletedProcess(
        done.args, int(errors > 0), "\n".join(kept) + "\n", done.stderr
    )


def check(
    files: list[Path], device_dir: Path = DEVICE_DIR, *, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run mypy on `files`; returncode 0 when they type-check against the stubs.

    `cache` keeps mypy's cache between runs (the stubs are analysed once)."""
    with tempfile.TemporaryDirectory(prefix="nps-stubcheck-") as workdir:
        config = write_config(Path(workdir), device_dir, cache)
        argv = [sys.executable, "-m", "mypy", "--config-file", str(config), *map(str, files)]
        return without_own_list_errors(
            subprocess.run(argv, capture_output=True, text=True, check=False)
        )


def main() -> int:
    files = board_files()
    if not files:
        print(f"no board files matching {DEVICE_DIR / BOARDS}/esp32_*.py", file=sys.stderr)
        return 2
    done = check(files)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
