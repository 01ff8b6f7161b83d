"""What the display shows in each prompt state, drawn on any framebuf-like display.

The display needs fill, text, fill_rect, rect, hline and show (framebuf and
the SSD1306 driver have them); 8x8 font, so 16 characters per 128-pixel line.
"""

import sys

import prompt as pm

CHAR = 8


def wrap(text, width):
    """Split text into lines of at most width characters, on spaces where possible."""
    lines = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


class Screens:
    def __init__(self, display, width, height, texts, reason_labels):
        self.display = display
        self.width = width
        self.height = height
        self.cols = width // CHAR
        self.texts = texts  # prompt.text, prompt.thanks, prompt.why
        self.labels = reason_labels

    def _center(self, text, y, color=1):
        x = max(0, (self.width - len(text) * CHAR) // 2)
        self.display.text(text, x, y, color)

    def _para(self, text, y, max_lines, step=CHAR + 2):
        for line in wrap(text, self.cols)[:max_lines]:
            self._center(line, y)
            y += step
        return y

    def _status(self, link, backlog):
        # Bottom line: link state ("on", "off", "dns" while the broker's name is looked
        # up: the loop stops for that) and how many events wait for the broker.
        self.display.hline(0, self.height - 11, self.width, 1)
        if link is True or link is False:
            link = "on" if link else "off"
        self.display.text(link, 0, self.height - 8, 1)
        if backlog:
            label = "%d queued" % backlog
            self.display.text(label, self.width - len(label) * CHAR, self.height - 8, 1)

    def _scale(self, cursor, y):
        # 0..9 take 11 px each, "10" takes 16: the whole scale fits in 128 px.
        for n in range(11):
            x = n * 11 + 1
            label = str(n)
            width = len(label) * CHAR
            if n == cursor:
                self.display.fill_rect(x - 1, y - 2, width + 2, CHAR + 4, 1)
                self.display.text(label, x, y, 0)
            else:
                self.display.text(label, x, y, 1)

    def _choices(self, title, labels, cursor):
        """A title and a list with the cursor's line inverted; 4 lines show, scrolled to it."""
        d = self.display
        self._center(title, 0)
        first = max(0, cursor - 3)
        for i in range(first, min(len(labels), first + 4)):
            y = 14 + (i - first) * 12
            text = labels[i][: self.cols - 1]
            if i == cursor:
                d.fill_rect(0, y - 2, self.width, CHAR + 3, 1)
                d.text(text, 4, y, 0)
            else:
                d.text(text, 4, y, 1)

    def render(self, machine, online, backlog, now=None):
        """Draw machine's state; online: True, False or "dns"; now: the time, for the cool-down."""
        d = self.display
        d.fill(0)
        state = machine.state
        if state == pm.IDLE:
            self._para(self.texts["text"], 2, 3)
            # During the cool-down a press is ignored: say so rather than invite one.
            waiting = now is not None and machine.cooling(now)
            self._center("please wait" if waiting else "press to rate", 36)
            self._status(online, backlog)
        elif state == pm.PROMPT:
            self._para(machine.text or self.texts["text"], 0, 3, CHAR + 1)
            d.text("not likely", 0, 27, 1)  # the scale's end labels, under 0 and under 10
            self._scale(machine.cursor, 38)
            high = "extremely likely"[: self.cols]
            d.text(high, self.width - len(high) * CHAR, 48, 1)
            hint = "turn to pick" if machine.cursor is None else "press: %d" % machine.cursor
            self._center(hint, 56)
        elif state == pm.REASON:
            self._choices(self.texts["why"], self.labels, machine.cursor)
        elif machine.link is not None:  # thanks, with the QR code of the one-time link
            import voice  # lazily, and freed: drawn a few times a day at most

            voice.draw(d, self.width, self.height, machine.link)
            del sys.modules["voice"]
            return
        elif state == pm.THANKS:
            self._para(self.texts["thanks"], 16, 2)
            if machine.score is not None:
                self._center("you gave %d" % machine.score, 44)
        elif state == pm.ROLE:
            self._choices("You are:", [r.replace("_", " ") for r in machine.roles], machine.cursor)
        elif state == pm.SAVING:
            self._center("saving...", 28)
        else:
            self.error("Not saved", "Please tell staff")
            return
        d.show()

    def error(self, title, detail):
        d = self.display
        d.fill(0)
        d.rect(0, 0, self.width, self.height, 1)
        d.fill_rect(0, 0, self.width, 12, 1)
        d.text(title[: self.cols], 2, 2, 0)
        self._para(detail, 16, 4)
        d.show()
