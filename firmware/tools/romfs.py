"""The firmware's compiled code as a MicroPython ROM filesystem image, and running it from there.

On an ESP32 the image goes to the romfs partition (`mpremote romfs deploy`),
is memory-mapped from flash and mounted at /rom at boot: bytecode, strings
and qstrs are used in place, so only the running state lives in the heap
(docs/firmware.md, Code out of the heap). The unix port has `vfs.VfsRom` but
no ROM partition: `rom_command` loads the image into one block at the bottom
of a heap enlarged by the image's size and pads it, so the firmware above it
has exactly the free heap of `-X heapsize=64k` (the model is stated in
docs/firmware.md).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mpremote.romfs import VfsRomWriter

IMAGE = "firmware.romfs"
# The heap the firmware needs under the unix port when its code is loaded from .mpy files
# on flash instead (no romfs, not frozen): the bytecode then sits in the heap too.
MPY_HEAP = "96k"
CODE_SUFFIXES = (".mpy", ".py")


def build_image(code: Path, out: Path | None = None) -> Path:
    """Every module under code (every .mpy, so new device modules go in too) into one image."""
    out = out or code / IMAGE
    writer = VfsRomWriter()

    def add(folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                writer.opendir(path.name)
                add(path)
                writer.closedir()
            elif path.suffix in CODE_SUFFIXES:
                writer.mkfile(path.name, path.read_bytes())

    add(code)
    image = writer.finalise()
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(image)
    tmp.replace(out)
    return out


def heap_bytes(size: str) -> int:
    """-X heapsize's value ("64k", "1m", "65536") in bytes."""
    units = {"k": 1024, "m": 1024 * 1024}
    size = size.strip().lower()
    if size and size[-1] in units:
        return int(size[:-1]) * units[size[-1]]
    return int(size)


def free_after_start(micropython: str, heapsize: str) -> int:
    """gc.mem_free() of a bare `micropython -X heapsize=SIZE` (what the firmware starts with)."""
    done = subprocess.run(
        [
            micropython,
            "-X",
            f"heapsize={heapsize}",
            "-c",
            "import gc;gc.collect();print(gc.mem_free())",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(done.stdout.split()[-1])


# Runs under micropython: the image in one block at the bottom of the heap, padded so
# the firmware above it sees the free heap of the size asked for, mounted at /rom.
_LOADER = """\
import gc, sys, vfs
_f = open({image!r}, "rb")
_rom = bytearray({size})
_f.readinto(_rom)
_f.close()
vfs.mount(vfs.VfsRom(_rom), "/rom")
sys.path.insert(1, "/rom")  # after "" (the flash), as on a board with romfs
del _f
gc.collect()
_pad = gc.mem_free() - {free}
_pad = bytearray(_pad - 32) if _pad > 64 else None
gc.collect()
{run}
"""


def rom_command(
    micropython: str, image: Path, heapsize: str, free: int, run: str = "import main"
) -> list[str]:
    """The micropython command running the firmware (or `run`) from image with `free` heap."""
    size = image.stat().st_size
    total = heap_bytes(heapsize) + size + size // 16 + 4096  # the image, its GC table share, slack
    code = _LOADER.format(image=str(image), size=size, free=free, run=run)
    return [micropython, "-X", f"heapsize={total}", "-c", code]
