"""Screens rendered by the real firmware's framebuf, written to docs/screens/*.png.

The device dumps its 128x64 1-bit framebuffer (the SSD1306's page layout) on
the `dump` input line; this test turns each dump into a PNG and compares it
with the committed one (NPS_EDGE_UPDATE_SCREENS=1 rewrites them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
WIDTH, HEIGHT, SCALE = 128, 64, 4
T0 = 1793000000000
ON = (120, 200, 255)  # a blue-white OLED pixel
OFF = (8, 10, 14)


def to_image(buffer: bytes) -> Image.Image:
    """MONO_VLSB: byte (y // 8) * width + x holds 8 vertical pixels, bit y % 8."""
    assert len(buffer) == WIDTH * HEIGHT // 8
    img = Image.new("RGB", (WIDTH * SCALE, HEIGHT * SCALE), OFF)
    px = img.load()
    assert px is not None  # narrows the type: Pillow types load() as Optional
    for y in range(HEIGHT):
        for x in range(WIDTH):
            if buffer[(y // 8) * WIDTH + x] >> (y % 8) & 1:
                for dy in range(SCALE - 1):  # a dark gap between pixels, like the panel
                    for dx in range(SCALE - 1):
                        px[x * SCALE + dx, y * SCALE + dy] = ON
    return img


def lit(buffer: bytes) -> int:
    return sum(bin(b).count("1") for b in buffer)


def check_or_write(name: str, buffer: bytes) -> None:
    image = to_image(buffer)
    path = SCREENS / f"{name}.png"
    if os.environ.get("NPS_EDGE_UPDATE_SCREENS") or not path.exists():
        SCREENS.mkdir(parents=True, exist_ok=True)
        image.save(path, optimize=True)
    with Image.open(path) as committed:
        same = committed.convert("RGB").tobytes() == image.tobytes()  # no 400 KB diff on failure
        assert same, (
            f"{path} differs from what the firmware draws now; "
            "rerun with NPS_EDGE_UPDATE_SCREENS=1 and commit the PNGs if the change is intended"
        )


@pytest.mark.slow
def test_screens_prompt_picking_reason_thanks(devices, config, mqtt_broker, tmp_path) -> None:
    cfg = config(
        mqtt_broker,
        reasons=[
            {"code": "wait", "label": "Waiting time"},
            {"code": "price", "label": "Price"},
            {"code": "staff", "label": "Staff"},
            {"code": "broken", "label": "Not working"},
        ],
        sim={"start_ms": T0},
        outbox={"confirm": "broker"},  # no gateway here: the pictures show no backlog
    )
    dev = devices.start(devices.folder("d", cfg))
    dev.wait_for("acked t 1")  # online, the boot telemetry delivered: the idle screen is settled
    steps = [
        ("idle", []),
        ("prompt", [f"at {T0 + 1000}", "trigger cycle_complete tx-1"]),
        ("picking-7", ["turn 1", "turn 2"]),
        ("reason", ["turn -4", "press", "turn 1"]),
        ("thank-you", ["press"]),
        # Thanks (3 s) over, the cool-down (10 s) not: presses are ignored, and the screen says so.
        ("idle-wait", [f"at {T0 + 6000}"]),
    ]
    shots = {}
    for name, lines in steps:
        out = tmp_path / f"{name}.fb"
        dev.send(*lines, f"dump {out}")
        dev.wait_for(f"dumped {out}")
        shots[name] = out.read_bytes()
        if name == "thank-you":  # the next screen must not catch the answer still "1 queued"
            dev.wait_for("acked f ")
    dev.wait_for("saved f ")
    assert len(set(shots.values())) == len(shots)  # every state looks different
    for name, buffer in shots.items():
        assert lit(buffer) > 100, name
        check_or_write(name, buffer)


@pytest.mark.slow
def test_screen_error_on_bad_config(devices) -> None:
    dev = devices.start(
        devices.folder(
            "bad", '{"device_id": "nps-000001", "site": "Store 1", "broker": {"host": "h"}}'
        )
    )
    assert dev.wait() == 2
    buffer = (dev.folder / "fatal.fb").read_bytes()
    assert lit(buffer) > 200
    check_or_write("error", buffer)
