"""The gateway's acks as the device reads and keeps them: `{"ack":[[first,last],...]}` on
the device's cmd topic (docs/protocol.md), and the confirmed ranges the outbox keeps
beyond a gap (docs/firmware.md, The outbox)."""

from micropython import const

# Confirmed ranges kept beyond a gap: forgetting one costs only duplicates, so the
# list is bounded and the highest range goes first.
_RANGES = const(8)
_SEQ_DIGITS = const(10)  # a seq on the wire has at most this many digits


def covered(ranges, seq):
    """Is seq inside one of the sorted (first, last) ranges?"""
    for r in ranges:
        if r[0] <= seq <= r[1]:
            return True
    return False


def add_range(ranges, lo, hi):
    """Merge (lo, hi) into the sorted, disjoint ranges; at most _RANGES, the highest dropped."""
    i = 0
    n = len(ranges)
    while i < n and ranges[i][1] + 1 < lo:
        i += 1
    j = i
    while j < n and ranges[j][0] <= hi + 1:
        lo = min(lo, ranges[j][0])
        hi = max(hi, ranges[j][1])
        j += 1
    ranges[i:j] = [(lo, hi)]
    if len(ranges) > _RANGES:
        ranges.pop()


def parse_ack(p, last):
    """[(first, last), ...] of a gateway ack `{"ack":[[f,l],...]}` (bytes), else None.

    Hand-parsed (no json: no nesting to recurse into, nothing allocated per byte).
    Refused whole: anything else, a range backwards or below 1, or one reaching
    past `last` (the newest seq this device wrote): no confirmation from it is used.
    """
    end = len(p) - 2
    if p[:8] != b'{"ack":[' or p[end:] != b"]}":
        return None
    out = []
    i = 8
    while i < end:
        comma = p.find(b",", i)
        close = p.find(b"]", i)
        if p[i] != 91 or comma < 0 or close < comma:  # 91: "["
            return None
        lo = p[i + 1 : comma]
        hi = p[comma + 1 : close]
        if not (lo.isdigit() and hi.isdigit() and len(hi) <= _SEQ_DIGITS):
            return None
        lo = int(lo)
        hi = int(hi)
        if not 1 <= lo <= hi <= last:
            return None
        out.append((lo, hi))
        i = close + 1
        if i < end:
            if p[i] != 44 or i + 1 == end:  # 44: ",", and none trailing
                return None
            i += 1
    return out
