"""What the store drops, and when: every drop by the documented policy, counted by reason.

- Full (`max_events`, `max_mb`, events and dead letters together): the oldest dead
  letters go first, then telemetry, then feedback (policy.DROP_ORDER), each oldest
  first; `put` applies it after each commit.
- Old: events older than `ttl_days` (`expire`, the intake's periodic check); events
  received while the gateway's clock was not set are never judged old.
- Dead letters beyond `max_dead_letters`, the oldest first.

Each runs in the store's transaction and counts what it dropped in the same one, so
the counters add up across crashes (docs/gateway.md, "Full policy").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.database import DEAD_LETTER_BYTES
from gateway.policy import DROP_ORDER, EXPIRED, expiry_window, over_limit

if TYPE_CHECKING:
    from gateway.store import Store

DEAD_LETTER_OVERFLOW = "dead_letter_overflow"


def enforce_limits(store: Store) -> dict[str, int]:
    """Drop by the documented policy until the store is within its limits: dead
    letters beyond `max_dead_letters`, then while over `max_mb` (events and dead
    letters together) the oldest dead letters, then telemetry, then feedback."""
    dropped: dict[str, int] = {}
    depth, nbytes, rows, dead_bytes = store.counted(
        "depth", "bytes", "dead_letter_rows", "dead_letter_bytes"
    )  # one read, after every commit
    excess = rows - store.limits.max_dead_letters
    while rows and (excess > 0 or nbytes + dead_bytes > store.limits.max_bytes):
        if excess <= 0:  # over the bytes: guess how many rows from their average size
            average = max(dead_bytes // rows, 1)
            excess = -(-(nbytes + dead_bytes - store.limits.max_bytes) // average)
        n, freed = _drop_dead_letters(store, excess)
        rows -= n
        dead_bytes -= freed
        dropped[DEAD_LETTER_OVERFLOW] = dropped.get(DEAD_LETTER_OVERFLOW, 0) + n
        excess = 0
    nbytes += dead_bytes  # what is left for events under max_bytes
    for kind, reason in DROP_ORDER:
        while over_limit(depth, nbytes, store.limits):
            excess = max(depth - store.limits.max_events, 0)
            if nbytes > store.limits.max_bytes:
                average = max(nbytes // max(depth, 1), 1)
                excess = max(excess, -(-(nbytes - store.limits.max_bytes) // average))
            sizes = store.conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE kind = ?"
                " ORDER BY seq LIMIT ?) RETURNING length(body)",
                (kind, excess),
            ).fetchall()
            if not sizes:
                break
            freed = sum(s for (s,) in sizes)
            depth -= len(sizes)
            nbytes -= freed
            dropped[reason] = dropped.get(reason, 0) + len(sizes)
            store.bump({"depth": -len(sizes), "bytes": -freed})
    store.bump({f"dropped:{k}": v for k, v in dropped.items()})
    return dropped


def _drop_dead_letters(store: Store, n: int) -> tuple[int, int]:
    """Delete the n oldest dead letters; returns how many and the bytes they counted."""
    sizes = store.conn.execute(
        "DELETE FROM dead_letters WHERE seq IN"
        f" (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?) RETURNING {DEAD_LETTER_BYTES}",
        (n,),
    ).fetchall()
    freed = sum(size for (size,) in sizes)
    store.bump({"dead_letter_rows": -len(sizes), "dead_letter_bytes": -freed})
    return len(sizes), freed


def expire(store: Store) -> int:
    """Drop events older than the TTL (counted as `expired`); events received
    while the gateway's clock was not set are never judged old."""
    window = expiry_window(store.clock(), store.limits)
    oldest = store.conn.execute("SELECT rx_ts FROM events ORDER BY seq LIMIT 1").fetchone()
    if window is None or oldest is None or oldest[0] >= window[1]:
        return 0
    with store.transaction():
        sizes = store.conn.execute(
            "DELETE FROM events WHERE rx_ts >= ? AND rx_ts < ? RETURNING length(body)",
            window,
        ).fetchall()
        store.bump(
            {
                f"dropped:{EXPIRED}": len(sizes),
                "depth": -len(sizes),
                "bytes": -sum(s for (s,) in sizes),
            }
        )
    return len(sizes)


def trim_dead_letters(store: Store) -> int:
    """Keep at most `max_dead_letters`, dropping the oldest (counted); `put` and
    `done` already do it, this catches a store opened with a lower limit."""
    (rows,) = store.counted("dead_letter_rows")
    excess = rows - store.limits.max_dead_letters
    if excess <= 0:
        return 0
    with store.transaction():
        n, _ = _drop_dead_letters(store, excess)
        store.bump({f"dropped:{DEAD_LETTER_OVERFLOW}": n})
    return n
