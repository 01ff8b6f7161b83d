"""main.py, the boot loader: which firmware folder comes first on sys.path (docs/firmware.md,
Firmware updates). The factory code is the ROM image (/rom); an installed release is
fw/<version> on flash. The proof is the version the device reports in its retained status."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.fleet_kit import statuses

pytestmark = pytest.mark.slow

DEVICE = "nps-b00710"


def reported_fw(sub: Any, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        seen = [s for s in statuses(sub, DEVICE) if s.get("online")]
        if seen:
            return str(seen[-1]["fw"])
        if time.monotonic() > deadline:
            raise AssertionError("no online status")
        sub.wait_messages(len(sub.messages) + 1, timeout=max(0.1, deadline - time.monotonic()))


def test_factory_code_from_rom_is_not_shadowed_by_a_stray_file_on_flash(
    devices, config, mqtt_broker, subscriber
) -> None:
    cfg = config(mqtt_broker, device=DEVICE)
    cfg.pop("fw", None)  # report the version of the code that runs
    folder = devices.folder("d", cfg)
    (folder / "version.py").write_text('FW_VERSION = "9.9.9"\n')  # left over from a USB copy
    devices.start(folder)  # 64k
    assert reported_fw(subscriber) == "1.0.0"


def test_the_pointer_puts_an_installed_release_first(
    devices, config, mqtt_broker, subscriber, firmware_code: Path
) -> None:
    cfg = config(mqtt_broker, device=DEVICE)
    cfg.pop("fw", None)
    folder = devices.folder("d", cfg)
    release = folder / "fw" / "2.0.0"
    shutil.copytree(firmware_code, release, ignore=shutil.ignore_patterns("*.romfs"))
    (release / "version.mpy").unlink()
    (release / "version.py").write_text('FW_VERSION = "2.0.0"\n')
    pointer = {"active": "fw/2.0.0", "previous": "", "pending": False, "boots": 0, "max": 3}
    (folder / "fw.json").write_text(json.dumps(pointer))
    # An installed release's code is loaded from .mpy into the heap (see test_ota.py).
    devices.start(folder, heapsize="128k")
    assert reported_fw(subscriber) == "2.0.0"
