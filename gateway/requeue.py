"""Dead letters back into the queue, once an operator judged them worth another try
(`nps-edge gateway requeue`): what the server rejected, after a fix on its side, and
what the throttle held, after a device's burst was judged genuine.

Requeued events go to the tail with their original `rx_ts`, and the counters move
with them in the same transaction.
"""

from __future__ import annotations

from gateway.database import DEAD_LETTER_BYTES
from gateway.policy import Event, admit
from gateway.store import PutResult, Store


def server_dead_letters(store: Store) -> int:
    """Put the events the server rejected back in the queue (after a server-side fix).

    They go to the tail, in their original order and with their original
    `rx_ts`; edge dead letters are invalid payloads and stay where they are.
    """
    with store.transaction():
        before = store.conn.total_changes
        store.conn.execute(
            "INSERT OR IGNORE INTO events(id, device, kind, rx_ts, body)"
            " SELECT event_id, json_extract(payload, '$.device'),"
            " json_extract(payload, '$.type'), json_extract(payload, '$.rx_ts'), payload"
            " FROM dead_letters"
            " WHERE source = 'server' AND json_valid(payload) ORDER BY seq"
        )
        inserted = store.conn.total_changes - before
        sizes = store.conn.execute(
            "DELETE FROM dead_letters WHERE source = 'server' AND json_valid(payload)"
            f" RETURNING {DEAD_LETTER_BYTES}"
        ).fetchall()
        removed = len(sizes)
        store.bump(
            {
                "requeued": inserted,
                "dead_letter_rows": -removed,
                "dead_letter_bytes": -sum(size for (size,) in sizes),
                "dead_letters:server": -removed,
                "duplicates_received": removed - inserted,
                "depth": inserted,
                "bytes": store.newest_bytes(inserted),
            }
        )
    return inserted


def throttled(store: Store, root: str, device: str | None = None) -> int:
    """Put throttled messages that are valid events back in the queue (after the
    operator judged the device's burst genuine), judged again as on receipt and
    with their original `rx_ts`; the rest stay dead letters."""
    with store.transaction():
        rows = store.conn.execute(
            "SELECT seq, topic, payload, at FROM dead_letters WHERE source = 'throttle'"
            " AND (?1 IS NULL OR device = ?1) ORDER BY seq",
            (device,),
        ).fetchall()
        events, seqs = [], []
        for seq, topic, payload, at in rows:
            judged = admit(topic, payload, at, root)
            if isinstance(judged, Event):
                events.append(judged)
                seqs.append(seq)
        result = PutResult()
        added = store.insert_events(events, result)
        freed = 0
        for start in range(0, len(seqs), 500):  # under SQLite's 32,766 parameters
            chunk = seqs[start : start + 500]
            freed += sum(
                size
                for (size,) in store.conn.execute(
                    f"DELETE FROM dead_letters WHERE seq IN ({','.join('?' * len(chunk))})"
                    f" RETURNING {DEAD_LETTER_BYTES}",
                    chunk,
                )
            )
        store.bump(
            {
                "requeued": result.committed,
                "dead_letter_rows": -len(seqs),
                "dead_letter_bytes": -freed,
                "dead_letters:throttled": -len(seqs),
                "duplicates_received": result.duplicates,
                "depth": result.committed,
                "bytes": added,
            }
        )
    return result.committed
