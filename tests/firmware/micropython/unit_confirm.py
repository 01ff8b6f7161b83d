# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""The outbox confirmed by the gateway (gateway=True): a PUBACK ends the flight, the
gateway's ack trims; gaps, rewinds, reboots, hostile ack bytes."""

import json
import os

from acks import parse_ack
from outbox import Outbox
from outbox_kit import ROOT, payload, wipe


def gateway_box(max_bytes=64 * 1024, segment=1024):
    wipe()
    return Outbox(ROOT, max_bytes, segment, True)


def reopen(segment=1024):
    return Outbox(ROOT, 64 * 1024, segment, True)


def hand_out(ob, puback=True):
    """Everything the outbox hands out now, [(kind, seq)], PUBACKed unless told."""
    got = []
    while True:
        item = ob.next_unsent()
        if item is None:
            return got
        got.append((item[0], item[1]))
        if puback:
            ob.ack(item[0], item[1])


def mixed(ob, n):
    """n events, telemetry every third seq (the two queues share one counter)."""
    for i in range(n):
        ob.append("t" if i % 3 == 1 else "f", payload)


def test_a_puback_alone_keeps_the_event_until_the_gateway_confirms():
    ob = gateway_box()
    mixed(ob, 3)
    assert hand_out(ob) == [("f", 1), ("t", 2), ("f", 3)]
    assert ob.depth == 3 and ob.queues["f"].acked == 0 and ob.floor() == 0
    assert ob.idle and hand_out(ob) == []  # PUBACKed: not handed out again by itself
    assert ob.confirm([(1, 3)]) == 3
    assert ob.depth == 0 and ob.queues["f"].acked == 3 and ob.queues["t"].acked == 2
    assert ob.floor() is None and ob.confirmed == []
    ob.close()


def test_a_reboot_sends_again_what_the_gateway_did_not_confirm():
    ob = gateway_box()
    mixed(ob, 5)
    hand_out(ob)
    ob.confirm([(1, 2)])
    ob.close()
    ob = reopen()
    assert ob.depth == 3 and ob.next_seq == 6
    assert [s for _, s in hand_out(ob)] == [3, 4, 5]
    ob.close()


def test_a_gap_is_kept_and_only_the_gap_goes_again():
    ob = gateway_box()
    mixed(ob, 12)
    hand_out(ob)
    # The broker lost 5-8 after its PUBACK; the gateway stored the rest.
    assert ob.confirm([(1, 4), (9, 12)]) == 4
    assert ob.depth == 8 - 4 + 4  # 5-8 unconfirmed, 9-12 confirmed beyond the gap
    assert ob.floor() == 2 and ob.confirmed == [(9, 12)]  # telemetry waits at 5
    ob.rewind()
    assert [s for _, s in hand_out(ob)] == [5, 6, 7, 8]
    assert ob.confirm(parse_ack(b'{"ack":[[5,8]]}', 12)) == 8
    assert ob.depth == 0 and ob.floor() is None and ob.confirmed == []
    assert ob.queues["f"].acked == 12 and ob.queues["t"].acked == 11
    ob.close()


def test_rewind_skips_what_is_in_flight_and_what_is_confirmed():
    ob = gateway_box()
    mixed(ob, 4)
    items = hand_out(ob, puback=False)
    ob.ack("f", 1)
    ob.ack("t", 2)
    ob.confirm([(2, 2)])
    ob.rewind()
    assert hand_out(ob, puback=False) == [("f", 1)]  # 2 confirmed, 3 and 4 still in flight
    assert len(items) == 4
    ob.close()


def test_a_confirmation_before_the_puback_counts_once():
    ob = gateway_box()
    mixed(ob, 2)
    hand_out(ob, puback=False)
    assert ob.confirm([(1, 2)]) == 2 and ob.depth == 0
    ob.ack("f", 1)
    ob.ack("t", 2)
    assert ob.depth == 0 and not ob.queues["f"].sent and not ob.queues["t"].sent
    ob.rewind()
    assert hand_out(ob) == []
    ob.close()


def test_confirmed_segments_are_deleted_and_the_pointer_survives_a_reboot():
    ob = gateway_box(segment=200)
    for _ in range(12):
        ob.append("f", lambda s: payload(s, pad=40))
    before = len(os.listdir(ROOT + "/f"))
    hand_out(ob)
    assert len(os.listdir(ROOT + "/f")) == before  # PUBACKs delete nothing
    ob.confirm([(1, 12)])
    assert len(os.listdir(ROOT + "/f")) == 1
    assert json.load(open(ROOT + "/ack.json"))["f"] >= 1
    ob.close()
    ob = reopen(200)
    assert ob.depth == 0 and hand_out(ob) == [] and ob.next_seq == 13
    ob.close()


def test_a_full_outbox_counts_as_lost_only_what_nobody_confirmed():
    ob = gateway_box(max_bytes=2000, segment=300)
    for _ in range(4):
        ob.append("t", lambda s: payload(s, "t", 60))
    hand_out(ob)
    ob.confirm([(2, 4)])  # 1 is a gap: 2-4 wait beyond it
    n = 4
    while not ob.dropped["t"]:
        ob.append("f", lambda s: payload(s, "f", 60))
        n += 1
    assert ob.dropped["t"] == 1  # seq 1 only: 2-4 were held by the gateway
    assert ob.depth == n - 4 and ob.queues["t"].next is None and ob.floor() == 0
    ob.close()


def test_the_heap_stays_flat_under_gateway_acks():
    import gc

    ob = gateway_box(segment=2048)
    used = []
    for _ in range(4):
        first = ob.next_seq
        for _ in range(100):
            ob.append("f", lambda s: payload(s, pad=200))
        hand_out(ob)
        for lo in range(first, first + 100, 10):
            ob.confirm([(lo, lo + 9)])  # one ack per gateway batch of ten
        assert ob.depth == 0
        gc.collect()
        used.append(gc.mem_alloc())
    assert used[-1] - used[0] < 1024, used
    ob.close()
    wipe()
