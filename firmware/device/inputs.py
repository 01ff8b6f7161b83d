"""Input decoding shared by the board profiles: pure logic, fed pin levels and times.

Quadrature turns a rotary encoder's A/B levels into detents; Button turns a
debounced level into ("press",) or ("long",). The host machine's trigger
lines are read by trigger.py.
"""

# Valid transitions of the 2-bit Gray code (prev << 2 | now) -> -1, 0, +1.
_STEPS = (0, -1, 1, 0, 1, 0, 0, -1, -1, 0, 0, 1, 0, 1, -1, 0)


class Quadrature:
    """Counts encoder steps; one detent is `per_detent` steps (4 on most encoders)."""

    def __init__(self, per_detent=4):
        self.per_detent = per_detent
        self.state = 0
        self.steps = 0

    def update(self, a, b):
        """Feed the pins' levels (from an IRQ); bounces cancel out in the table."""
        now = (a << 1) | b
        self.steps += _STEPS[(self.state << 2) | now]
        self.state = now

    def take(self):
        """Whole detents turned since the last call (+ clockwise)."""
        detents = int(self.steps / self.per_detent)  # toward zero for both directions
        self.steps -= detents * self.per_detent
        return detents


class Button:
    """Debounced push button: a short press on release, a long one once held long enough."""

    def __init__(self, long_ms=800, debounce_ms=30):
        self.long_ms = long_ms
        self.debounce_ms = debounce_ms
        self.down_since = None
        self.long_sent = False
        self.level = 0
        self.changed_ms = -debounce_ms

    def update(self, pressed, now):
        """Feed the level (True = pressed) and the time in ms; returns an event or None."""
        if pressed != self.level:
            if now - self.changed_ms < self.debounce_ms:
                return None
            self.level = pressed
            self.changed_ms = now
            if pressed:
                self.down_since = now
                self.long_sent = False
                return None
            was_long = self.long_sent
            self.down_since = None
            return None if was_long else ("press",)
        if pressed and not self.long_sent and now - self.down_since >= self.long_ms:
            self.long_sent = True
            return ("long",)
        return None
