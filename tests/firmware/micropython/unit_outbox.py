# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""The durable outbox on a real folder: segments, acks, reboots, torn lines, a full flash."""

import json
import os

from outbox import Outbox
from outbox_kit import ROOT, payload, wipe
from records import decode


def fresh(max_bytes=64 * 1024, segment=1024):
    wipe()
    return Outbox(ROOT, max_bytes, segment)


def drain(ob, ack=True):
    got = []
    while True:
        item = ob.next_unsent()
        if item is None:
            return got
        got.append((item[0], item[1], bytes(item[2])))
        if ack:
            ob.ack(item[0], item[1])


def test_append_read_ack_in_seq_order_across_queues():
    ob = fresh()
    assert ob.append("f", payload) == 1
    assert ob.append("t", lambda s: payload(s, "t")) == 2
    assert ob.append("f", payload) == 3
    got = drain(ob)
    assert [(k, s) for k, s, _ in got] == [("f", 1), ("t", 2), ("f", 3)]
    assert json.loads(got[1][2]) == {"seq": 2, "kind": "t", "pad": ""}
    assert ob.depth == 0
    ob.close()


def test_seq_survives_reboot_and_unacked_are_resent():
    ob = fresh()
    for _ in range(5):
        ob.append("f", payload)
    items = drain(ob, ack=False)
    ob.ack("f", 1)
    ob.ack("f", 2)
    ob.close()  # saves the ack pointer
    ob = Outbox(ROOT, 64 * 1024, 1024)
    assert ob.next_seq == 6
    assert [s for _, s, _ in drain(ob)] == [3, 4, 5]
    assert len(items) == 5
    ob.close()


def test_crash_without_ack_save_resends_duplicates_never_loses():
    ob = fresh()
    for _ in range(3):
        ob.append("f", payload)
    drain(ob)  # acked in RAM, pointer not saved (no close: power cut)
    ob = Outbox(ROOT, 64 * 1024, 1024)
    assert [s for _, s, _ in drain(ob)] == [1, 2, 3]  # harmless duplicates
    assert ob.next_seq == 4


def test_compaction_deletes_only_wholly_acked_segments():
    ob = fresh(segment=200)
    for _ in range(12):
        ob.append("f", lambda s: payload(s, pad=40))
    files_before = len(os.listdir(ROOT + "/f"))
    assert files_before >= 4
    items = drain(ob, ack=False)
    for _, seq, _ in items[:6]:
        ob.ack("f", seq)
    files_mid = len(os.listdir(ROOT + "/f"))
    assert files_mid < files_before
    state = json.load(open(ROOT + "/ack.json"))
    assert state["f"] >= 1 and state["seq"] == 12
    for _, seq, _ in items[6:]:
        ob.ack("f", seq)
    assert len(os.listdir(ROOT + "/f")) == 1  # the newest segment stays
    ob.close()
    ob = Outbox(ROOT, 64 * 1024, 200)
    assert ob.next_seq == 13 and drain(ob) == []


def test_out_of_order_acks_advance_the_pointer_only_when_contiguous():
    ob = fresh()
    for _ in range(3):
        ob.append("f", payload)
    drain(ob, ack=False)
    ob.ack("f", 2)
    assert ob.queues["f"].acked == 0
    ob.ack("f", 1)
    assert ob.queues["f"].acked == 2
    ob.ack("f", 3)
    assert ob.queues["f"].acked == 3 and ob.depth == 0
    ob.close()


def test_torn_tail_is_skipped_and_appending_resumes_in_a_new_segment():
    ob = fresh()
    ob.append("f", payload)
    ob.append("f", payload)
    ob.close()
    seg = ROOT + "/f/" + os.listdir(ROOT + "/f")[0]
    with open(seg, "ab") as f:
        f.write(b'3 deadbeef {"seq": 3, "ki')  # a power cut in the middle of a write
    ob = Outbox(ROOT, 64 * 1024, 1024)
    assert ob.corrupt == 1
    assert ob.next_seq == 3
    assert ob.append("f", payload) == 3
    assert len(os.listdir(ROOT + "/f")) == 2
    assert [s for _, s, _ in drain(ob)] == [1, 2, 3]
    ob.close()


def test_a_corrupted_record_fails_its_crc():
    assert decode(b'1 00000000 {"a": 1}\n') is None
    assert decode(b"garbage\n") is None
    assert decode(b"") is None


def test_full_drops_oldest_telemetry_first_then_feedback_and_counts():
    ob = fresh(max_bytes=2000, segment=300)
    for _ in range(4):
        ob.append("t", lambda s: payload(s, "t", 60))
    n = 4
    while not ob.dropped["t"]:
        ob.append("f", lambda s: payload(s, "f", 60))
        n += 1
    assert ob.dropped["f"] == 0 and ob.nbytes <= 2000
    while not ob.dropped["f"]:
        ob.append("f", lambda s: payload(s, "f", 60))
        n += 1
        assert ob.nbytes <= 2000
    assert ob.dropped["t"] == 4  # all telemetry went before any feedback
    sent = [s for _, s, _ in drain(ob)]
    assert sent == sorted(sent) and sent[-1] == n
    assert len(sent) + ob.dropped["f"] == n - 4
    ob.close()
    state = json.load(open(ROOT + "/ack.json"))
    assert state["dropped_t"] == 4 and state["dropped_f"] == ob.dropped["f"]
    wipe()


def test_an_event_larger_than_the_record_buffer_is_refused_before_flash():
    from records import RECORD_BYTES, OutboxError

    ob = fresh()
    try:
        ob.append("f", lambda s: payload(s, pad=RECORD_BYTES))
    except OutboxError:
        pass
    else:
        raise AssertionError("an oversized event was accepted")
    assert ob.depth == 0 and ob.nbytes == 0
    assert ob.append("f", payload) == 1  # nothing reached flash: the seq is free
    assert [s for _, s, _ in drain(ob)] == [1]
    ob.close()


def test_a_line_longer_than_the_read_buffer_is_skipped_as_corrupt():
    from records import RECORD_BYTES

    ob = fresh()
    ob.append("f", payload)
    ob.close()
    seg = ROOT + "/f/" + os.listdir(ROOT + "/f")[0]
    with open(seg, "ab") as f:
        f.write(b"2 00000000 " + b"y" * (3 * RECORD_BYTES) + b"\n")  # hostile bytes on flash
    ob = Outbox(ROOT, 64 * 1024, 64 * 1024)
    assert ob.corrupt == 1 and ob.queues["f"].torn  # appending goes on in a new segment
    ob.append("f", payload)
    assert [s for _, s, _ in drain(ob)] == [1, 2]
    ob.close()


def test_read_at_gives_back_a_record_for_a_resend():
    ob = fresh()
    for _ in range(3):
        ob.append("f", lambda s: payload(s, pad=300))
    items = []
    while True:
        item = ob.next_unsent()
        if item is None:
            break
        items.append((item[0], item[1], bytes(item[2]), item[3], item[4]))
    for kind, seq, body, segment, offset in items:
        assert bytes(ob.read_at(kind, segment, offset)) == body
        assert json.loads(body)["seq"] == seq
    assert ob.read_at("f", 999, 0) is None  # its segment is gone
    ob.close()


def test_the_heap_does_not_grow_with_the_number_of_records():
    import gc

    ob = fresh(segment=2048)
    used = []
    for _ in range(4):
        for _ in range(100):
            ob.append("f", lambda s: payload(s, pad=200))
        while True:
            item = ob.next_unsent()
            if item is None:
                break
            ob.ack(item[0], item[1])
        gc.collect()
        used.append(gc.mem_alloc())
    assert used[-1] - used[0] < 1024, used  # the same buffers for the 100th and the 400th
    ob.close()
