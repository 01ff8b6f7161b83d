"""Issue 12's poison messages against the gateway's parts: no message ends the intake,
every one becomes an item with a reason, and dead letters stay within bounds."""

from __future__ import annotations

import json
import sqlite3
import stat

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import requeue
from gateway.database import MIGRATIONS
from gateway.intake import Intake
from gateway.policy import (
    MAX_TOPIC_KEPT,
    Event,
    Limits,
    Presence,
    Rejected,
    Throttle,
    admit,
)
from gateway.store import Store

ROOT = "nps/v1"
T = "nps/v1/nps-a1b2c3/feedback"
STATUS = "nps/v1/nps-a1b2c3/status"

POISON = [
    (STATUS, b'{"online": true, "fw": "1.0.0", "boot": 9223372036854775808}'),  # 2^63
    (STATUS, b"[" * 1000),
    (T, b"[" * 1000),
    (T, b'{"a":' * 400),
    (STATUS, b'{"online": true, "boot": NaN}'),
    (T, b'{"v": 1, "seq": 1e999, "ts": NaN}'),
    (T, b'{"v": 1, "id": "nps-a1b2c3:1", "seq": ' + b"9" * 1500 + b"}"),
]


def test_each_poison_message_is_a_dead_letter_with_a_reason(make):
    for topic, payload in POISON:
        judged = admit(topic, payload, 1.0, ROOT)
        assert isinstance(judged, Rejected), (topic, payload[:40])
        assert judged.reason and not judged.reason.startswith("internal")


def test_poison_then_good_events_all_through_the_intake(open_store, metrics, make):
    store = open_store()
    acked: list[int] = []
    intake = Intake(store, lambda batch: acked.extend(m.mid for m in batch), metrics, root=ROOT)
    for mid, (topic, payload) in enumerate(POISON, start=1):
        intake.offer(mid, 1, topic, payload)
    for seq in (1, 2):
        intake.offer(100 + seq, 1, T, make.payload(make.feedback(seq=seq)))
    intake.drain()
    assert acked == [*range(1, len(POISON) + 1), 101, 102]  # every one acknowledged
    assert store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:2"]
    assert store.stats().counters["dead_letters:edge"] == len(POISON)
    reasons = " | ".join(d[3] for d in store.dead_letters(20))
    assert "nested too deep" in reasons and "boot" in reasons


def test_an_unexpected_error_while_judging_is_a_dead_letter_not_a_dead_thread(
    open_store, metrics, make, caplog
):
    def judge(topic: str, payload: bytes, rx_ts: float, root: str):
        if payload == b"boom":
            raise KeyError("a bug we have not met")
        return admit(topic, payload, rx_ts, root)

    store = open_store()
    acked: list[int] = []
    intake = Intake(
        store, lambda batch: acked.extend(m.mid for m in batch), metrics, root=ROOT, judge=judge
    )
    long_topic = "nps/v1/nps-a1b2c3/" + "x" * 5000
    intake.offer(1, 1, T, make.payload(make.feedback(seq=1)))
    intake.offer(2, 1, long_topic, b"boom")
    intake.offer(3, 1, T, make.payload(make.feedback(seq=3)))
    assert intake.step(timeout=1) == 3
    assert acked == [1, 2, 3] and store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:3"]
    (dead,) = store.dead_letters()
    assert dead[3] == "internal: KeyError"
    assert metrics.internal_errors.labels("KeyError")._value.get() == 1
    assert store.stats().counters["internal_errors"] == 1
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(logged) == 1 and len(logged[0].fields["topic"]) < MAX_TOPIC_KEPT + 32


def test_an_item_the_store_cannot_bind_is_dead_lettered_alone(open_store, metrics, make):
    """Defence in depth: a value SQLite cannot take (the old boot 2^63) fails one item."""
    store = open_store()
    real_put = store.put

    def put(items):
        if any(isinstance(i, Presence) and i.boot and i.boot > 2**62 for i in items):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real_put(items)

    store.put = put

    def judge(topic: str, payload: bytes, rx_ts: float, root: str):
        if payload == b"huge":  # what the old contract let through
            return Presence("nps-a1b2c3", True, None, 2**63, rx_ts)
        return admit(topic, payload, rx_ts, root)

    acked: list[int] = []
    intake = Intake(
        store, lambda batch: acked.extend(m.mid for m in batch), metrics, root=ROOT, judge=judge
    )
    intake.offer(1, 1, T, make.payload(make.feedback(seq=1)))
    intake.offer(2, 1, STATUS, b"huge")
    intake.offer(3, 1, T, make.payload(make.feedback(seq=3)))
    assert intake.step(timeout=1) == 3
    assert acked == [1, 2, 3] and store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:3"]
    assert [d[3] for d in store.dead_letters()] == ["internal: OverflowError"]
    assert store.stats().counters["received"] == 3


def test_dead_letters_are_cut_and_count_toward_max_mb(open_store, metrics):
    """500 messages with 60 KB topics grew the old store by 95 MB."""
    store = open_store(Limits(max_bytes=200_000))
    intake = Intake(store, lambda _: None, metrics, root=ROOT)
    for i in range(500):
        topic = f"nps/v1/{'x' * 60_000}{i}/feedback"
        intake.offer(i, 1, topic, b"y" * 10_000)
    intake.drain()
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stats = store.stats()
    assert stats.counters["dead_letter_bytes"] <= 200_000
    assert stats.counters["dead_letters:edge"] == 500
    assert stats.dead_letters + stats.dropped()["dead_letter_overflow"] == 500
    assert store.path.stat().st_size < 4_000_000  # the old code: 65 MB (topic + reason in full)
    (at, source, topic, reason) = store.dead_letters(1)[0]
    assert len(topic.encode()) < MAX_TOPIC_KEPT + 32 and len(reason) <= 515
    (payload, size) = store.conn.execute(
        "SELECT payload, size FROM dead_letters ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    assert len(payload) == 2048 and size == 10_000


def test_dead_letters_go_before_events_when_over_max_mb(open_store, make):
    store = open_store(Limits(max_bytes=5000))
    event = admit(T, make.payload(make.feedback(seq=1)), 1.0, ROOT)
    assert isinstance(event, Event)
    store.put([event])
    store.put([Rejected("t", b"p" * 1000, "r", 2.0) for _ in range(10)])
    assert store.ids() == ["nps-a1b2c3:1"]  # a customer's answer outranks bad messages
    assert store.stats().dropped() == {"dead_letter_overflow": 6}


def test_store_files_are_private(tmp_path, make):
    store = Store(tmp_path / "gw.db")
    store.put([admit(T, make.payload(make.feedback(seq=1)), 1.0, ROOT)])
    for name in ("gw.db", "gw.db-wal", "gw.db-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    store.close()


def test_an_existing_world_readable_store_is_made_private(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_throttle_allows_a_burst_then_the_rate():
    throttle = Throttle(rate=2.0, burst=5)
    assert [throttle.take("a", 100.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert "a" in throttle.limited
    assert throttle.take("b", 100.0)  # another device has its own bucket
    assert throttle.take("a", 100.5) and not throttle.take("a", 100.5)  # 2/s: one in 0.5 s
    assert [throttle.take("a", 110.0) for _ in range(6)] == [True] * 5 + [False]  # capped


def test_throttle_survives_a_clock_stepped_back_and_bounds_its_memory():
    throttle = Throttle(rate=1.0, burst=2, max_devices=100)
    assert throttle.take("a", 1000.0) and throttle.take("a", 1000.0)
    assert not throttle.take("a", 10.0)  # stepped back: nothing refilled
    assert throttle.take("a", 11.0)  # and it refills from the new time
    for i in range(1000):
        throttle.take(f"d{i}", 2000.0)
    assert len(throttle._buckets) <= 100


def test_throttled_messages_are_dead_letters_counted_per_device_and_requeueable(
    open_store, metrics, make
):
    store = open_store()
    intake = Intake(store, lambda _: None, metrics, root=ROOT, throttle=Throttle(rate=1.0, burst=3))
    for seq in range(1, 11):
        intake.offer(seq, 1, T, make.payload(make.feedback(seq=seq)))
    intake.offer(99, 1, "nps/v1/nps-other1/feedback", make.payload(make.feedback("nps-other1")))
    intake.drain()
    stats = store.stats()
    assert store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:2", "nps-a1b2c3:3", "nps-other1:1"]
    assert stats.throttled() == {"nps-a1b2c3": 7}
    assert stats.counters["dead_letters:throttled"] == 7
    assert metrics.throttled.labels("nps-a1b2c3")._value.get() == 7
    assert metrics.throttled_devices._value.get() == 1
    assert requeue.throttled(store, ROOT) == 7
    assert store.ids()[-7:] == [f"nps-a1b2c3:{s}" for s in range(4, 11)]
    body = json.loads(store.peek(100)[-1].body)
    assert body["seq"] == 10 and body["rx_ts"] > 0
    assert store.stats().dead_letters == 0


def test_implausible_timestamps_are_forwarded_and_counted(open_store, metrics, make):
    store = open_store()
    intake = Intake(store, lambda _: None, metrics, root=ROOT, clock=lambda: 1795000000.0)
    for seq, ts in ((1, 0.0), (2, 4102444800.0), (3, None), (4, 1795000000.0)):
        intake.offer(seq, 1, T, make.payload(make.feedback(seq=seq, ts=ts)))
    intake.drain()
    assert len(store.ids()) == 4
    assert store.stats().counters["implausible_ts"] == 2
    assert metrics.implausible_ts._value.get() == 2


def near_valid() -> st.SearchStrategy[bytes]:
    """A valid event with one field replaced by hostile JSON, or its text cut or spliced."""
    base = json.dumps(
        {
            "v": 1,
            "id": "nps-a1b2c3:1",
            "device": "nps-a1b2c3",
            "site": "s",
            "seq": 1,
            "boot": 1,
            "up_ms": 1,
            "ts": 1795000000.0,
            "fw": "1",
            "type": "feedback",
            "outcome": "answered",
            "score": 9,
            "ctx": {"rssi": -61},
        }  # fmt: skip
    )
    hostile = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 1000, "[" * 1000]),
        st.text(max_size=40).map(json.dumps),
        st.just("true"),
        st.just("null"),
    ).map(str)
    field = st.sampled_from(
        ["v", "seq", "boot", "up_ms", "ts", "score", "fw", "ctx", "type", "outcome"]
    )
    replaced = st.tuples(field, hostile).map(
        lambda fv: base.replace(f'"{fv[0]}": ', f'"{fv[0]}": {fv[1]}, "_{fv[0]}": ', 1)
    )
    cut = st.integers(0, len(base)).map(lambda n: base[:n])
    spliced = st.tuples(st.integers(0, len(base)), st.text(max_size=20)).map(
        lambda p: base[: p[0]] + p[1] + base[p[0] :]
    )
    return st.one_of(replaced, cut, spliced).map(lambda s: s.encode("utf-8", "surrogatepass"))


TOPICS = st.sampled_from([T, STATUS, "nps/v1/nps-a1b2c3/telemetry", "nps/v1/x/y", "a/b"])


@settings(
    max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(topic=TOPICS, payload=st.one_of(st.binary(max_size=3000), near_valid()))
def test_admit_always_returns_an_item_and_never_raises(topic, payload):
    judged = admit(topic, payload, 1795000000.0, ROOT)
    assert judged is None or isinstance(judged, Event | Presence | Rejected)
    if isinstance(judged, Rejected):
        assert judged.reason and len(judged.payload) <= 2048
    if isinstance(judged, Event):
        assert json.loads(judged.body)["rx_ts"] == 1795000000.0


def test_a_topic_sqlite_cannot_encode_is_kept_as_text(open_store, metrics):
    store = open_store()
    intake = Intake(store, lambda _: None, metrics, root=ROOT)
    intake.offer(1, 1, "nps/v1/\udcff/feedback", b"{}")  # a lone surrogate
    assert intake.step(timeout=1) == 1
    assert store.dead_letters()[0][2] == "nps/v1/?/feedback"


def test_junk_topics_share_one_bucket(open_store, metrics):
    store = open_store()
    intake = Intake(store, lambda _: None, metrics, root=ROOT, throttle=Throttle(1.0, 5))
    for i in range(20):
        intake.offer(i, 1, f"nps/v1/BAD{i}/feedback", b"{}")
    intake.drain()
    assert store.stats().throttled() == {"(invalid-topic)": 15}


def test_a_store_from_before_the_bounds_is_migrated_with_its_dead_letters_counted(tmp_path):
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO dead_letters(at, source, topic, reason, payload)"
        " VALUES (1.0, 'edge', 'nps/v1/x/feedback', 'bad', x'00112233')"
    )
    conn.execute("INSERT INTO counters VALUES ('dead_letter_rows', 1)")
    conn.close()
    store = Store(path)
    assert store.stats().counters["dead_letter_bytes"] == len("nps/v1/x/feedback") + 3 + 4
    assert store.conn.execute("SELECT size FROM dead_letters").fetchone() == (4,)
    store.close()
