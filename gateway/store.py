"""The durable queue: what the store does (the SQLite plumbing is in database.py,
what it drops and when in retention.py, the operator's requeues in requeue.py).

The contract follows ThingsBoard gateway's storage: `put` a batch, `peek` the
oldest events, `done` once the server has confirmed them; nothing is deleted
before that, except by the documented full/TTL policy, and every such drop is
counted by reason. Counters live in the same transactions as the data, so
they add up across crashes: received = stored + dropped + dead-lettered +
forwarded (+ duplicates of events still stored).

Each thread uses its own `Store` on the same file (a connection is handed to
its thread, never used by two at once); WAL lets the forwarder read while the
receiver writes.
"""

from __future__ import annotations

import time
from collections import Counter as Counter_
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway import retention
from gateway.database import Transaction, connect, write_lock
from gateway.policy import (
    INTERNAL,
    MAX_REASON_KEPT,
    THROTTLED,
    Event,
    Limits,
    Presence,
    Rejected,
    lane_of,
)


def dead_letter_bytes(what: str | None, reason: str, payload: bytes) -> int:
    """What one dead letter counts toward `max_mb` (database.DEAD_LETTER_BYTES in SQL)."""
    return len((what or "").encode()) + len(reason.encode()) + len(payload)


def source_of(rejected: Rejected) -> str:
    """`throttle` for a message over its device's rate, `edge` for one the gateway refused."""
    return "throttle" if rejected.reason == THROTTLED else "edge"


@dataclass(frozen=True)
class Row:
    seq: int
    id: str
    body: bytes


@dataclass(frozen=True)
class Peek:
    """The oldest events of one lane, and the last seq looked at: the lane has no other
    event up to `seen` (seqs only grow), so its next look may start after it."""

    rows: list[Row]
    seen: int


@dataclass
class PutResult:
    committed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    throttled: int = 0
    presence: int = 0
    implausible_ts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, other: PutResult) -> None:
        """Sum another commit's result into this one (the intake's one-by-one path)."""
        for name in ("committed", "duplicates", "dead_letters", "throttled", "presence"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.implausible_ts += other.implausible_ts
        for reason, n in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n


@dataclass
class DoneResult:
    forwarded: int = 0
    duplicates: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class Stats:
    depth: int
    bytes: int
    oldest_rx_ts: float | None
    counters: dict[str, int]
    dead_letters: int
    state: dict[str, str]

    def oldest_age(self, now: float) -> float:
        return 0.0 if self.oldest_rx_ts is None else max(0.0, now - self.oldest_rx_ts)

    def dropped(self) -> dict[str, int]:
        return self._prefixed("dropped:")

    def throttled(self) -> dict[str, int]:
        """Device -> messages throttled since the store was created."""
        return self._prefixed("throttled:")

    def _prefixed(self, prefix: str) -> dict[str, int]:
        return {k.removeprefix(prefix): v for k, v in self.counters.items() if k.startswith(prefix)}


class Store:
    def __init__(
        self,
        path: str | Path,
        limits: Limits | None = None,
        *,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.limits = limits or Limits()
        self.clock = clock
        self._lock = write_lock(self.path)
        self.conn = connect(self.path, synchronous=synchronous, readonly=readonly)
        # A lane's events in SQL (peek_lane): one call per row looked at, about 0.3 us.
        self.conn.create_function("lane_of", 2, lane_of, deterministic=True)

    def close(self) -> None:
        self.conn.close()

    # -- writing -----------------------------------------------------------

    def bump(self, counts: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO counters(name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            [(k, v) for k, v in counts.items() if v],
        )

    def transaction(self, write: bool = True) -> Transaction:
        return Transaction(self.conn, self._lock if write else None)

    def put(self, items: Sequence[Event | Presence | Rejected]) -> PutResult:
        """Commit a batch of received messages in one transaction, then apply the limits."""
        events = [i for i in items if isinstance(i, Event)]
        rejected = [i for i in items if isinstance(i, Rejected)]
        presence = [i for i in items if isinstance(i, Presence)]
        throttled = Counter_(r.device for r in rejected if source_of(r) == "throttle")
        result = PutResult(
            presence=len(presence),
            dead_letters=len(rejected) - throttled.total(),
            throttled=throttled.total(),
            implausible_ts=sum(e.implausible_ts for e in events),
        )
        with self.transaction():
            added_bytes = self.insert_events(events, result)
            self.conn.executemany(
                "INSERT INTO dead_letters(at, source, topic, reason, payload, size, device)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.rx_ts, source_of(r), r.topic, r.reason, r.payload, r.size, r.device)
                    for r in rejected
                ],
            )
            self.conn.executemany(
                "INSERT INTO presence(device, online, fw, boot, rx_ts, pending, cfg, cmd,"
                " cmd_error, update_state) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)"
                " ON CONFLICT(device) DO UPDATE SET"
                " online = excluded.online, fw = excluded.fw, boot = excluded.boot,"
                " rx_ts = excluded.rx_ts, pending = 1, cfg = excluded.cfg, cmd = excluded.cmd,"
                " cmd_error = excluded.cmd_error, update_state = excluded.update_state",
                [
                    (
                        p.device,
                        int(p.online),
                        p.fw,
                        p.boot,
                        p.rx_ts,
                        p.cfg,
                        p.cmd,
                        p.cmd_error,
                        p.update,
                    )
                    for p in presence
                ],  # fmt: skip
            )
            self.bump(
                {
                    "received": len(items),
                    "committed": result.committed,
                    "duplicates_received": result.duplicates,
                    "dead_letters:edge": result.dead_letters,
                    "dead_letters:throttled": result.throttled,
                    "dead_letter_rows": len(rejected),
                    "dead_letter_bytes": sum(
                        dead_letter_bytes(r.topic, r.reason, r.payload) for r in rejected
                    ),
                    "presence": len(presence),
                    "implausible_ts": result.implausible_ts,
                    "internal_errors": sum(r.reason.startswith(f"{INTERNAL}:") for r in rejected),
                    "depth": result.committed,
                    "bytes": added_bytes,
                }
                | {f"throttled:{d}": n for d, n in throttled.items()}
            )
            result.dropped = retention.enforce_limits(self)
        return result

    def insert_events(self, events: list[Event], result: PutResult) -> int:
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO events(id, device, kind, rx_ts, body) VALUES (?, ?, ?, ?, ?)",
            [(e.id, e.device, e.kind, e.rx_ts, e.body) for e in events],
        )
        inserted = self.conn.total_changes - before
        if inserted == len(events):
            result.committed = inserted
            return sum(len(e.body) for e in events)
        # Some were already stored (redelivered after a crash): the new rows are the
        # `inserted` highest seqs of this transaction.
        result.committed = inserted
        result.duplicates = len(events) - inserted
        return self.newest_bytes(inserted)

    def newest_bytes(self, n: int) -> int:
        """Bytes of the n newest events (those this transaction inserted)."""
        (total,) = self.conn.execute(
            "SELECT total(length(body)) FROM (SELECT body FROM events ORDER BY seq DESC LIMIT ?)",
            (n,),
        ).fetchone()
        return int(total)

    # -- forwarding --------------------------------------------------------

    def peek(self, limit: int) -> list[Row]:
        """The oldest stored events, in arrival order (hence in order per device)."""
        return self.peek_lane(limit).rows

    def peek_lane(self, limit: int, lane: int = 0, lanes: int = 1, after: int = 0) -> Peek:
        """The oldest `limit` events with seq > `after` whose device is in `lane` of `lanes`
        (policy.lane_of), in arrival order. A seq is never reused (AUTOINCREMENT) and
        writers take turns, so an event committed later always has a higher seq."""
        if lanes == 1:
            rows = self._rows(
                "SELECT seq, id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
            return Peek(rows, rows[-1].seq if rows else after)
        # Up to the newest now: every event below it is committed (or was rolled back).
        (top,) = self.conn.execute("SELECT max(seq) FROM events").fetchone()
        if top is None or top <= after:
            return Peek([], after)
        rows = self._rows(
            "SELECT seq, id, body FROM events WHERE seq > ? AND seq <= ?"
            " AND lane_of(device, ?) = ? ORDER BY seq LIMIT ?",
            (after, top, lanes, lane, limit),
        )
        return Peek(rows, rows[-1].seq if len(rows) == limit else top)

    def _rows(self, sql: str, params: Sequence[object]) -> list[Row]:
        return [Row(seq, id_, body) for seq, id_, body in self.conn.execute(sql, params)]

    def done(
        self, rows: Sequence[Row], rejected: dict[int, str], *, duplicates: int = 0
    ) -> DoneResult:
        """The server answered for these rows: delete them; `rejected` (index -> reason)
        become dead letters. Rows already dropped by the full policy are not counted twice."""
        result = DoneResult(duplicates=duplicates)
        with self.transaction():
            deleted = {
                seq: size
                for seq, size in self.conn.execute(
                    f"DELETE FROM events WHERE seq IN ({','.join('?' * len(rows))})"
                    " RETURNING seq, length(body)",
                    [r.seq for r in rows],
                )
            }
            dead = [
                (self.clock(), r.id, f"server: {rejected[i]}"[:MAX_REASON_KEPT], r.body)
                for i, r in enumerate(rows)
                if i in rejected and r.seq in deleted
            ]
            self.conn.executemany(
                "INSERT INTO dead_letters(at, source, event_id, reason, payload, size)"
                " VALUES (?, 'server', ?, ?, ?, length(?4))",
                dead,
            )
            result.dead_letters = len(dead)
            result.forwarded = len(deleted) - len(dead)
            self.bump(
                {
                    "forwarded": result.forwarded,
                    "duplicates_server": duplicates,
                    "dead_letters:server": len(dead),
                    "dead_letter_rows": len(dead),
                    "dead_letter_bytes": sum(dead_letter_bytes(*d[1:]) for d in dead),
                    "depth": -len(deleted),
                    "bytes": -sum(deleted.values()),
                }
            )
        return result

    def pending_presence(self) -> list[Presence]:
        return [
            Presence(device, bool(online), *rest)
            for device, online, *rest in self.conn.execute(
                "SELECT device, online, fw, boot, rx_ts, cfg, cmd, cmd_error, update_state"
                " FROM presence WHERE pending = 1 ORDER BY rx_ts"
            )
        ]

    def presence_done(self, updates: Iterable[Presence]) -> None:
        """Clear the pending flag unless a newer status arrived meanwhile."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE presence SET pending = 0 WHERE device = ? AND rx_ts = ?",
                [(p.device, p.rx_ts) for p in updates],
            )

    def set_state(self, key: str, value: str | None) -> None:
        with self.transaction():
            if value is None:
                self.conn.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                self.conn.execute(
                    "INSERT INTO state(key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- reading -----------------------------------------------------------

    def counted(self, *names: str) -> tuple[int, ...]:
        """These counters' values, in the order named (0 for one never bumped)."""
        marks = ", ".join("?" * len(names))
        found = dict(
            self.conn.execute(f"SELECT name, value FROM counters WHERE name IN ({marks})", names)
        )
        return tuple(found.get(name, 0) for name in names)

    def stats(self) -> Stats:
        with self.transaction(write=False):
            counters = dict(self.conn.execute("SELECT name, value FROM counters"))
            oldest = self.conn.execute("SELECT rx_ts FROM events ORDER BY seq LIMIT 1").fetchone()
            state = dict(self.conn.execute("SELECT key, value FROM state"))
        return Stats(
            depth=counters.get("depth", 0),
            bytes=counters.get("bytes", 0),
            oldest_rx_ts=None if oldest is None else oldest[0],
            counters=counters,
            dead_letters=counters.get("dead_letter_rows", 0),
            state=state,
        )

    def dead_letters(self, limit: int = 20) -> list[tuple[float, str, str | None, str]]:
        """The newest dead letters: (at, source, topic or event id, reason)."""
        return list(
            self.conn.execute(
                "SELECT at, source, COALESCE(event_id, topic), reason FROM dead_letters"
                " ORDER BY seq DESC LIMIT ?",
                (limit,),
            )
        )

    def ids(self) -> list[str]:
        return [i for (i,) in self.conn.execute("SELECT id FROM events ORDER BY seq")]
