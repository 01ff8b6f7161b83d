"""Putting firmware on a board: MicroPython with esptool, then the bundle with mpremote.

A running firmware has started the ESP32's hardware watchdog (30 s), which nothing
stops, not even mpremote's Ctrl-C: a copy that takes longer would be cut by a reset
into a half-old application. So the copy first removes main.py, then every other
code file (a stale X.py would be imported instead of the bundle's X.mpy), and resets
the board: it comes back to a bare REPL with no watchdog, the files go over at
leisure, and main.py goes last. A copy cut short leaves a board that starts no
application at all, never half of one. Data files (config.json, the outbox) stay.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from firmware.tools import serial_tools as st
from firmware.tools.bundle import Manifest, Progress
from firmware.tools.provision import DEVICE_CONFIG
from firmware.tools.verify import DEVICE_LISTING, Listing, parse_listing

Say = Callable[[str], None]


# Seconds to let the board restart before mpremote asks for its raw REPL.
BOOT_WAIT_S = 2
# Runs on the board: main.py first, so that nothing starts even if this is cut short.
REMOVE_CODE = """\
import os
try:
 os.remove('main.py')
except OSError:
 pass
def w(d):
 for e in list(os.ilistdir(d or '.')):
  p=d+'/'+e[0] if d else e[0]
  if e[1]==0x4000:w(p)
  elif p[-3:]=='.py' or p[-4:]=='.mpy':os.remove(p)
w('')
"""


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
    config: str | None = None,
    say: Say | None = None,
) -> None:
    """Stop the application, then copy every bundle file with one mpremote call each;
    `config` (config.json's text), when given, goes on just before main.py."""
    names = copy_order(manifest)
    # The wait also covers a board esptool has just reset into a freshly written MicroPython.
    remove = st.exec_on_device(port, REMOVE_CODE, wait_s=BOOT_WAIT_S)
    st.check(runner.run(remove), "removing the old firmware")
    st.check(runner.run(st.reset_device(port)), "resetting the board")
    code = make_dirs_code(folders(names))
    st.check(runner.run(st.exec_on_device(port, code, wait_s=BOOT_WAIT_S)), "creating folders")
    for index, name in enumerate(names, start=1):
        if name == "main.py" and config is not None:
            if say is not None:
                say("writing config.json")
            write_config(runner, port, config)
        progress(index, len(names), name)
        st.check(runner.run(st.copy_to_device(port, bundle / name, name)), f"copying {name}")


def read_listing(runner: st.Runner, port: str) -> Listing:
    """Every file on the device with its size and SHA-256, read with one mpremote exec."""
    result = st.check(
        runner.run(st.exec_on_device(port, DEVICE_LISTING), capture=True), "reading the device"
    )
    return parse_listing(result.stdout)


def write_config(runner: st.Runner, port: str, text: str) -> None:
    """Copy config.json to the device, from a private temporary folder (it holds passwords)."""
    with tempfile.TemporaryDirectory(prefix="nps-edge-") as workdir:
        local = Path(workdir) / DEVICE_CONFIG
        local.touch(mode=0o600)  # the folder is 0700 already; the file too holds passwords
        local.write_text(text, encoding="utf-8")
        st.check(runner.run(st.copy_to_device(port, local, DEVICE_CONFIG)), "writing config.json")


def config_on_device_matches(listing: Listing, text: str) -> bool:
    found = listing.files.get(DEVICE_CONFIG)
    return found is not None and found.sha256 == hashlib.sha256(text.encode()).hexdigest()
