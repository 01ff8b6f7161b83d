"""The voice from a phone: the one-time link after an answer, made offline, shown as a QR code.

Link (docs/firmware.md, "Voice"): {base_url}/v/{device}/{seq}/{code}, code =
base64url (no padding) of the first 8 bytes of HMAC-SHA256(voice key,
"{device}:{seq}"); the server recomputes it from its voice secret.
"""

import binascii
import gc
import hashlib
import sys


def hmac_sha256(key, msg):
    """RFC 2104 HMAC over hashlib.sha256 (MicroPython has no hmac module)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    pad = bytearray(64)
    for i in range(len(key)):
        pad[i] = key[i]
    for i in range(64):
        pad[i] ^= 0x36
    inner = hashlib.sha256(pad)
    inner.update(msg)
    for i in range(64):
        pad[i] ^= 0x36 ^ 0x5C
    outer = hashlib.sha256(pad)
    outer.update(inner.digest())
    return outer.digest()


def code(key, device, seq):
    """The 11-character code that binds a link to one answer (device:seq)."""
    mac = hmac_sha256(key, ("%s:%d" % (device, seq)).encode())
    text = binascii.b2a_base64(mac[:8]).decode().strip().rstrip("=")
    return text.replace("+", "-").replace("/", "_")


def link(base_url, key, device, seq):
    return "%s/v/%s/%d/%s" % (base_url.rstrip("/"), device, seq, code(key, device, seq))


def draw(display, width, height, url):
    """The QR code of url on a lit square at the left, a hint at the right.

    Version 3 (29 modules, up to 53 bytes) fits at 2 px a module (58 px of 64,
    a 3 px lit margin); a longer link falls back to 1 px (versions 4-5, up to
    106 bytes), which a phone reads only from close by.
    """
    import qr

    code = qr.QR(url.encode())
    del sys.modules["qr"]  # the encoder's code goes back to the heap with this screen
    size = code.size
    scale = 2 if size * 2 <= height - 6 else 1
    side = size * scale
    top = (height - side) // 2
    left = top * 2 if side + top * 4 <= width - 56 else top  # room for 7 characters of hint
    lit = left * 2 + side
    display.fill(0)
    display.fill_rect(0, 0, lit, height, 1)  # light modules and quiet zone
    for y in range(size):
        for x in range(size):
            if code.dark(x, y):
                display.fill_rect(left + x * scale, top + y * scale, scale, scale, 0)
    del code
    gc.collect()
    x = lit + 2
    for i, line in enumerate(("Tell us", "more:", "scan", "", "press", "=close")):
        display.text(line[: (width - x) // 8], x, 4 + i * 10, 1)
    display.show()
