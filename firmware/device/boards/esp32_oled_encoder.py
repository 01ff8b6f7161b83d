"""Reference hardware: ESP32, 128x64 SSD1306 OLED on I2C, rotary encoder with push button.

The only kind of file that imports machine, network and esp32: it builds the
display, input, clock, radio and sensors and hands them to the application
(docs/firmware.md, board API). Pins are the reference wiring; another board
is another file in this folder (see esp32_buttons.py).

Host machine hook: a UART line `T <kind> [<ref>]` per transaction (UART2,
9600 8N1, RX on GPIO16) or a falling edge on GPIO26 (kind from config
`trigger.gpio_kind`).
"""

import time

import esp32
import machine
import network
from inputs import Button, Quadrature
from ssd1306 import SSD1306_I2C
from trigger import trigger_line
from version import FW_VERSION

PIN_SDA = 21
PIN_SCL = 22
PIN_ENC_A = 32
PIN_ENC_B = 33
PIN_ENC_SW = 25
PIN_TRIGGER = 26
PIN_BATTERY = 35  # through a 1:1 divider (100k/100k)
UART_ID = 2
UART_RX = 16
UART_TX = 17
NTP_EVERY_MS = 6 * 3600 * 1000
UNIX_2000 = 946684800  # seconds from 1970 to 2000, the epoch of older ports

_RESET_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard_reset",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deep_sleep",
    machine.SOFT_RESET: "soft_reset",
}


class Clock:
    """ms() since boot that never wraps; the wall clock once NTP answered."""

    def __init__(self):
        self.now = 0
        self.t0 = time.ticks_ms()
        self.base = None

    def ms(self):
        t = time.ticks_ms()
        self.now += time.ticks_diff(t, self.t0)
        self.t0 = t
        return self.now

    def at(self, unix_ms):
        self.base = unix_ms - self.ms()

    def unix_ms(self, ms):
        return None if self.base is None else self.base + ms

    def sync(self, host):
        """Set the wall clock by NTP (blocks up to about a second; called when idle)."""
        import ntptime

        ntptime.host = host
        try:
            ntptime.settime()
        except OSError:
            return False
        epoch = UNIX_2000 if time.gmtime(0)[0] == 2000 else 0
        self.at((time.time_ns() // 1000000) + epoch * 1000)
        return True


class Board:
    """ESP32 + SSD1306 + rotary encoder (docs/firmware.md, board API)."""

    width = 128
    height = 64
    root = ""
    max_wait_ms = 10  # the button is polled; encoder and trigger pin use IRQs
    stream = None
    more = False

    def __init__(self):
        self.wdt = None
        i2c = machine.I2C(0, scl=machine.Pin(PIN_SCL), sda=machine.Pin(PIN_SDA), freq=400000)
        self.display = SSD1306_I2C(self.width, self.height, i2c)
        self.clock = Clock()
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        mac = self.wlan.config("mac")
        self.default_device_id = "nps-%02x%02x%02x" % (mac[3], mac[4], mac[5])
        self.reset_cause = _RESET_CAUSES.get(machine.reset_cause(), "unknown")
        self.fw = FW_VERSION
        self.pending = []
        self.triggers = 0
        self.uart = None
        self.uart_buf = b""
        self.adc = machine.ADC(machine.Pin(PIN_BATTERY))
        self.adc.atten(machine.ADC.ATTN_11DB)
        self.last_ntp = None
        self.cfg = None
        self.setup_input()

    def setup_input(self):
        self.quad = Quadrature()
        self.button = Button()
        self.sw = machine.Pin(PIN_ENC_SW, machine.Pin.IN, machine.Pin.PULL_UP)
        a = machine.Pin(PIN_ENC_A, machine.Pin.IN, machine.Pin.PULL_UP)
        b = machine.Pin(PIN_ENC_B, machine.Pin.IN, machine.Pin.PULL_UP)

        def on_edge(_pin):
            self.quad.update(a.value(), b.value())

        irq = machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING
        a.irq(on_edge, irq)
        b.irq(on_edge, irq)

    def configure(self, cfg):
        self.cfg = cfg
        wifi = cfg["wifi"]
        if wifi["ssid"]:
            self.wlan.connect(wifi["ssid"], wifi["password"])
        self.uart = machine.UART(UART_ID, 9600, rx=UART_RX, tx=UART_TX)
        pin = machine.Pin(PIN_TRIGGER, machine.Pin.IN, machine.Pin.PULL_UP)
        pin.irq(self.on_trigger_pulse, machine.Pin.IRQ_FALLING)
        # The watchdog starts once the configuration is good: a hang resets the device.
        self.wdt = machine.WDT(timeout=30000)

    def on_trigger_pulse(self, _pin):
        self.triggers += 1  # IRQ context: count only, events() turns it into a trigger

    def link(self):
        up = self.wlan.isconnected()
        if up and self.cfg is not None:
            now = self.clock.ms()
            if self.last_ntp is None or now - self.last_ntp >= NTP_EVERY_MS:
                self.last_ntp = now
                self.clock.sync(self.cfg["ntp_host"])
        return up

    def sense(self):
        rssi = self.wlan.status("rssi") if self.wlan.isconnected() else None
        battery = self.adc.read_uv() * 2 // 1000
        temp = None
        if hasattr(esp32, "mcu_temperature"):
            temp = esp32.mcu_temperature()
        return rssi, battery, temp

    def read_buttons(self, got, now):
        turned = self.quad.take()
        if turned:
            got.append(("turn", turned))
        ev = self.button.update(self.sw.value() == 0, now)
        if ev is not None:
            got.append(ev)

    def events(self):
        got = []
        self.read_buttons(got, self.clock.ms())
        if self.triggers:
            state = machine.disable_irq()
            n = self.triggers
            self.triggers = 0
            machine.enable_irq(state)
            for _ in range(n):
                got.append(("trigger", self.cfg["trigger"]["gpio_kind"], None))
        if self.uart is not None and self.uart.any():
            self.uart_buf += self.uart.read() or b""
            lines = self.uart_buf.split(b"\n")
            self.uart_buf = lines.pop()[-200:]
            for line in lines:
                try:
                    ev = trigger_line(line.decode(), self.cfg["trigger"]["uart_prefix"])
                except UnicodeError:
                    ev = None
                # A line that is not a trigger is reported (the app counts input_unknown).
                got.append(ev or ("bad_uart_line",))
        return got

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def reset(self):
        machine.reset()

    def fatal(self, title, detail):
        from screens import Screens

        print("%s: %s" % (title, detail))
        Screens(self.display, self.width, self.height, None, ()).error(title, detail)
        while True:  # stay on the message; the REPL (Ctrl-C) stays usable for provisioning
            time.sleep(1)

    def log(self, msg):
        print(msg)

    def report(self, what, kind, seq, detail):
        pass
