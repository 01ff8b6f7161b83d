"""Issue 12's attacks through a real Mosquitto into the whole gateway (fake server):
poison messages, 60 KB topics and a flooding device. The gateway keeps running, every
good event after the poison arrives exactly once, every bad message is counted."""

from __future__ import annotations

import json
from collections import Counter

POISON = [
    ("nps/v1/nps-a1b2c3/status", b'{"online": true, "fw": "1", "boot": 9223372036854775808}'),
    ("nps/v1/nps-a1b2c3/status", b"[" * 1000),
    ("nps/v1/nps-a1b2c3/feedback", b"[" * 1000),
    ("nps/v1/nps-a1b2c3/feedback", b'{"v": 1, "seq": NaN, "ts": Infinity}'),
    ("nps/v1/nps-a1b2c3/feedback", b'{"v": 1, "boot": ' + b"9" * 1500 + b"}"),
]


def test_poison_then_good_events_arrive_exactly_once(mqtt_broker, run_gateway, fake_server, make):
    # The retained poison comes back on every (re)subscription: the old gateway died on it
    # at each start.
    make.publish(mqtt_broker.address, POISON[:1], retain=True)
    gw = run_gateway(mqtt_broker.address, fake_server.client())
    good = [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in (1, 2, 3)]
    make.publish(mqtt_broker.address, POISON[1:] + good)
    make.wait_until(lambda: len(fake_server.received) == 3, what="the good events")
    make.wait_until(lambda: gw.stats().counters.get("dead_letters:edge", 0) >= 5, what="5 dead")
    before = gw.stats().counters["dead_letters:edge"]  # 6 if a reconnect re-sent the retained
    gw.stop()  # and again: the retained poison is delivered to the next start
    gw = run_gateway(mqtt_broker.address, fake_server.client())
    more = [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in (4, 5)]
    make.publish(mqtt_broker.address, more)
    make.wait_until(lambda: len(fake_server.received) == 5, what="events after the restart")
    assert [e["seq"] for e in fake_server.received] == [1, 2, 3, 4, 5]
    assert Counter(e["id"] for e in fake_server.received).most_common(1)[0][1] == 1
    # the retained one again, delivered after the re-subscription (section 3.8.4)
    make.wait_until(
        lambda: gw.stats().counters["dead_letters:edge"] > before, what="the retained again"
    )
    stats = gw.stats()
    assert stats.counters.get("internal_errors", 0) == 0
    assert not gw.failed and gw.receiver.connected.is_set()


def test_500_messages_with_60_kb_topics_do_not_grow_store_or_log(
    mqtt_broker, run_gateway, fake_server, make, caplog
):
    """Measured on the old code: the store grew by 95 MB and the log by 60 MB."""
    gw = run_gateway(mqtt_broker.address, fake_server.client())
    before = gw.settings.store.stat().st_size
    caplog.clear()
    huge = [(f"nps/v1/{'x' * 60_000}{i:03d}/feedback", b"{}") for i in range(500)]
    make.publish(mqtt_broker.address, huge)
    good = [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=1)))]
    make.publish(mqtt_broker.address, good)
    make.wait_until(lambda: len(fake_server.received) == 1, what="the good event")
    make.wait_until(lambda: gw.stats().counters.get("dead_letters:edge") == 500, what="500")
    grown = sum(
        p.stat().st_size for p in gw.settings.store.parent.glob(gw.settings.store.name + "*")
    )
    assert grown - before < 5_000_000  # WAL included
    logged = sum(len(json.dumps(getattr(r, "fields", {}))) for r in caplog.records)
    assert logged < 500 * 600


def test_a_flooding_device_is_throttled_and_others_are_not_delayed(
    mqtt_broker, run_gateway, fake_server, make
):
    gw = run_gateway(
        mqtt_broker.address, fake_server.client(), rate_per_device=1.0, burst_per_device=100
    )
    flood = [
        ("nps/v1/nps-flood1/feedback", make.payload(make.feedback("nps-flood1", seq=s)))
        for s in range(1, 2001)
    ]
    normal = [
        ("nps/v1/nps-calm01/feedback", make.payload(make.feedback("nps-calm01", seq=s)))
        for s in range(1, 41)
    ]
    mixed = list(flood)
    for i, m in enumerate(normal):
        mixed.insert(i * 50, m)
    make.publish(mqtt_broker.address, mixed)
    make.wait_until(lambda: gw.stats().counters.get("received") == 2040, what="all received")
    make.wait_until(lambda: gw.stats().depth == 0, what="forwarded")
    calm = [e["seq"] for e in fake_server.received if e["device"] == "nps-calm01"]
    assert calm == list(range(1, 41))  # every one, in order, none throttled
    stats = gw.stats()
    throttled = stats.throttled()
    assert list(throttled) == ["nps-flood1"]
    arrived = sum(e["device"] == "nps-flood1" for e in fake_server.received)
    assert arrived + throttled["nps-flood1"] == 2000
    assert 100 <= arrived < 200  # the burst, plus 1/s while the flood lasted
    assert gw.metrics.throttled_devices._value.get() == 1
    assert gw.metrics.throttled.labels("nps-flood1")._value.get() == throttled["nps-flood1"]
