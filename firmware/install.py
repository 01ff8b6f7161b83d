"""Putting firmware on a board: MicroPython with esptool, then the bundle with mpremote.

main.py is copied last, so a copy cut short never leaves a board that boots half an app.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from firmware import serial_tools as st
from firmware.bundle import Manifest, Progress
from firmware.provision import DEVICE_CONFIG
from firmware.verify import DEVICE_LISTING, Listing, parse_listing

Say = Callable[[str], None]


def make_dirs_code(dirs: list[str]) -> str:
    """Device code creating each folder, parents first, quiet when it exists."""
    return f"import os\nfor d in {dirs!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n"


def copy_order(manifest: Manifest) -> list[str]:
    """Bundle files in copy order: everything else first, main.py last."""
    names = [f.path for f in manifest.files]
    return sorted(names, key=lambda name: (name == "main.py", name))


def folders(names: list[str]) -> list[str]:
    found: set[str] = set()
    for name in names:
        found.update(str(p) for p in PurePosixPath(name).parents if str(p) != ".")
    return sorted(found, key=lambda d: (d.count("/"), d))


def write_micropython(
    runner: st.Runner, port: str, image: Path, *, chip: str, baud: int, say: Say
) -> None:
    say(f"erasing the flash of the {chip} on {port}")
    st.check(runner.run(st.erase_flash(port, chip)), "esptool erase-flash")
    say(f"writing {image.name} to {port} at {baud} baud")
    st.check(runner.run(st.write_flash(port, image, chip, baud)), "esptool write-flash")


def copy_bundle(
    runner: st.Runner,
    port: str,
    bundle: Path,
    manifest: Manifest,
    *,
    progress: Progress,
    before_main: Callable[[], None] | None = None,
) -> None:
    """Copy every bundle file with one mpremote call each, reporting each one."""
    names = copy_order(manifest)
    dirs = folders(names)
    if dirs:
        st.check(runner.run(st.exec_on_device(port, make_dirs_code(dirs))), "creating folders")
    for index, name in enumerate(names, start=1):
        if name == "main.py" and before_main is not None:
            before_main()
        progress(index, len(names), name)
        st.check(runner.run(st.copy_to_device(port, bundle / name, name)), f"copying {name}")


def read_listing(runner: st.Runner, port: str) -> Listing:
    """Every file on the device with its size and SHA-256, read with one mpremote exec."""
    result = st.check(
        runner.run(st.exec_on_device(port, DEVICE_LISTING), capture=True), "reading the device"
    )
    return parse_listing(result.stdout)


def write_config(runner: st.Runner, port: str, text: str, *, workdir: Path) -> None:
    """Copy config.json to the device; the local copy is readable by its owner only."""
    local = workdir / DEVICE_CONFIG
    local.touch(mode=0o600)
    local.write_text(text, encoding="utf-8")
    try:
        st.check(runner.run(st.copy_to_device(port, local, DEVICE_CONFIG)), "writing config.json")
    finally:
        local.unlink()


def config_on_device_matches(listing: Listing, text: str) -> bool:
    found = listing.files.get(DEVICE_CONFIG)
    return found is not None and found.sha256 == hashlib.sha256(text.encode()).hexdigest()
