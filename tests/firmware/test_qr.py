"""The QR code the device draws decodes, with a real decoder, to the one-time link of PROGRAMME.

micropython (-X heapsize=64k) draws each link into the 128x64 frame buffer and
writes it out; zxing-cpp reads the buffer as a picture of the OLED; the code in
the link is checked against an HMAC computed here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import zxingcpp
from PIL import Image

from tests.firmware.test_sampling import run_units

KEY = bytes(range(32))
WIDTH, HEIGHT = 128, 64


def oled_image(buffer: bytes, scale: int = 4) -> Image.Image:
    """The SSD1306 page layout (MONO_VLSB) as a picture: a lit pixel is light."""
    img = Image.new("L", (WIDTH, HEIGHT), 0)
    for x in range(WIDTH):
        for y in range(HEIGHT):
            if buffer[(y // 8) * WIDTH + x] >> (y % 8) & 1:
                img.putpixel((x, y), 255)
    return img.resize((WIDTH * scale, HEIGHT * scale), Image.Resampling.NEAREST)


def host_code(device: str, seq: int) -> str:
    mac = hmac.new(KEY, f"{device}:{seq}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:8]).rstrip(b"=").decode()


def test_qr_on_the_oled_decodes_to_the_link(
    micropython_bin: str, firmware_code: Path, tmp_path: Path
) -> None:
    lines = run_units("mp_qr", micropython_bin, firmware_code, tmp_path)
    [code_line] = [ln for ln in lines if ln.startswith("CODE ")]
    _, device, seq, code = code_line.split()
    assert code == host_code(device, int(seq))
    links = [ln.split(" ", 2)[1:] for ln in lines if ln.startswith("LINK ")]
    assert len(links) == 3
    for index, url in links:
        if "/v/nps-a1b2c3/" in url:
            assert url.endswith("/" + host_code("nps-a1b2c3", int(url.split("/")[-2])))
        frame = (tmp_path / f"qr{index}.fb").read_bytes()
        found = zxingcpp.read_barcodes(oled_image(frame))
        assert [r.text for r in found] == [url], (index, url, found)
        assert found[0].format == zxingcpp.BarcodeFormat.QRCode


def test_a_damaged_frame_does_not_decode_to_the_link(
    micropython_bin: str, firmware_code: Path, tmp_path: Path
) -> None:
    """The check can fail: a frame with its finder patterns wiped reads as nothing."""
    run_units("mp_qr", micropython_bin, firmware_code, tmp_path)
    frame = bytearray((tmp_path / "qr1.fb").read_bytes())
    for page in range(8):
        for x in range(0, 24):
            frame[page * WIDTH + x] = 0xFF
    assert zxingcpp.read_barcodes(oled_image(bytes(frame))) == []
