"""The forwarder's lanes (issue 17): several requests in flight, each device's events in order.

Most tests step the lanes by hand, in an order chosen to hurt (one lane failing while
the other sends), against the fake server of conftest.py; one runs the lanes' threads
and proves that two requests are in flight at once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from gateway import requeue
from gateway.config import GatewaySettings
from gateway.forwarder import Step
from gateway.lanes import Lanes
from gateway.policy import Backoff, admit, lane_of
from nps_edge.processes import wait_until
from tests.gateway.test_forwarder import ROOT

DEVICES = [f"nps-lane{i:02d}" for i in range(13)]  # odd: a seq-based split would split devices


def devices_of(lane: int, lanes: int = 2) -> list[str]:
    return [d for d in DEVICES if lane_of(d, lanes) == lane]


def fill_interleaved(store, make, per_device: int, devices=DEVICES, start: int = 1) -> None:
    """Every device's events 1..per_device, interleaved as a site's arrive."""
    items = []
    for seq in range(start, start + per_device):
        for device in devices:
            event = make.feedback(device=device, seq=seq)
            items.append(
                admit(f"{ROOT}/{device}/feedback", make.payload(event), 1795000000.0 + seq, ROOT)
            )
    store.put(items)


def lanes_on(open_store, client, metrics, lanes=2, **kw) -> Lanes:
    waits: list[float] = []

    def wait(s: float) -> bool:  # a back-off is recorded, not slept
        waits.append(s)
        return False

    pool = Lanes(
        lambda: open_store(name="gw.db"),
        client,
        metrics,
        gateway="gw-test",
        lanes=lanes,
        backoff=lambda: Backoff(rng=random.Random(1)),
        wait=wait,
        **kw,
    )
    pool.waits = waits  # type: ignore[attr-defined]
    return pool


def step_until_idle(pool: Lanes, order: list[int], limit: int = 500) -> list[tuple[int, Step]]:
    """Step the lanes in the given repeating order until every lane is idle or halted."""
    steps: list[tuple[int, Step]] = []
    settled: set[int] = set()
    for i in range(limit):
        lane = order[i % len(order)]
        step = pool.forwarders[lane].step()
        steps.append((lane, step))
        if step in (Step.IDLE, Step.HALTED):
            settled.add(lane)
        else:
            settled.discard(lane)
        if settled == set(range(len(pool.forwarders))):
            return steps
    raise AssertionError(f"lanes did not settle in {limit} steps: {steps[-6:]}")


def seqs_by_device(received: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for event in received:
        out[event["device"]].append(event["seq"])
    return out


def test_lane_of_is_stable_and_spreads_a_fleet():
    assert lane_of("nps-a1b2c3", 1) == 0
    assert [lane_of(d, 2) for d in DEVICES] == [lane_of(d, 2) for d in DEVICES]
    fleet = [f"nps-{i:06x}" for i in range(10_000)]
    for lanes in (2, 3, 4):
        counts = [0] * lanes
        for device in fleet:
            counts[lane_of(device, lanes)] += 1
        assert min(counts) > 0.9 * len(fleet) / lanes, counts
    assert devices_of(0) and devices_of(1)  # the tests below need both lanes busy


def test_a_lane_peeks_only_its_devices_oldest_first(open_store, make):
    store = open_store()
    fill_interleaved(store, make, 5)
    every = store.peek(1000)
    for lane in (0, 1):
        peek = store.peek_lane(1000, lane, 2)
        assert [r.seq for r in peek.rows] == [
            r.seq
            for r in every
            if lane_of(json.loads(r.body)["device"], 2) == lane  # in store order
        ]
        assert peek.seen == every[-1].seq  # looked at everything: none of its own above
        # from `seen` on there is nothing of its own, until more arrives
        assert store.peek_lane(1000, lane, 2, after=peek.seen).rows == []
    fill_interleaved(store, make, 1, start=6)
    newer = store.peek_lane(1000, 0, 2, after=every[-1].seq).rows
    assert {json.loads(r.body)["seq"] for r in newer} == {6}
    # a full batch stops at its last event: that is where the next look starts
    two = store.peek_lane(2, 1, 2)
    assert len(two.rows) == 2 and two.seen == two.rows[-1].seq


def test_each_device_stays_in_one_lane_and_in_order(open_store, fake_server, metrics, make):
    store = open_store(name="gw.db")
    fill_interleaved(store, make, 60)  # 780 events, requests of at most 50
    pool = lanes_on(open_store, fake_server.client(), metrics, max_events=50)
    step_until_idle(pool, [0, 1, 1, 0, 1])
    by_device = seqs_by_device(fake_server.received)
    assert by_device == {d: list(range(1, 61)) for d in DEVICES}
    assert store.stats().depth == 0
    assert store.stats().counters["forwarded"] == 780 == metrics.forwarded._value.get()
    assert pool.forwarders[0].after > 0 and pool.forwarders[1].after > 0


def test_one_lanes_failures_neither_lose_nor_reorder_the_others(open_store, metrics, make):
    # The server fails every request that carries a device of lane 0, four times over:
    # lane 1 drains meanwhile, lane 0 keeps its batch and later sends it, in order.
    store = open_store(name="gw.db")
    fill_interleaved(store, make, 40)
    failing = set(devices_of(0))
    failures = {"left": 4}
    received: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        if failures["left"] and failing & {e["device"] for e in events}:
            failures["left"] -= 1
            return httpx.Response(503, json={"detail": "lane 0 unlucky"})
        received.extend(events)
        return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "rejected": []})

    client = httpx.Client(base_url="http://s", transport=httpx.MockTransport(handler))
    pool = lanes_on(open_store, client, metrics, max_events=30)
    steps = step_until_idle(pool, [0, 1])
    lane0 = [s for lane, s in steps if lane == 0]
    assert lane0[:4] == [Step.RETRY] * 4 and Step.SENT in lane0[4:]
    # lane 1 went on while lane 0 failed: four full batches before lane 0's first
    first_of_lane0 = next(i for i, e in enumerate(received) if e["device"] in failing)
    assert {e["device"] for e in received[:first_of_lane0]} <= set(devices_of(1))
    assert first_of_lane0 == 4 * 30
    assert seqs_by_device(received) == {d: list(range(1, 41)) for d in DEVICES}
    assert store.stats().depth == 0 and len(received) == 40 * len(DEVICES)
    assert len(pool.waits) == 4  # lane 0's back-offs only
    assert pool.forwarders[0].backoff is not pool.forwarders[1].backoff


def test_413_halves_only_the_lane_that_got_it(open_store, metrics, make):
    # One device sends events the server finds too big in numbers over 10: its lane
    # halves down to 10 a request, the other lane keeps sending full batches.
    store = open_store(name="gw.db")
    fill_interleaved(store, make, 50)
    big = devices_of(0)[0]
    batches: dict[int, list[int]] = {0: [], 1: []}
    received: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        if len(events) > 10 and any(e["device"] == big for e in events):
            return httpx.Response(413, json={"detail": "too large"})
        batches[lane_of(events[0]["device"], 2)].append(len(events))
        received.extend(events)
        return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "rejected": []})

    client = httpx.Client(base_url="http://s", transport=httpx.MockTransport(handler))
    pool = lanes_on(open_store, client, metrics)
    step_until_idle(pool, [0, 1])
    assert max(batches[0]) <= 10
    assert batches[1] == [50 * len(devices_of(1))]  # one request: never halved
    assert pool.forwarders[1].limit == 1000
    assert seqs_by_device(received) == {d: list(range(1, 51)) for d in DEVICES}
    assert store.stats().dead_letters == 0


def test_a_refusal_in_one_lane_stops_every_lane(open_store, metrics, make):
    store = open_store(name="gw.db")
    fill_interleaved(store, make, 5)
    requests: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(1)
        return httpx.Response(403, json={"detail": "token revoked"})

    client = httpx.Client(base_url="http://s", transport=httpx.MockTransport(handler))
    pool = lanes_on(open_store, client, metrics)
    assert pool.forwarders[1].step() is Step.HALTED
    assert pool.forwarders[0].step() is Step.HALTED  # without asking the server again
    assert pool.forwarders[1].step() is Step.HALTED
    assert len(requests) == 1
    assert "403" in (pool.halted or "")
    assert store.stats().depth == 5 * len(DEVICES)
    assert "403" in store.stats().state["halted"]
    assert metrics.halted._value.get() == 1


def test_requeued_events_are_found_behind_a_lanes_cursor(open_store, fake_server, metrics, make):
    # The lanes start their look after what they already sent; events put back in the
    # queue (requeue) get new, higher seqs, so they are still found.
    store = open_store(name="gw.db")
    fill_interleaved(store, make, 3)
    wrong = store.peek(1)[0]
    bad = json.dumps({**json.loads(wrong.body), "score": 11}).encode()
    store.conn.execute("UPDATE events SET body = ? WHERE seq = ?", (bad, wrong.seq))
    pool = lanes_on(open_store, fake_server.client(), metrics)
    step_until_idle(pool, [0, 1])
    assert store.stats().dead_letters == 1 and store.stats().depth == 0
    store.conn.execute("UPDATE dead_letters SET payload = ? WHERE source = 'server'", (wrong.body,))
    assert requeue.server_dead_letters(store) == 1
    step_until_idle(pool, [0, 1])
    assert store.stats().depth == 0
    assert sorted(e["id"] for e in fake_server.received) == sorted(
        f"{d}:{s}" for d in DEVICES for s in (1, 2, 3)
    )


@contextmanager
def running(
    pool: Lanes, stop: threading.Event | None = None
) -> Iterator[tuple[threading.Event, list[threading.Thread]]]:
    """The lanes' threads, running; stopped (woken, joined) on the way out. `stop`: the
    event the lanes were made with, if any."""
    stop = stop or threading.Event()
    threads = pool.threads(stop, idle_s=0.05)
    for t in threads:
        t.start()
    try:
        yield stop, threads
    finally:
        stop.set()
        pool.wake.set()
        for t in threads:
            t.join(10)


@pytest.mark.parametrize("lanes", [2, 3])
def test_the_lanes_keep_requests_in_flight_at_once(open_store, metrics, make, lanes):
    # The first `lanes` requests wait for each other at a barrier: with fewer lanes
    # in flight the barrier breaks (after 10 s) and the server answers 503.
    intake = open_store(name="gw.db")
    barrier = threading.Barrier(lanes, timeout=10)
    lock = threading.Lock()
    seen = {"requests": 0, "broken": 0, "in_flight": 0, "most": 0}
    received: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            seen["requests"] += 1
            seen["in_flight"] += 1
            seen["most"] = max(seen["most"], seen["in_flight"])
            first = seen["requests"] <= lanes
        try:
            if first:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    seen["broken"] += 1
                    return httpx.Response(503, json={"detail": "alone"})
            events = json.loads(request.content)["events"]
            with lock:
                received.extend(events)
            body = {"accepted": len(events), "duplicates": 0, "rejected": []}
            return httpx.Response(200, json=body)
        finally:
            with lock:
                seen["in_flight"] -= 1

    client = httpx.Client(base_url="http://s", transport=httpx.MockTransport(handler))
    pool = Lanes(lambda: open_store(name="gw.db"), client, metrics, gateway="gw-test", lanes=lanes)
    devices = [f"nps-conc{i:03d}" for i in range(60)]
    assert len({lane_of(d, lanes) for d in devices}) == lanes
    with running(pool) as (_, threads):
        fill_interleaved(intake, make, 20, devices=devices)
        pool.wake.set()
        wait_until(lambda: intake.stats().depth == 0, timeout=30, what="drained")
    assert not any(t.is_alive() for t in threads)  # every lane stopped
    assert seen["broken"] == 0 and seen["most"] == lanes
    assert seqs_by_device(received) == {d: list(range(1, 21)) for d in devices}
    assert metrics.forward_in_flight._value.get() == 0
    pool.close()


def test_stopping_lets_every_lane_finish_its_request(open_store, metrics, make):
    # Stop arrives while both lanes wait for the server's answer: each records its
    # answer (the store deletes what the server took) before its thread ends.
    intake = open_store(name="gw.db")
    fill_interleaved(intake, make, 10)
    both_in = threading.Barrier(3, timeout=10)
    answer = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        both_in.wait()
        answer.wait(10)
        return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "rejected": []})

    client = httpx.Client(base_url="http://s", transport=httpx.MockTransport(handler))
    pool = Lanes(lambda: open_store(name="gw.db"), client, metrics, gateway="gw-test", lanes=2)
    with running(pool) as (stop, threads):
        both_in.wait()  # both requests are at the server
        stop.set()
        answer.set()
    assert not any(t.is_alive() for t in threads)
    stats = intake.stats()
    assert stats.depth == 0 and stats.counters["forwarded"] == 10 * len(DEVICES)
    pool.close()


def test_forward_lanes_setting():
    assert GatewaySettings().forward_lanes == 1
    assert GatewaySettings(forward_lanes=2).forward_lanes == 2
    with pytest.raises(ValueError):
        GatewaySettings(forward_lanes=0)


def test_each_lane_lingers_after_a_part_batch(open_store, fake_server, metrics, make):
    # 30 rounds of one event from each of two devices in different lanes, 10 ms apart:
    # sent as they come, about 60 requests; each lane lingers 250 ms after a part
    # batch, so at most one request per lane per linger, and nothing is left behind.
    linger = 0.25
    intake = open_store(name="gw.db")
    pool = Lanes(
        lambda: open_store(name="gw.db"),
        fake_server.client(),
        metrics,
        gateway="gw-test",
        lanes=2,
        linger_s=linger,
    )
    pair = [devices_of(0)[0], devices_of(1)[0]]
    started = time.monotonic()
    with running(pool):
        for seq in range(1, 31):
            fill_interleaved(intake, make, 1, devices=pair, start=seq)
            pool.wake.set()
            time.sleep(0.01)
        took = time.monotonic() - started
        wait_until(lambda: intake.stats().depth == 0, timeout=10, what="drained")
    assert seqs_by_device(fake_server.received) == {d: list(range(1, 31)) for d in pair}
    assert len(fake_server.batches) <= 2 * (took / linger + 2), fake_server.batches
    pool.close()


class Fixed(Backoff):
    """A back-off of one fixed delay, whatever the attempt."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def next_delay(self) -> float:
        self.attempt += 1
        return self.delay_s


def timed_lanes(open_store, metrics, handler, delays: list[float], stop: threading.Event):
    """Two lanes with the given back-offs and the gateway's stop event (so `Resume` is on)."""
    each = iter(delays)
    client = httpx.Client(base_url="http://s", transport=httpx.MockTransport(handler))
    return Lanes(lambda: open_store(name="gw.db"), client, metrics, gateway="gw-test", lanes=2,
                 backoff=lambda: Fixed(next(each)), stop=stop)  # fmt: skip


def accepted(events: list[dict]) -> httpx.Response:
    return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "rejected": []})


def test_a_lane_back_after_an_outage_ends_the_other_lanes_back_off(open_store, metrics, make):
    # The server is down, then back after 0.3 s. Lane 0 backs off 1 s at a time, lane 1
    # 4 s: lane 0 finds the server back at about 1 s, and lane 1 must send within a
    # moment of that, not at 4 s, when its own back-off ends.
    intake = open_store(name="gw.db")
    fill_interleaved(intake, make, 5)
    up_at = time.monotonic() + 0.3
    answered: dict[int, float] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if time.monotonic() < up_at:
            raise httpx.ConnectError("connection refused", request=request)
        events = json.loads(request.content)["events"]
        for lane in {lane_of(e["device"], 2) for e in events}:
            answered.setdefault(lane, time.monotonic())
        return accepted(events)

    stop = threading.Event()
    pool = timed_lanes(open_store, metrics, handler, [1.0, 4.0], stop)
    started = time.monotonic()
    with running(pool, stop):
        wait_until(lambda: intake.stats().depth == 0, timeout=10, what="drained")
    assert 0.9 < answered[0] - started < 2.0, answered
    assert answered[1] - answered[0] < 0.5, (answered, "lane 1 waited out its own back-off")
    pool.close()


def test_a_lanes_own_failures_keep_their_back_off_while_the_other_sends(open_store, metrics, make):
    # The server refuses lane 0's batches three times (a batch it cannot take yet) and
    # takes lane 1's: lane 1's successes are no recovery, so lane 0 still waits 0.4 s
    # between its tries.
    intake = open_store(name="gw.db")
    fill_interleaved(intake, make, 5)
    lane0 = set(devices_of(0))
    tries: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        if lane0 & {e["device"] for e in events}:
            tries.append(time.monotonic())
            if len(tries) <= 3:
                return httpx.Response(503, json={"detail": "not yet"})
        return accepted(events)

    stop = threading.Event()
    pool = timed_lanes(open_store, metrics, handler, [0.4, 0.4], stop)
    with running(pool, stop):
        wait_until(lambda: intake.stats().depth == 0, timeout=10, what="drained")
    gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)][:3]
    assert len(gaps) == 3 and min(gaps) >= 0.39, gaps
    pool.close()


def test_stopping_ends_a_lanes_back_off(open_store, metrics, make):
    # The server is down and lane 1 backs off 30 s: stopping the gateway ends the wait.
    intake = open_store(name="gw.db")
    fill_interleaved(intake, make, 2)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    stop = threading.Event()
    pool = timed_lanes(open_store, metrics, handler, [30.0, 30.0], stop)
    with running(pool, stop) as (_, threads):
        time.sleep(0.3)  # both lanes are in their back-off
        began = time.monotonic()
    assert not any(t.is_alive() for t in threads) and time.monotonic() - began < 1.0
    assert intake.stats().depth == 2 * len(DEVICES)  # nothing lost
    pool.close()
