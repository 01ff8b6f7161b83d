"""SSD1306 OLED driver over an injected I2C bus (the board passes machine.I2C in).

The display is a framebuf.FrameBuffer in the controller's own page layout
(MONO_VLSB), so show() sends the buffer as is. Commands from the SSD1306
datasheet, section 9 (command table).
"""

import framebuf
from micropython import const

_CONTRAST = const(0x81)
_ENTIRE_ON_RESUME = const(0xA4)
_NORMAL = const(0xA6)
_INVERT = const(0xA7)
_DISPLAY_OFF = const(0xAE)
_DISPLAY_ON = const(0xAF)
_MEM_MODE = const(0x20)
_COL_ADDR = const(0x21)
_PAGE_ADDR = const(0x22)
_START_LINE = const(0x40)
_SEG_REMAP = const(0xA1)
_MUX_RATIO = const(0xA8)
_COM_SCAN_DEC = const(0xC8)
_DISP_OFFSET = const(0xD3)
_COM_PINS = const(0xDA)
_CLOCK_DIV = const(0xD5)
_PRECHARGE = const(0xD9)
_VCOM_DESEL = const(0xDB)
_CHARGE_PUMP = const(0x8D)


class SSD1306_I2C(framebuf.FrameBuffer):
    """SSD1306_I2C(width, height, i2c, addr=0x3C): fill, text, ... then show()."""

    def __init__(self, width, height, i2c, addr=0x3C, external_vcc=False):
        self.width = width
        self.height = height
        self.i2c = i2c
        self.addr = addr
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        self._cmd = bytearray(2)
        self._data = [b"\x40", None]  # control byte 0x40: what follows is display RAM
        self.init(external_vcc)

    def command(self, c):
        self._cmd[0] = 0x80  # control byte: one command follows
        self._cmd[1] = c
        self.i2c.writeto(self.addr, self._cmd)

    def init(self, external_vcc=False):
        for c in (
            _DISPLAY_OFF,
            _MEM_MODE,
            0x00,  # horizontal addressing
            _START_LINE | 0x00,
            _SEG_REMAP,  # column 127 is SEG0
            _MUX_RATIO,
            self.height - 1,
            _COM_SCAN_DEC,
            _DISP_OFFSET,
            0x00,
            _COM_PINS,
            0x02 if self.width > 2 * self.height else 0x12,
            _CLOCK_DIV,
            0x80,
            _PRECHARGE,
            0x22 if external_vcc else 0xF1,
            _VCOM_DESEL,
            0x30,
            _CONTRAST,
            0xFF,
            _ENTIRE_ON_RESUME,
            _NORMAL,
            _CHARGE_PUMP,
            0x10 if external_vcc else 0x14,
            _DISPLAY_ON,
        ):
            self.command(c)
        self.fill(0)
        self.show()

    def poweroff(self):
        self.command(_DISPLAY_OFF)

    def poweron(self):
        self.command(_DISPLAY_ON)

    def contrast(self, value):
        self.command(_CONTRAST)
        self.command(value)

    def invert(self, on):
        self.command(_INVERT if on else _NORMAL)

    def show(self):
        x0 = 0
        x1 = self.width - 1
        if self.width != 128:
            # Narrow panels sit in the middle of the controller's 128 columns.
            x0 += (128 - self.width) // 2
            x1 += (128 - self.width) // 2
        for c in (_COL_ADDR, x0, x1, _PAGE_ADDR, 0, self.pages - 1):
            self.command(c)
        self._data[1] = self.buffer
        self.i2c.writevto(self.addr, self._data)
