# ruff: noqa: F821  (include and freeze are defined by MicroPython's manifest loader)
"""Freeze manifest for a custom ESP32 build with the firmware's code in flash.

docs/firmware.md ("Custom build with frozen code") gives the steps; in short, from a
MicroPython checkout:

    make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=$PWD/../nps-edge/firmware/manifest.py

freeze("device") takes every file under firmware/device/ (boards/ too, and any module added
later), so nothing here lists modules by name. Frozen bytecode, strings and qstrs stay in
flash: only the running state uses the heap. main.py is frozen too but the file of that name
on the device's flash (the bundle installs it) is the one the board runs at boot.
"""

include("$(PORT_DIR)/boards/manifest.py")  # type: ignore[name-defined]  # the port's own modules
freeze("device", opt=3)  # type: ignore[name-defined]
