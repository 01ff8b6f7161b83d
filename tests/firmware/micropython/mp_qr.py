# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""The one-time link and its QR code, drawn into the OLED's frame buffer for the host to decode."""

import binascii
import sys

import framebuf
import voice

KEY = bytes(range(32))
LINKS = (
    "http://h/v/d/1/x",  # version 1 at 2 px
    "http://192.168.1.10:8000/v/nps-a1b2c3/7/",  # version 3 at 2 px (code appended)
    "http://192.168.1.10:8000/v/nps-a1b2c3/123456/",  # version 4 at 1 px (code appended)
)


def test_hmac_rfc4231_case_2():
    mac = voice.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert (
        binascii.hexlify(mac) == b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    long_key = voice.hmac_sha256(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    )
    assert binascii.hexlify(long_key)[:16] == b"60e431591ee0b67f"


def test_code_and_link():
    code = voice.code(KEY, "nps-a1b2c3", 7)
    assert len(code) == 11 and "=" not in code and "+" not in code and "/" not in code
    print("CODE nps-a1b2c3 7 " + code)
    url = voice.link("http://192.168.1.10:8000/", KEY, "nps-a1b2c3", 7)
    assert url == "http://192.168.1.10:8000/v/nps-a1b2c3/7/" + code


class Oled(framebuf.FrameBuffer):
    def show(self):
        pass


def test_draw_frames_for_the_host():
    buf = bytearray(128 * 64 // 8)
    fb = Oled(buf, 128, 64, framebuf.MONO_VLSB)
    for i, url in enumerate(LINKS):
        if url.endswith("/"):
            seq = int(url.rstrip("/").split("/")[-1])
            url = voice.link(url.split("/v/")[0], KEY, "nps-a1b2c3", seq)
        voice.draw(fb, 128, 64, url)
        assert "qr" not in sys.modules  # the encoder is freed after drawing
        with open("qr%d.fb" % i, "wb") as f:
            f.write(buf)
        print("LINK %d %s" % (i, url))


def test_too_long_is_refused():
    import qr

    assert qr.capacity(3) == 53 and qr.capacity(5) == qr.MAX_BYTES == 106
    try:
        qr.QR(b"x" * 107)
    except ValueError:
        pass
    else:
        raise AssertionError("107 bytes accepted")
    assert qr.QR(b"x" * 53).version == 3 and qr.QR(b"x" * 54).version == 4
