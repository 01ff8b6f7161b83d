"""The forwarder against httpx.MockTransport: every server answer, and what the store keeps."""

from __future__ import annotations

import json
import random
import threading
import time

import httpx

from gateway.forwarder import Forwarder, Step
from gateway.policy import Backoff, Presence, admit
from nps_edge.processes import wait_until

ROOT = "nps/v1"


def fill(store, make, seqs, device="nps-a1b2c3", kind="feedback", **over):
    items = []
    for seq in seqs:
        factory = make.feedback if kind == "feedback" else make.telemetry
        event = factory(device=device, seq=seq, **over)
        items.append(
            admit(f"{ROOT}/{device}/{kind}", make.payload(event), 1795000000.0 + seq, ROOT)
        )
    store.put(items)


def forwarder(store, server, metrics, token="good", **kw):
    waits: list[float] = []
    f = Forwarder(
        store,
        server.client(token),
        metrics,
        gateway="gw-test",
        backoff=Backoff(rng=random.Random(1)),
        wait=lambda s: waits.append(s) or False,
        **kw,
    )
    f.waits = waits
    return f


def drain(f, limit=100):
    steps = []
    for _ in range(limit):
        step = f.step()
        steps.append(step)
        if step in (Step.IDLE, Step.HALTED):
            return steps
    raise AssertionError(f"did not drain in {limit} steps: {steps[-5:]}")


def test_forwards_in_order_with_rx_ts_and_deletes(open_store, fake_server, metrics, make):
    store = open_store()
    fill(store, make, range(1, 2501))
    f = forwarder(store, fake_server, metrics)
    assert drain(f) == [Step.SENT, Step.SENT, Step.SENT, Step.IDLE]
    assert fake_server.batches == [1000, 1000, 500]
    assert [e["seq"] for e in fake_server.received] == list(range(1, 2501))
    assert all(e["rx_ts"] == 1795000000.0 + e["seq"] for e in fake_server.received)
    stats = store.stats()
    assert (stats.depth, stats.counters["forwarded"]) == (0, 2500)
    assert metrics.forwarded._value.get() == 2500


def test_body_respects_the_byte_limit(open_store, fake_server, metrics, make):
    # 1000 contract-sized events (<= 2048 B) always fit 2 MiB; a lower limit shows the cut
    store = open_store()
    fill(store, make, range(1, 1201), pad="y" * 1500)
    f = forwarder(store, fake_server, metrics, max_bytes=500_000)
    drain(f)
    assert max(fake_server.bodies) <= 500_000
    assert sum(fake_server.batches) == 1200 and len(fake_server.batches) == 5


def test_server_rejections_go_to_dead_letters(open_store, fake_server, metrics, make):
    store = open_store()
    fill(store, make, [1, 2, 3])
    # the server judges what the edge let through; make it disagree about event 2
    second = store.peek(3)[1]
    wrong = json.dumps({**json.loads(second.body), "score": 11}).encode()
    store.conn.execute("UPDATE events SET body = ? WHERE seq = ?", (wrong, second.seq))
    drain(forwarder(store, fake_server, metrics))
    assert [e["seq"] for e in fake_server.received] == [1, 3]
    [(_, source, what, reason)] = store.dead_letters()
    assert (source, what) == ("server", "nps-a1b2c3:2")
    assert reason.startswith("server: ") and "score" in reason
    assert store.stats().depth == 0
    assert metrics.dead_letters.labels("server")._value.get() == 1


def test_5xx_and_transport_errors_retry_with_backoff(open_store, fake_server, metrics, make):
    store = open_store()
    fill(store, make, range(1, 11))
    fake_server.script = [503, httpx.ConnectError("refused"), 500]
    f = forwarder(store, fake_server, metrics)
    assert drain(f) == [Step.RETRY, Step.RETRY, Step.RETRY, Step.SENT, Step.IDLE]
    assert len(f.waits) == 3 and f.waits[0] < f.waits[2]
    assert [e["seq"] for e in fake_server.received] == list(range(1, 11))
    assert f.backoff.attempt == 0


def test_401_stops_forwarding_and_keeps_everything(open_store, fake_server, metrics, make):
    store = open_store()
    fill(store, make, range(1, 6))
    f = forwarder(store, fake_server, metrics, token="wrong")
    assert drain(f) == [Step.HALTED]
    assert f.step() is Step.HALTED  # no retry storm: nothing more is sent
    assert store.stats().depth == 5
    assert "401" in store.stats().state["halted"]
    assert metrics.halted._value.get() == 1


def test_413_halves_the_batch_then_recovers(open_store, fake_server, metrics, make):
    store = open_store()
    fill(store, make, range(1, 1001))
    fake_server.max_events = 300
    f = forwarder(store, fake_server, metrics)
    drain(f)
    assert [e["seq"] for e in fake_server.received] == list(range(1, 1001))
    assert max(fake_server.batches) <= 300
    assert store.stats().dead_letters == 0


def test_a_single_event_the_server_refuses_is_dead_lettered(open_store, fake_server, metrics, make):
    store = open_store()
    fill(store, make, [1, 2])
    fake_server.script = [413, 413]  # the pair, then event 1 alone
    f = forwarder(store, fake_server, metrics)
    drain(f)
    assert [e["seq"] for e in fake_server.received] == [2]
    assert store.dead_letters()[0][2:] == ("nps-a1b2c3:1", "server: HTTP 413: scripted 413")


def test_an_unusable_answer_is_retried_not_trusted(open_store, metrics, make):
    store = open_store()
    fill(store, make, [1, 2])
    answers = iter([{"accepted": 1}, {"accepted": 2, "duplicates": 0, "rejected": []}])
    client = httpx.Client(
        base_url="http://s",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(answers))),
    )
    f = Forwarder(store, client, metrics, gateway="gw", wait=lambda s: False)
    assert f.step() is Step.RETRY
    assert store.stats().depth == 2
    assert f.step() is Step.SENT
    assert store.stats().depth == 0


def test_presence_is_forwarded_and_a_missing_endpoint_does_not_block_events(
    open_store, fake_server, metrics, make
):
    store = open_store()
    store.put([Presence("nps-a1b2c3", True, "1.0.0", 4, 10.0)])
    fill(store, make, [1])
    drain(forwarder(store, fake_server, metrics))
    assert [(p.device, p.online, p.boot) for p in fake_server.presence] == [("nps-a1b2c3", True, 4)]
    assert store.pending_presence() == []
    store.put([Presence("nps-a1b2c3", False, None, None, 11.0)])
    fill(store, make, [2])
    fake_server.presence_status = 404
    f = forwarder(store, fake_server, metrics)
    drain(f)
    assert not f.presence_supported
    assert [e["seq"] for e in fake_server.received] == [1, 2]


def test_a_trickle_goes_in_few_requests_after_a_linger(open_store, fake_server, metrics, make):
    # 30 events stored one at a time, 10 ms apart. Sent as they come they would make
    # about 30 requests (the fake server answers at once); with a 250 ms linger after
    # each part batch, one request per linger at most, and nothing is left behind.
    linger = 0.25
    intake, forward = open_store(name="gw.db"), open_store(name="gw.db")
    f = forwarder(forward, fake_server, metrics, linger_s=linger)
    stop, wake = threading.Event(), threading.Event()
    worker = threading.Thread(target=f.run, args=(stop, wake, 0.05))
    worker.start()
    started = time.monotonic()
    try:
        for seq in range(1, 31):
            fill(intake, make, [seq])
            wake.set()
            time.sleep(0.01)
        took = time.monotonic() - started
        # Read through the test's own connection: the forwarder's belongs to its thread,
        # as in the gateway (a read there could meet the forwarder's open transaction).
        wait_until(lambda: intake.stats().depth == 0, timeout=10)
    finally:
        stop.set()
        worker.join(10)
    assert [e["seq"] for e in fake_server.received] == list(range(1, 31))
    assert len(fake_server.batches) <= took / linger + 2, fake_server.batches
