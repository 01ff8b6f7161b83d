"""The durable outbox: every event is on flash before the device says "thank you".

Layout under root (docs/firmware.md): one folder per queue, `f` (FEEDBACK,
feedback) and `t` (TELEMETRY), of append-only segment files named by the first seq
they hold. A record is one line `<seq> <crc32 hex> <json>\\n`; a line torn by
a power cut fails its CRC and is skipped, and appending resumes in a new
segment. `ack.json` keeps, per queue, the highest seq the broker confirmed
with everything before it; it is rewritten only before a wholly confirmed
segment is deleted and at a clean shutdown, so after a power cut the device
may re-send up to a segment of confirmed events: harmless, they keep their id.
When the outbox is full the oldest telemetry segment goes first, feedback
only when no telemetry is left, and the loss is counted.
"""

import binascii
import os

import persist
from micropython import const

# Queue codes: the folder names on flash and the kind in the board's reports.
FEEDBACK = const("f")
TELEMETRY = const("t")
_QUEUES = const((FEEDBACK, TELEMETRY))

_CHUNK = const(512)  # bytes read from a segment at a time

# A segment is a list [first seq (its file name), last seq, size in bytes]: a
# class instance costs about 40% more heap per segment, and a full outbox has 64.
_FIRST = const(0)
_LAST = const(1)
_SIZE = const(2)


def decode(line):
    """(seq, payload) of a whole, intact record line, else None."""
    a = line.find(b" ")
    b = line.find(b" ", a + 1)
    if a < 1 or b < 0 or line[-1:] != b"\n":
        return None
    try:
        seq = int(line[:a])
        crc = int(line[a + 1 : b], 16)
    except ValueError:
        return None
    payload = line[b + 1 : -1]
    if binascii.crc32(payload) != crc:
        return None
    return seq, payload


class Lines:
    """Reads a segment line by line in _CHUNK-byte chunks (a file's readline reads byte by byte)."""

    def __init__(self, path, offset=0):
        self.stream = open(path, "rb")
        if offset:
            self.stream.seek(offset)
        self.buf = b""

    def readline(self):
        """The next line with its newline; a torn tail without it; b"" at the end."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = self.buf[: i + 1]
                self.buf = self.buf[i + 1 :]
                return line
            data = self.stream.read(_CHUNK)
            if not data:
                line = self.buf
                self.buf = b""
                return line
            self.buf = self.buf + data if self.buf else data

    def close(self):
        self.stream.close()


class OutboxError(OSError):
    """The event could not be written to flash."""


class Queue:
    """Append-only segments of one kind of event, read back in order."""

    def __init__(self, path, acked):
        self.path = path
        self.acked = acked  # every record of this queue up to this seq is confirmed
        self.segs = []  # [_FIRST, _LAST, _SIZE] lists, oldest first
        self.torn = False
        self.writer = None
        self.reader = None
        self.cursor = None  # [first seq of segment, byte offset] of the next record to read
        self.corrupt = 0  # records that failed their CRC, at boot or when read
        self.cached = None
        self.sent = []  # seqs handed to the publisher and not yet confirmed, in order
        self.early = []  # confirmed out of order
        persist.ensure_dir(path)

    def file(self, first):
        return "%s/%010d" % (self.path, first)

    def scan(self):
        """At boot: segments, their last seq, a torn tail; returns the unconfirmed count."""
        unconfirmed = 0
        names = sorted(int(n) for n in persist.listdir(self.path) if n.isdigit())
        for first in names:
            seg = [first, first, 0]
            f = Lines(self.file(first))
            while True:
                line = f.readline()
                if not line:
                    break
                seg[_SIZE] += len(line)
                rec = decode(line)
                self.torn = rec is None
                if rec is None:
                    self.corrupt += 1
                    continue
                seg[_LAST] = rec[0]
                if rec[0] > self.acked:
                    unconfirmed += 1
            f.close()
            self.segs.append(seg)
        if self.segs:
            self.cursor = [self.segs[0][_FIRST], 0]
        return unconfirmed

    def append(self, seq, head, payload, segment_bytes):
        segs = self.segs
        if self.torn or not segs or segs[-1][_SIZE] >= segment_bytes:
            # A new segment: never append after a torn line; keep segments small.
            self.close()
            segs.append([seq, seq, 0])
            self.torn = False
            if self.cursor is None:
                self.cursor = [seq, 0]
        seg = segs[-1]
        if self.writer is None:
            self.writer = open(self.file(seg[_FIRST]), "ab")
        try:
            # One record, one write, one flush: one flash program per event.
            self.writer.write(head + payload + "\n")
            self.writer.flush()
        except OSError:
            self.torn = True
            self.close()
            raise
        seg[_LAST] = seq
        seg[_SIZE] += len(head) + len(payload) + 1

    def close(self):
        for f in (self.writer, self.reader):
            if f is not None:
                f.close()
        self.writer = self.reader = None

    def peek(self):
        """The next record not yet handed out, (seq, payload), or None."""
        while self.cached is None and self.cursor is not None:
            cur = self.cursor
            if self.reader is None:
                self.reader = Lines(self.file(cur[0]), cur[1])
            line = self.reader.readline()
            newest = self.segs[-1][_FIRST] == cur[0]
            if not line or (newest and line[-1:] != b"\n" and not self.torn):
                self.reader.close()
                self.reader = None
                if newest:
                    return None  # caught up with the writer; read on from here later
                self.cursor = self.after(cur[0])
                continue
            cur[1] += len(line)
            rec = decode(line)
            if rec is None:
                self.corrupt += 1
            elif rec[0] > self.acked:
                self.cached = rec
        return self.cached

    def after(self, first):
        """[first seq, 0] of the segment after `first`, or None."""
        for seg in self.segs:
            if seg[_FIRST] > first:
                return [seg[_FIRST], 0]
        return None

    def ack(self, seq):
        """Record a confirmation; False when seq was not outstanding here."""
        sent = self.sent
        if seq not in sent:
            return False
        if seq != sent[0]:
            self.early.append(seq)
            return True
        sent.pop(0)
        self.acked = seq
        while sent and sent[0] in self.early:
            self.acked = sent.pop(0)
            self.early.remove(self.acked)
        return True

    def drop(self, first, unread):
        """Delete segment `first`; with unread=True return how many unconfirmed records it lost."""
        lost = 0
        if unread:
            f = Lines(self.file(first))
            while True:
                line = f.readline()
                if not line:
                    break
                rec = decode(line)
                if rec is not None and rec[0] > self.acked and rec[0] not in self.early:
                    lost += 1
            f.close()
        seg = self.segs.pop(0)
        if unread:
            # Nothing of this queue up to the segment's end is left to send or confirm.
            self.acked = max(self.acked, seg[_LAST])
            self.sent = [s for s in self.sent if s > seg[_LAST]]
            self.early = [s for s in self.early if s > seg[_LAST]]
        if not self.segs:
            self.close()
        if self.cursor is not None and self.cursor[0] == first:
            if self.reader is not None:
                self.reader.close()
                self.reader = None
            self.cached = None
            self.cursor = self.after(first)
        os.remove(self.file(first))
        return lost


class Outbox:
    """Bounded, append-only, crash-safe queue of events waiting for a PUBACK."""

    def __init__(self, root, max_bytes, segment_bytes):
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.state_path = root + "/ack.json"
        persist.ensure_dir(root)
        state = persist.read_json(self.state_path, {})
        self.dropped = {
            FEEDBACK: state.get("dropped_f", 0),
            TELEMETRY: state.get("dropped_t", 0),
        }
        self.depth = 0
        self.nbytes = 0
        self.dirty = False
        self.queues = {}
        hi = state.get("seq", 0)
        for kind in _QUEUES:
            q = Queue(root + "/" + kind, state.get(kind, 0))
            self.depth += q.scan()
            self.queues[kind] = q
            for seg in q.segs:
                self.nbytes += seg[_SIZE]
                hi = max(hi, seg[_LAST])
            hi = max(hi, q.acked)
        self.next_seq = hi + 1
        self.corrupt = self.queues[FEEDBACK].corrupt + self.queues[TELEMETRY].corrupt

    def append(self, kind, make_payload):
        """Write one event durably; make_payload(seq) builds its JSON. Returns the seq.

        The seq is never reused, even when the write fails part way: a
        half-written record must not share its id with a later event.
        """
        seq = self.next_seq
        payload = make_payload(seq)
        head = "%d %08x " % (seq, binascii.crc32(payload))
        size = len(head) + len(payload) + 1
        while self.nbytes + size > self.max_bytes:
            self.make_room()
        self.next_seq = seq + 1
        try:
            self.queues[kind].append(seq, head, payload, self.segment_bytes)
        except OSError as err:
            raise OutboxError("outbox write failed: %s" % err) from None
        self.nbytes += size
        self.depth += 1
        return seq

    def make_room(self):
        """Full: drop the oldest telemetry segment, feedback only when no telemetry is left."""
        for kind in (TELEMETRY, FEEDBACK):
            q = self.queues[kind]
            if q.segs:
                seg = q.segs[0]
                lost = q.drop(seg[_FIRST], True)
                self.nbytes -= seg[_SIZE]
                self.depth -= lost
                self.dropped[kind] += lost
                self.save()
                return
        raise OutboxError("event larger than the whole outbox")

    def next_unsent(self):
        """(kind, seq, payload) of the oldest event not yet handed out, or None."""
        best = None
        for kind in _QUEUES:
            rec = self.queues[kind].peek()
            if rec is not None and (best is None or rec[0] < best[1][0]):
                best = (kind, rec)
        # Records that failed their CRC since boot, in every queue.
        self.corrupt = self.queues[FEEDBACK].corrupt + self.queues[TELEMETRY].corrupt
        if best is None:
            return None
        q = self.queues[best[0]]
        q.cached = None
        q.sent.append(best[1][0])
        return best[0], best[1][0], best[1][1]

    def ack(self, kind, seq):
        """The broker confirmed seq: forget it; delete segments wholly confirmed."""
        q = self.queues[kind]
        if not q.ack(seq):
            return
        self.depth -= 1
        self.dirty = True
        while len(q.segs) > 1 and q.segs[0][_LAST] <= q.acked:
            self.save()  # the pointer first: a crash must not resurrect deleted records
            seg = q.segs[0]
            q.drop(seg[_FIRST], False)
            self.nbytes -= seg[_SIZE]

    def save(self):
        persist.write_json(
            self.state_path,
            {
                "f": self.queues[FEEDBACK].acked,
                "t": self.queues[TELEMETRY].acked,
                "seq": self.next_seq - 1,
                "dropped_f": self.dropped[FEEDBACK],
                "dropped_t": self.dropped[TELEMETRY],
            },
        )
        self.dirty = False

    def close(self):
        for q in self.queues.values():
            q.close()
        if self.dirty:
            self.save()
