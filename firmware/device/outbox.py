"""The durable outbox: every event is on flash before the device says "thank you".

Layout under root (docs/firmware.md): one folder per queue, `f` (FEEDBACK,
feedback) and `t` (TELEMETRY), of append-only segment files named by the first seq
they hold. A record is one line `<seq> <crc32 hex> <json>\\n`; a line torn by
a power cut fails its CRC and is skipped, and appending resumes in a new
segment. An event stays until it is confirmed: by the gateway's ack on the
device's cmd topic (`{"ack":[[first,last],...]}`, docs/protocol.md), or, with
`gateway=False`, by the broker's PUBACK. A PUBACK only ends the event's flight;
`rewind()` hands out again what was PUBACKed and never confirmed (the broker may
die holding it). `ack.json` keeps, per queue, the highest seq confirmed with
everything before it; it is rewritten only before a wholly confirmed segment is
deleted and at a clean shutdown, so after a power cut the device may re-send up
to a segment of confirmed events: harmless, they keep their id. When the outbox
is full the oldest telemetry segment goes first, feedback only when no
telemetry is left, and the loss is counted.
"""

import os

import persist
from acks import add_range, covered
from micropython import const
from records import RECORD_BYTES, Lines, OutboxError, Record, decode

# Queue codes: the folder names on flash and the kind in the board's reports.
FEEDBACK = const("f")
TELEMETRY = const("t")
_QUEUES = const((FEEDBACK, TELEMETRY))

# Allocated once, when this module loads (main.py loads it first): the record
# buffer, then the two queues' read buffers.
_BUFFERS = (bytearray(RECORD_BYTES), bytearray(RECORD_BYTES), bytearray(RECORD_BYTES))

# A segment is a list [first seq (its file name), last seq, size in bytes]: a
# class instance costs about 40% more heap per segment, and a full outbox has 64.
_FIRST = const(0)
_LAST = const(1)
_SIZE = const(2)


class Queue:
    """Append-only segments of one kind of event, read back in order."""

    def __init__(self, path, acked, buf, confirmed):
        self.path = path
        self.acked = acked  # every record of this queue up to this seq is confirmed
        self.segs = []  # [_FIRST, _LAST, _SIZE] lists, oldest first
        self.torn = False
        self.writer = None
        self.reader = None
        self.buf = buf  # the reader's, for the whole run
        self.cursor = None  # [first seq of segment, byte offset] of the next record to read
        self.trim = None  # [first seq of segment, byte offset] of the first record past acked
        self.next = None  # that record's seq; None: there is none; 0: not known yet
        self.corrupt = 0  # records that failed their CRC, at boot or when read
        self.cached = None  # (seq, payload memoryview, segment, offset) of the next record
        self.sent = []  # seqs handed to the publisher and not yet PUBACKed (the window)
        self.confirmed = confirmed  # the outbox's confirmed ranges beyond a gap
        persist.ensure_dir(path)

    def file(self, first):
        return "%s/%010d" % (self.path, first)

    def records(self, first):
        """Yields (seq or None when corrupt, line length) of every line of segment `first`."""
        self.forget()  # the read buffer is lent to this walk
        f = Lines(self.file(first), self.buf)
        try:
            while True:
                n = f.readline()
                if not n:
                    return
                rec = decode(f.buf, f.start, f.end)
                yield (None if rec is None else rec[0]), n
        finally:
            f.close()

    def scan(self):
        """At boot: segments, their last seq, a torn tail, where to trim; the unconfirmed count."""
        unconfirmed = 0
        names = sorted(int(n) for n in persist.listdir(self.path) if n.isdigit())
        for first in names:
            seg = [first, first, 0]
            for seq, n in self.records(first):
                at = seg[_SIZE]
                seg[_SIZE] += n
                self.torn = seq is None
                if seq is None:
                    self.corrupt += 1
                    continue
                seg[_LAST] = seq
                if seq > self.acked:
                    unconfirmed += 1
                    if self.trim is None:
                        self.trim = [first, at]
                        self.next = seq
            self.segs.append(seg)
        if self.trim is None and self.segs:
            self.trim = [self.segs[-1][_FIRST], self.segs[-1][_SIZE]]  # all confirmed
        if self.trim is not None:
            self.cursor = list(self.trim)
        return unconfirmed

    def append(self, seq, rec, start, segment_bytes):
        """Write rec.buf[start:rec.n] (head, payload, newline) as one record."""
        segs = self.segs
        if self.torn or not segs or segs[-1][_SIZE] >= segment_bytes:
            # A new segment: never append after a torn line; keep segments small.
            self.close()
            segs.append([seq, seq, 0])
            self.torn = False
            if self.cursor is None:
                self.cursor = [seq, 0]
                self.trim = [seq, 0]
        seg = segs[-1]
        if self.writer is None:
            self.writer = open(self.file(seg[_FIRST]), "ab")
        try:
            # One record, one write, one flush: one flash program per event.
            self.writer.write(rec.mv[start : rec.n])
            self.writer.flush()
        except OSError:
            self.torn = True
            self.close()
            raise
        seg[_LAST] = seq
        seg[_SIZE] += rec.n - start
        if self.next is None:
            self.next = seq

    def close(self):
        for f in (self.writer, self.reader):
            if f is not None:
                f.close()
        self.writer = self.reader = None

    def forget(self):
        """Give up the read buffer: close the reader, read the cached record again later."""
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.cached is not None:
            self.cursor = [self.cached[2], self.cached[3]]
            self.cached = None

    def peek(self):
        """(seq, payload, segment, offset) of the next record not yet handed out, or None.

        payload is a memoryview into this queue's read buffer, valid until the next read.
        """
        while self.cached is None and self.cursor is not None:
            cur = self.cursor
            if self.reader is None:
                self.reader = Lines(self.file(cur[0]), self.buf, cur[1])
            r = self.reader
            n = r.readline()
            newest = self.segs[-1][_FIRST] == cur[0]
            if not n or (newest and not r.whole() and not self.torn):
                r.close()
                self.reader = None
                if newest:
                    return None  # caught up with the writer; read on from here later
                self.cursor = self.after(cur[0])
                continue
            at = cur[1]
            cur[1] += n
            rec = decode(r.buf, r.start, r.end)
            if rec is None:
                self.corrupt += 1
                continue
            seq = rec[0]
            if seq > self.acked and seq not in self.sent and not covered(self.confirmed, seq):
                self.cached = (seq, r.mv[rec[1] : rec[2]], cur[0], at)
        return self.cached

    def after(self, first):
        """[first seq, 0] of the segment after `first`, or None."""
        for seg in self.segs:
            if seg[_FIRST] > first:
                return [seg[_FIRST], 0]
        return None

    def walk(self, buf):
        """Move the trim point over confirmed records, reading them into buf; how many."""
        done = 0
        while self.trim is not None:
            first, offset = self.trim
            newest = self.segs[-1][_FIRST] == first
            f = Lines(self.file(first), buf, offset)
            try:
                while True:
                    n = f.readline()
                    if not n or (newest and not f.whole() and not self.torn):
                        break
                    rec = decode(f.buf, f.start, f.end)
                    if rec is not None and rec[0] > self.acked:
                        if not covered(self.confirmed, rec[0]):
                            self.trim = [first, offset]
                            self.next = rec[0]
                            return done
                        self.acked = rec[0]
                        done += 1
                    offset += n
            finally:
                f.close()
            if newest:
                self.trim = [first, offset]
                self.next = None  # every record is confirmed
                return done
            self.trim = self.after(first)
        return done

    def drop(self, first, unread):
        """Delete segment `first`; with unread=True return how many records past the trim
        point it held and how many of those were not confirmed (lost)."""
        gone = lost = 0
        if unread:
            for seq, _ in self.records(first):
                if seq is not None and seq > self.acked:
                    gone += 1
                    lost += not covered(self.confirmed, seq)
        seg = self.segs.pop(0)
        if unread:
            # Nothing of this queue up to the segment's end is left to send or confirm.
            self.acked = max(self.acked, seg[_LAST])
            self.sent = [s for s in self.sent if s > seg[_LAST]]
            self.next = 0 if self.segs else None
        if not self.segs:
            self.close()
        if self.trim is not None and self.trim[0] == first:
            self.trim = self.after(first)
        if self.cursor is not None and self.cursor[0] == first:
            if self.reader is not None:
                self.reader.close()
                self.reader = None
            self.cached = None
            self.cursor = self.after(first)
        os.remove(self.file(first))
        return gone, lost


class Outbox:
    """Bounded, append-only, crash-safe queue of events waiting to be confirmed.

    gateway=True: an event is confirmed by the gateway's ack (confirm()); the
    broker's PUBACK (ack()) only ends its flight. gateway=False: the PUBACK confirms.
    """

    def __init__(self, root, max_bytes, segment_bytes, gateway=False):
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.gateway = gateway
        self.state_path = root + "/ack.json"
        self.record = Record(_BUFFERS[0])  # events are built here, and re-read here to re-send
        persist.ensure_dir(root)
        state = persist.read_json(self.state_path, {})
        self.dropped = {
            FEEDBACK: state.get("dropped_f", 0),
            TELEMETRY: state.get("dropped_t", 0),
        }
        self.depth = 0  # events on flash not confirmed yet
        self.nbytes = 0
        self.dirty = False
        self.idle = False  # True once nothing was left to hand out (until the next append)
        self.confirmed = []  # (first, last) seqs confirmed beyond the trim points
        self.queues = {}
        hi = state.get("seq", 0)
        for i, kind in enumerate(_QUEUES):
            q = Queue(root + "/" + kind, state.get(kind, 0), _BUFFERS[i + 1], self.confirmed)
            self.depth += q.scan()
            self.queues[kind] = q
            for seg in q.segs:
                self.nbytes += seg[_SIZE]
                hi = max(hi, seg[_LAST])
            hi = max(hi, q.acked)
        self.next_seq = hi + 1
        self.corrupt = self.queues[FEEDBACK].corrupt + self.queues[TELEMETRY].corrupt

    def append(self, kind, make_payload):
        """Write one event durably; returns its seq.

        make_payload(seq) writes the event's JSON into self.record (or returns
        it as str/bytes). The seq is never reused, even when the write fails
        part way: a half-written record must not share its id with a later event.
        """
        seq = self.next_seq
        rec = self.record
        rec.begin()
        payload = make_payload(seq)
        if payload is not None:
            rec.write(payload)
        start = rec.seal(seq)
        size = rec.n - start
        while self.nbytes + size > self.max_bytes:
            self.make_room()
        self.next_seq = seq + 1
        try:
            self.queues[kind].append(seq, rec, start, self.segment_bytes)
        except OSError as err:
            raise OutboxError("outbox write failed: %s" % err) from None
        self.nbytes += size
        self.depth += 1
        self.idle = False
        return seq

    def make_room(self):
        """Full: drop the oldest telemetry segment, feedback only when no telemetry is left."""
        for kind in (TELEMETRY, FEEDBACK):
            q = self.queues[kind]
            if q.segs:
                seg = q.segs[0]
                gone, lost = q.drop(seg[_FIRST], True)
                self.nbytes -= seg[_SIZE]
                q.forget()  # the walk past what was confirmed beyond the gap reads into q.buf
                self.depth -= gone + q.walk(q.buf)
                self.dropped[kind] += lost
                self.save()
                return
        raise OutboxError("event larger than the whole outbox")

    def next_unsent(self):
        """(kind, seq, payload, segment, offset) of the oldest event not yet handed out, or None.

        payload is a memoryview into a read buffer: publish it before the next call.
        """
        best = None
        best_kind = None
        for kind in _QUEUES:
            rec = self.queues[kind].peek()
            if rec is not None and (best is None or rec[0] < best[0]):
                best = rec
                best_kind = kind
        # Records that failed their CRC since boot, in every queue.
        self.corrupt = self.queues[FEEDBACK].corrupt + self.queues[TELEMETRY].corrupt
        if best is None:
            self.idle = True
            return None
        q = self.queues[best_kind]
        q.cached = None
        q.sent.append(best[0])
        return best_kind, best[0], best[1], best[2], best[3]

    def read_at(self, kind, segment, offset):
        """The payload of the record at `offset` in segment `segment`, read into self.record.

        None when it is gone (its segment was dropped to make room) or no longer intact.
        """
        q = self.queues[kind]
        try:
            f = Lines(q.file(segment), self.record.buf, offset)
        except OSError:
            return None
        try:
            f.readline()
        finally:
            f.close()
        rec = decode(f.buf, f.start, f.end)
        return None if rec is None else f.mv[rec[1] : rec[2]]

    def ack(self, kind, seq):
        """The broker's PUBACK for seq: no longer in flight; confirmed unless by the gateway."""
        q = self.queues[kind]
        if seq in q.sent:
            q.sent.remove(seq)
            if not self.gateway:
                self.confirm(((seq, seq),))

    def confirm(self, ranges):
        """These (first, last) seqs are held by the next hop: trim what they complete.

        Returns how many events were confirmed; segments wholly confirmed are deleted.
        """
        confirmed = self.confirmed
        for r in ranges:
            add_range(confirmed, r[0], r[1])
        done = 0
        low = self.next_seq  # no queue needs a range below this any more
        for q in self.queues.values():
            if q.next == 0 or (q.next is not None and covered(confirmed, q.next)):
                done += q.walk(self.record.buf)
            if q.next is not None:
                low = min(low, q.next or q.acked + 1)
            while len(q.segs) > 1 and q.segs[0][_LAST] <= q.acked:
                self.save()  # the pointer first: a crash must not resurrect deleted records
                seg = q.segs[0]
                q.drop(seg[_FIRST], False)
                self.nbytes -= seg[_SIZE]
        while confirmed and confirmed[0][1] < low:
            confirmed.pop(0)
        if done:
            self.depth -= done
            self.dirty = True
        return done

    def floor(self):
        """The lowest trim point of the queues holding unconfirmed events, None when none do."""
        low = None
        for q in self.queues.values():
            if q.next is not None and (low is None or q.acked < low):
                low = q.acked
        return low

    def rewind(self):
        """Hand out again every event neither confirmed nor in flight (after a reconnect or
        a wait for the gateway in vain): the broker may have lost what it PUBACKed."""
        for q in self.queues.values():
            q.forget()
            q.cursor = None if q.trim is None else list(q.trim)  # peek skips the confirmed
        self.idle = False

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
