"""One outbox record: the line `<seq> <crc32 hex> <json>\\n` on flash (docs/firmware.md,
The outbox), built in and read back through buffers lent to it, so that nothing on the
hot path asks the heap for a block the size of an event.

A line torn by a power cut fails its CRC (decode() returns None) and is skipped.
"""

import binascii
import io

from micropython import const

# The longest record line. Every record is built in, and read back into, a
# buffer of this size allocated once (outbox._BUFFERS; docs/firmware.md, Heap).
RECORD_BYTES = const(1024)
_HEAD = const(20)  # room before the payload for "<seq> <crc32> " (10 + 1 + 8 + 1)


class OutboxError(OSError):
    """The event could not be written to flash."""


def decode(line, start=0, end=None):
    """(seq, payload start, payload end) of the whole, intact record line[start:end], else None."""
    if end is None:
        end = len(line)
    a = line.find(b" ", start, end)
    b = line.find(b" ", a + 1, end) if a >= 0 else -1
    if a < start + 1 or b < 0 or end - start < 2 or line[end - 1] != 10:  # 10: "\n"
        return None
    try:
        seq = int(bytes(line[start:a]))
        crc = int(bytes(line[a + 1 : b]), 16)
    except ValueError:
        return None
    if binascii.crc32(memoryview(line)[b + 1 : end - 1]) != crc:
        return None
    return seq, b + 1, end - 1


class Record(io.IOBase):
    """The fixed buffer an event is serialised into (json.dump writes here) on its way to flash.

    begin(), then the payload written in (write()), then seal(seq): buf[start:n] is the line.
    """

    def __init__(self, buf):
        self.buf = buf
        self.mv = memoryview(buf)
        self.n = _HEAD

    def begin(self):
        """Start a record: the payload is written next, after room left for the head."""
        self.n = _HEAD

    def seal(self, seq):
        """Write the head (seq, the payload's CRC) before the payload and the newline after
        it; the record's first byte in buf."""
        end = self.n
        head = "%d %08x " % (seq, binascii.crc32(self.mv[_HEAD:end]))
        start = _HEAD - len(head)
        self.mv[start:_HEAD] = head.encode()
        self.write(b"\n")
        return start

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        n = self.n
        end = n + len(data)
        if end >= RECORD_BYTES:
            raise OutboxError("event larger than %d bytes" % (RECORD_BYTES - _HEAD - 1))
        self.mv[n:end] = data
        self.n = end
        return len(data)


class Lines:
    """Reads a segment line by line through a buffer it is lent (readinto: no allocation per line).

    After readline(), buf[start:end] is the line (with its newline when whole).
    """

    def __init__(self, path, buf, offset=0):
        self.stream = open(path, "rb")
        if offset:
            self.stream.seek(offset)
        self.buf = buf
        self.mv = memoryview(buf)
        self.start = self.end = 0  # the line handed out last
        self.fill = 0  # bytes of buf holding data read from the file
        self.eof = False

    def readline(self):
        """Length in the file of the next line (0 at the end); a torn tail has no newline.

        A line longer than the buffer is skipped whole and handed out empty
        (decode() refuses it, so it counts as corrupt).
        """
        buf = self.buf
        pos = self.end
        skipped = 0
        while True:
            i = buf.find(b"\n", pos, self.fill)
            if i >= 0:
                self.start = pos
                self.end = i + 1
                if skipped:
                    self.start = self.end  # the overlong line: nothing to decode
                    return skipped + i + 1 - pos
                return i + 1 - pos
            if pos == 0 and self.fill == len(buf):
                skipped += self.fill  # no newline in a full buffer: drop it, keep looking
                self.fill = 0
            elif pos:
                # Move the partial line to the front, then fill up behind it.
                left = self.fill - pos
                buf[0:left] = self.mv[pos : self.fill]
                self.fill = left
                pos = 0
            n = 0 if self.eof else self.stream.readinto(self.mv[self.fill :])
            if not n:
                self.eof = True
                self.start = pos
                self.end = self.fill
                if skipped:
                    self.start = self.end
                return skipped + self.fill - pos
            self.fill += n

    def whole(self):
        """Did the last line end with its newline?"""
        return self.end > self.start and self.buf[self.end - 1] == 10

    def close(self):
        self.stream.close()
