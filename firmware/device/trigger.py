"""The host machine's trigger line (UART, or the simulator's `trigger` command): pure parsing.

One line per transaction: `T KIND [REF] [ref=REF] [person=HEX] [role=ROLE] [at=UNIX_S]`
(docs/firmware.md, "Trigger lines").
"""

# The contract's roles (additions of December 2026); config.py checks its settings against them.
ROLES = ("end_user", "operator", "technician", "buyer", "sponsor")
_HEX = "0123456789abcdef"
_TAGS = ("ref", "person", "role", "at")


def _tag(name, value):
    """A checked `name=value` of a trigger line, or None when the value is bad."""
    if name == "ref":
        return value if 0 < len(value) <= 128 else None
    if name == "person":  # a badge or PIN hash from the host: hex, never the badge itself
        value = value.lower()
        if not 8 <= len(value) <= 64:
            return None
        for ch in value:
            if ch not in _HEX:
                return None
        return value
    if name == "role":
        return value if value in ROLES else None
    if 0 < len(value) <= 12 and value.isdigit():  # at: the transaction's unix seconds
        return int(value)
    return None


def trigger_line(line, prefix="T"):
    """`T KIND [REF] [ref=R] [person=HEX] [role=ROLE] [at=UNIX_S]` -> an event, None if bad.

    The event is ("trigger", kind, ref) or, with person/role/at, ("trigger", kind,
    ref, tags) where tags holds the ones given. A bad or repeated word rejects the line.
    """
    words = line.split()
    if len(words) < 2 or words[0] != prefix or len(words) > 7 or len(words[1]) > 64:
        return None
    ref = None
    tags = None
    for i in range(2, len(words)):
        word = words[i]
        eq = word.find("=")
        if eq < 0:
            if i != 2 or len(word) > 128:
                return None
            ref = word  # the short form: `T KIND REF`
            continue
        name = word[:eq]
        value = _tag(name, word[eq + 1 :]) if name in _TAGS else None
        if value is None:
            return None
        if name == "ref":
            if ref is not None:
                return None
            ref = value
            continue
        if tags is None:
            tags = {}
        elif name in tags:
            return None
        tags[name] = value
    if tags is None:
        return ("trigger", words[1], ref)
    return ("trigger", words[1], ref, tags)
