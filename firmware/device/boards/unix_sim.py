"""Simulator board for the MicroPython unix port: framebuf display, stdin input, real sockets.

Flash is the current folder (one per device). Input lines on stdin (see
docs/firmware.md): trigger KIND [REF] [person=HEX role=ROLE at=UNIX_S], turn N,
press, long, at UNIX_MS, set rssi|battery_mv|fw VALUE, telemetry, drain, reboot,
dump PATH, quit. The device reports on stdout, one line each: screen, saved, acked, dumped, fatal.
"""

import select
import sys
import time

import framebuf
from micropython import const
from version import FW_VERSION

_WIDTH = const(128)
_HEIGHT = const(64)


def trigger_event(line):
    """The UART line's parser (trigger.py), loaded per line: a 64 KB heap keeps ~2 KB."""
    import trigger

    ev = trigger.trigger_line(line, "trigger")
    del sys.modules["trigger"]
    return ev or ("bad_trigger",)  # reported: the application counts input_unknown


def out(line):
    sys.stdout.write(line + "\n")


class Display(framebuf.FrameBuffer):
    """The SSD1306's 128x64 1-bit page layout (MONO_VLSB) in RAM."""

    def __init__(self):
        self.buffer = bytearray(_WIDTH * _HEIGHT // 8)
        super().__init__(self.buffer, _WIDTH, _HEIGHT, framebuf.MONO_VLSB)

    def show(self):
        pass


class Clock:
    """Real clock, or a scripted one that moves only on `at` lines (fast-forward).

    ms() is milliseconds since boot and never wraps; unix_ms(ms) is the wall
    clock at that moment, or None while it is not set; at(unix_ms) sets it.
    """

    def __init__(self, scripted, start_ms=None):
        self.scripted = scripted
        self.now = 0
        self.base = start_ms if scripted else time.time_ns() // 1000000
        self.t0 = time.ticks_ms()

    def ms(self):
        if not self.scripted:
            t = time.ticks_ms()
            self.now += time.ticks_diff(t, self.t0)
            self.t0 = t
        return self.now

    def at(self, unix_ms):
        if self.scripted and self.base is not None and unix_ms > self.base + self.now:
            self.now = unix_ms - self.base  # fast-forward
        else:
            self.base = unix_ms - self.now  # set or stepped: ms() stays monotonic

    def unix_ms(self, ms):
        return None if self.base is None else self.base + ms


class Board:
    """Everything the application needs from hardware, simulated (docs/firmware.md, board API)."""

    width = _WIDTH
    height = _HEIGHT
    root = ""
    max_wait_ms = 1000
    default_device_id = None
    reset_cause = "power_on"
    more = False  # input left over from the last events() call
    echo_acked = True  # report("acked") gets the event's JSON

    def __init__(self):
        self.display = Display()
        self.stream = sys.stdin
        self.poller = select.poll()  # one for the whole run: events() is called every loop turn
        self.poller.register(self.stream, select.POLLIN)
        self.chunked = False
        self.pending = b""
        self.rbuf = bytearray(256)
        self.rssi = -60
        self.battery = None
        self.clock = Clock(True)
        self.fw = FW_VERSION

    def configure(self, cfg):
        """Simulator settings from config.json: fw and the "sim" object."""
        sim = cfg["sim"]
        self.rssi = sim.get("rssi", -60)
        self.battery = sim.get("battery_mv")
        self.reset_cause = sim.get("reset_cause", "power_on")
        self.clock = Clock(sim.get("clock", "script") == "script", sim.get("start_ms"))
        # "stream": the host made stdin non-blocking, read it in chunks.
        self.chunked = sim.get("stdin") == "stream"
        self.fw = cfg["fw"] or FW_VERSION

    def link(self):
        """Is the network up? (Wi-Fi on a device; always here.)"""
        return True

    def sense(self):
        """(rssi, battery_mv, temp_c) now; None where not measured."""
        return self.rssi, self.battery, None

    def events(self):
        """Input events since the last call (prompt.py's tuples plus app commands).

        `set` and `dump` act on the board itself, so they wait until the events
        before them were handled: a batch ends just before one of them.
        """
        got = []
        self.more = False
        if self.stream is not None and self.poller.poll(0):
            self.read()
        while True:
            end = self.pending.find(b"\n")
            if end < 0:
                return got
            w = self.pending[:end].decode().split()
            if w and w[0] in ("set", "dump") and got:
                self.more = True
                return got  # a barrier: handle what came before first
            self.pending = self.pending[end + 1 :]
            if not w:
                continue
            cmd = w[0]
            if cmd == "trigger":
                got.append(trigger_event(" ".join(w)))
            elif cmd == "turn" or cmd == "at":
                got.append((cmd, int(w[1])))
            elif cmd == "set" and w[1] == "fw":
                got.append(("fw", w[2]))
                self.more = True
                return got
            elif cmd == "set" and w[1] == "rssi":
                self.rssi = int(w[2])
            elif cmd == "set":
                self.battery = int(w[2])
            elif cmd == "dump":
                with open(w[1], "wb") as f:
                    f.write(self.display.buffer)
                out("dumped " + w[1])
                self.more = True
                return got
            elif cmd == "quit":
                sys.exit(0)
            else:
                got.append((cmd,))  # press, long, telemetry, drain, reboot; others counted

    def read(self):
        buf = self.stream.buffer
        if self.chunked:
            n = buf.readinto(self.rbuf)  # one small buffer for the whole run
            if n is None:
                return
            data = bytes(self.rbuf[:n])
        else:
            data = buf.readline()
        if data:
            self.pending += data
        else:
            self.poller.unregister(self.stream)
            self.stream = None  # stdin closed: deliver what is queued, then stop
            self.pending += b"drain\n"

    def feed(self):
        """Feed the watchdog (none in the simulator)."""

    def reset(self):
        sys.exit(3)

    def fatal(self, title, detail):
        from screens import Screens

        Screens(self.display, _WIDTH, _HEIGHT, None, ()).error(title, detail)
        with open("fatal.fb", "wb") as f:
            f.write(self.display.buffer)
        sys.stderr.write("%s: %s\n" % (title, detail))
        out("fatal " + detail)
        sys.exit(2)

    def log(self, msg):
        sys.stderr.write(msg + "\n")

    def report(self, what, kind, seq, detail):
        """Hook for the simulator host: screen changes, events saved and acknowledged."""
        if what == "acked" and not isinstance(detail, str):
            # detail is the event's JSON (a memoryview into the outbox's record buffer).
            sys.stdout.write("acked %s %d " % (kind, seq))
            sys.stdout.buffer.write(detail)
            sys.stdout.write("\n")
            return
        out("%s %s %d %s" % (what, kind, seq, detail))
