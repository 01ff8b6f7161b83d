"""ESP32 + SSD1306 with three buttons instead of an encoder: up, down, OK (long OK = back).

A second board profile in one file: everything but the input comes from the
reference board.
"""

import machine
from inputs import Button

from boards.esp32_oled_encoder import Board as EncoderBoard

PIN_UP = 32
PIN_DOWN = 33
PIN_OK = 25


class Board(EncoderBoard):
    def setup_input(self):
        pull = machine.Pin.PULL_UP
        self.pins = [machine.Pin(p, machine.Pin.IN, pull) for p in (PIN_UP, PIN_DOWN, PIN_OK)]
        self.buttons = [Button(), Button(), Button()]

    def read_buttons(self, got, now):
        up, down, ok = (b.update(p.value() == 0, now) for b, p in zip(self.buttons, self.pins))
        if up is not None and up[0] == "press":
            got.append(("turn", 1))
        if down is not None and down[0] == "press":
            got.append(("turn", -1))
        if ok is not None:
            got.append(ok)
