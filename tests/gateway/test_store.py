"""The SQLite store, real SQLite in a temp dir: order, idempotence, limits, counters."""

from __future__ import annotations

import sqlite3

import pytest

from gateway import requeue, retention
from gateway.database import StoreError
from gateway.policy import Event, Limits, Presence, Rejected
from gateway.store import Store


def ev(seq: int, kind: str = "feedback", size: int = 100, rx: float = 1795000000.0) -> Event:
    return Event(f"nps-a1b2c3:{seq}", "nps-a1b2c3", kind, rx, b"x" * size)


def accounted(store: Store) -> int:
    """Every event that entered: still stored, forwarded, dropped or dead-lettered."""
    s = store.stats()
    c = s.counters
    return (
        s.depth
        + c.get("forwarded", 0)
        + sum(s.dropped().values())
        + c.get("dead_letters:server", 0)
    )


def test_put_peek_done_in_order(open_store):
    store = open_store()
    store.put([ev(i) for i in range(1, 6)])
    rows = store.peek(3)
    assert [r.id for r in rows] == ["nps-a1b2c3:1", "nps-a1b2c3:2", "nps-a1b2c3:3"]
    done = store.done(rows, {})
    assert done.forwarded == 3
    assert [r.id for r in store.peek(10)] == ["nps-a1b2c3:4", "nps-a1b2c3:5"]
    stats = store.stats()
    assert (stats.depth, stats.bytes, stats.counters["forwarded"]) == (2, 200, 3)


def test_same_event_id_is_stored_once(open_store):
    store = open_store()
    store.put([ev(1), ev(2)])
    result = store.put([ev(2), ev(3), ev(3)])
    assert (result.committed, result.duplicates) == (1, 2)
    stats = store.stats()
    assert (stats.depth, stats.bytes) == (3, 300)
    assert store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:2", "nps-a1b2c3:3"]
    assert stats.counters["duplicates_received"] == 2


def test_server_rejections_become_dead_letters(open_store):
    store = open_store()
    store.put([ev(1), ev(2), ev(3)])
    done = store.done(store.peek(3), {1: "score: too big"}, duplicates=1)
    assert (done.forwarded, done.dead_letters) == (2, 1)
    [(at, source, what, reason)] = store.dead_letters()
    assert (source, what, reason) == ("server", "nps-a1b2c3:2", "server: score: too big")
    assert store.stats().depth == 0
    assert accounted(store) == 3


def test_edge_rejections_and_presence_are_kept(open_store):
    store = open_store()
    store.put(
        [
            Rejected("nps/v1/x/feedback", b"junk", "payload is not JSON", 5.0),
            Presence("nps-a1b2c3", True, "1.0", 3, 6.0),
        ]
    )
    assert store.dead_letters()[0][1:] == ("edge", "nps/v1/x/feedback", "payload is not JSON")
    assert store.pending_presence() == [Presence("nps-a1b2c3", True, "1.0", 3, 6.0)]
    store.put([Presence("nps-a1b2c3", False, None, None, 7.0)])
    store.presence_done([Presence("nps-a1b2c3", True, "1.0", 3, 6.0)])  # stale: still pending
    assert store.pending_presence()[0].online is False
    store.presence_done(store.pending_presence())
    assert store.pending_presence() == []


def test_full_store_drops_oldest_telemetry_before_any_feedback(open_store):
    store = open_store(Limits(max_events=10))
    store.put([ev(i, "feedback" if i % 2 else "telemetry") for i in range(1, 11)])
    result = store.put([ev(11), ev(12), ev(13)])
    assert result.dropped == {"full_telemetry": 3}
    # the three oldest telemetry (2, 4, 6) went; every feedback stayed
    assert [int(i.split(":")[1]) for i in store.ids()] == [1, 3, 5, 7, 8, 9, 10, 11, 12, 13]
    result = store.put([ev(i) for i in range(14, 20)])
    assert result.dropped == {"full_telemetry": 2, "full_feedback": 4}
    assert [int(i.split(":")[1]) for i in store.ids()] == [9, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    stats = store.stats()
    assert stats.dropped() == {"full_telemetry": 5, "full_feedback": 4}
    assert stats.depth == 10 and accounted(store) == 19


def test_byte_limit(open_store):
    store = open_store(Limits(max_bytes=1000))
    store.put([ev(i, size=300) for i in range(1, 4)])
    result = store.put([ev(4, size=300)])
    assert result.dropped == {"full_feedback": 1}
    stats = store.stats()
    assert stats.bytes == 900 and stats.depth == 3


def test_ttl_expires_old_events(open_store, clock):
    store = open_store(Limits(ttl_s=3600))
    store.put([ev(1, rx=clock.now - 7200), ev(2, rx=clock.now - 10)])
    assert retention.expire(store) == 1
    assert store.ids() == ["nps-a1b2c3:2"]
    assert store.stats().dropped() == {"expired": 1}
    assert retention.expire(store) == 0


def test_dead_letters_are_bounded_and_counted(open_store):
    store = open_store(Limits(max_dead_letters=3))
    result = store.put([Rejected("t", b"p", f"r{i}", float(i)) for i in range(5)])
    assert result.dropped == {"dead_letter_overflow": 2}  # in the commit, not later
    assert retention.trim_dead_letters(store) == 0
    assert [d[3] for d in store.dead_letters()] == ["r4", "r3", "r2"]
    assert store.stats().dropped() == {"dead_letter_overflow": 2}
    assert store.stats().counters["dead_letter_bytes"] == 3 * len("tr2p")


def test_done_after_a_drop_counts_each_event_once(open_store):
    store = open_store(Limits(max_events=2))
    store.put([ev(1), ev(2)])
    rows = store.peek(2)
    store.put([ev(3)])  # drops event 1 while the forwarder holds it
    assert store.done(rows, {}).forwarded == 1
    assert accounted(store) == 3


def test_reopening_keeps_everything(open_store, tmp_path):
    store = open_store()
    store.put([ev(1), ev(2)])
    store.close()
    again = Store(tmp_path / "gw.db")
    assert again.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:2"]
    assert again.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    readonly = Store(tmp_path / "gw.db", readonly=True)
    assert readonly.stats().depth == 2
    with pytest.raises(sqlite3.OperationalError):
        readonly.put([ev(3)])
    again.close()
    readonly.close()


def test_bad_store_files_give_clean_errors(tmp_path):
    with pytest.raises(StoreError, match="no gateway store"):
        Store(tmp_path / "missing.db", readonly=True)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(junk)
    with pytest.raises(StoreError, match="synchronous"):
        Store(tmp_path / "x.db", synchronous="OFF")


def test_a_store_reopened_with_a_lower_dead_letter_limit_is_trimmed_and_counted(open_store):
    before = open_store(Limits(max_dead_letters=10))
    before.put([Rejected("t", b"p", f"r{i}", float(i)) for i in range(5)])
    before.close()
    store = open_store(Limits(max_dead_letters=3))
    assert retention.trim_dead_letters(store) == 2
    assert [d[3] for d in store.dead_letters()] == ["r4", "r3", "r2"]
    assert store.stats().dropped() == {"dead_letter_overflow": 2}
    assert store.stats().dead_letters == 3
    assert retention.trim_dead_letters(store) == 0


def test_server_dead_letters_can_be_requeued_in_order(open_store):
    store = open_store()
    body = b'{"id":"nps-a1b2c3:%d","device":"nps-a1b2c3","type":"feedback","rx_ts":5.0}'
    store.put(
        [Event(f"nps-a1b2c3:{i}", "nps-a1b2c3", "feedback", 5.0, body % i) for i in (1, 2, 3)]
    )
    store.done(store.peek(3), {0: "no", 2: "nope"})
    store.put([Rejected("t", b"junk", "payload is not JSON", 6.0)])
    assert store.stats().dead_letters == 3
    assert requeue.server_dead_letters(store) == 2
    assert store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:3"]
    assert store.peek(1)[0].body == body % 1
    stats = store.stats()
    assert (stats.depth, stats.bytes, stats.dead_letters) == (2, len(body % 1) * 2, 1)
    assert accounted(store) == 3  # each event counted once, wherever it is now
    assert [d[1] for d in store.dead_letters()] == ["edge"]


def test_ttl_ignores_events_received_before_the_clock_was_set(open_store, clock):
    store = open_store(Limits(ttl_s=3600))
    store.put([ev(1, rx=12.0), ev(2, rx=clock.now - 7200)])  # booted in 1970, then NTP
    assert retention.expire(store) == 1
    assert store.ids() == ["nps-a1b2c3:1"]
    clock.now = 100.0  # and while the gateway's own clock is not set, nothing expires
    store.put([ev(3, rx=50.0)])
    assert retention.expire(store) == 0
