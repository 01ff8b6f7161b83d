"""The issue's proofs: real Mosquitto (shipped config), real `nps-edge gateway` and
`nps-edge server` processes; what the server ends with is checked through its API."""

from __future__ import annotations

import json
import random
import threading

import httpx
import pytest

from gateway.policy import Rejected, admit, lane_of
from gateway.store import Store
from nps_edge.broker import free_port
from nps_edge.processes import wait_until
from tests.gateway.processes import GatewayProcess, Publisher, ServerProcess

pytestmark = pytest.mark.slow


def fleet(name: str, n: int = 10) -> list[str]:
    """Devices `nps-<name>000`...; each test has its own, and its own site `nps-<name>`."""
    return [f"nps-{name}{i:03d}" for i in range(n)]


def stream(devices: list[str], per_device: int, start: int = 1) -> list[tuple[str, bytes]]:
    """Interleaved events of several devices; every 4th is telemetry, the rest feedback."""
    out = []
    for seq in range(start, start + per_device):
        for device in devices:
            kind = "telemetry" if seq % 4 == 0 else "feedback"
            out.append((f"nps/v1/{device}/{kind}", json.dumps(event(device, seq, kind)).encode()))
    return out


def event(device: str, seq: int, kind: str, **over: object) -> dict:
    base = {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": device[:-3], "seq": seq,
        "boot": 1, "up_ms": seq * 10, "ts": 1795000000.0 + seq, "fw": "1.0.0", "type": kind,
    }  # fmt: skip
    if kind == "feedback":
        base |= {"outcome": "answered", "score": seq % 11, "trigger": {"kind": "walkup"}}
    else:
        base |= {"battery_mv": 3900, "rssi": -60, "errors": {}}
    return base | over


def expected_nps(devices: list[str], per_device: int) -> dict[str, int]:
    scores = [s % 11 for s in range(1, per_device + 1) if s % 4] * len(devices)
    return {
        "n": len(scores),
        "shown": len(scores),
        "promoters": sum(s >= 9 for s in scores),
        "detractors": sum(s <= 6 for s in scores),
    }


@pytest.fixture(scope="module")
def server_process(tmp_path_factory):
    """One server process for these tests (each test uses its own devices and site)."""
    proc = ServerProcess(tmp_path_factory.mktemp("server"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def server(server_process):
    if server_process.proc is None or server_process.proc.poll() is not None:
        server_process.start()  # a test that stopped it failed before restarting it
    return server_process


@pytest.fixture
def gateway(tmp_path, mqtt_broker):
    made: list[GatewayProcess] = []

    def make(server_url: str, token: str, **settings: object) -> GatewayProcess:
        gw = GatewayProcess(
            tmp_path / "gateway", mqtt_broker.address, server_url, token, settings=settings
        )
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


def counters(gw: GatewayProcess) -> dict[str, int]:
    """The gateway's persistent counters, read from its store (another connection)."""
    if not gw.store.exists():
        return {}
    store = Store(gw.store, readonly=True)
    try:
        stats = store.stats()
        return stats.counters | {"depth": stats.depth}
    finally:
        store.close()


def assert_server_has_exactly(server: ServerProcess, devices: list[str], per_device: int) -> None:
    for device in devices:
        gaps = server.get(f"/api/v1/devices/{device}/gaps")
        assert (gaps["max_seq"], gaps["received"], gaps["missing"]) == (per_device, per_device, [])
    nps = server.get("/api/v1/nps", site=devices[0][:-3])
    expected = expected_nps(devices, per_device)
    assert {k: nps[k] for k in expected} == expected  # each event counted once


def all_arrived(server: ServerProcess, devices: list[str], per_device: int) -> bool:
    for device in devices:
        try:
            if server.get(f"/api/v1/devices/{device}/gaps")["received"] != per_device:
                return False
        except httpx.HTTPStatusError as err:
            if err.response.status_code == 404:  # nothing of it has arrived yet
                return False
            raise
    return True


def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(
    server, gateway, mqtt_broker, tmp_path
):
    per_device = 500  # 5,000 events
    devices = fleet("kill")
    messages = stream(devices, per_device)
    gw = gateway(server.url, server.token_for(devices[0][:-3]))
    gw.start()
    publisher = Publisher(mqtt_broker.address)
    # Three parts, each published once the kill before it happened: on a fast
    # machine the whole stream could otherwise be in before the first kill.
    kills = (1000, 2500)
    parts = [messages[:1500], messages[1500:3000], messages[3000:]]
    killed = [threading.Event() for _ in kills]

    def send() -> None:
        for i, part in enumerate(parts):
            if i:
                killed[i - 1].wait(timeout=120)
            publisher.publish(part)

    sender = threading.Thread(target=send)
    sender.start()
    for kill_at, done in zip(kills, killed, strict=True):
        wait_until(lambda k=kill_at: counters(gw).get("received", 0) >= k, what=f"{kill_at} in")
        gw.kill()  # SIGKILL: no chance to flush anything
        assert counters(gw)["received"] < len(messages)  # mid-stream
        done.set()
        gw.start()
    sender.join()
    publisher.close()
    wait_until(lambda: all_arrived(server, devices, per_device), timeout=120, what="all events")
    assert_server_has_exactly(server, devices, per_device)
    wait_until(lambda: counters(gw).get("depth") == 0, what="store empty")
    gw.stop()
    assert gw.proc.returncode == 0  # SIGTERM is a clean shutdown


def test_server_outage_store_grows_then_drains_in_order(server, gateway, mqtt_broker):
    devices = fleet("out")
    lanes = 2
    assert {lane_of(d, lanes) for d in devices} == {0, 1}
    gw = gateway(server.url, server.token_for(devices[0][:-3]), retry_max_s=1, forward_lanes=lanes)
    gw.start()
    publisher = Publisher(mqtt_broker.address)
    publisher.publish(stream(devices, 20))
    wait_until(lambda: all_arrived(server, devices, 20), what="first events")
    server.stop()
    backlog = stream(devices, 200, start=21)
    publisher.publish(backlog)
    wait_until(lambda: counters(gw).get("depth") == len(backlog), what="the store to hold it all")
    server.start()
    live = stream(devices, 20, start=221)  # keeps coming while the backlog drains
    sender = threading.Thread(target=publisher.publish, args=(live,))
    sender.start()
    sent_ids = [json.loads(p)["id"] for _, p in backlog + live]

    def lane(ids: list[str], n: int) -> list[str]:
        return [i for i in ids if lane_of(i.rsplit(":", 1)[0], lanes) == n]

    samples = 0
    store = Store(gw.store, readonly=True)
    while (ids := store.ids()) and samples < 10_000:
        samples += 1  # each lane oldest first: what it holds is one run of what was sent
        for n in range(lanes):
            sent, held = lane(sent_ids, n), lane(ids, n)
            if held:
                start = sent.index(held[0])
                assert held == sent[start : start + len(held)]
    store.close()
    sender.join()
    wait_until(lambda: counters(gw).get("depth") == 0, what="drained")
    assert samples > 1
    wait_until(lambda: all_arrived(server, devices, 240), what="all at the server")
    assert_server_has_exactly(server, devices, 240)
    publisher.close()


def test_wrong_token_stops_forwarding_loudly_and_keeps_everything(server, gateway, mqtt_broker):
    gw = gateway(server.url, "not-a-token")
    gw.start()
    devices = fleet("tok", 2)
    publisher = Publisher(mqtt_broker.address)
    publisher.publish(stream(devices, 10))
    publisher.close()
    status = wait_until(lambda: (s := gw.status())["halted"] and s, what="halted")
    assert "401" in status["halted"]
    wait_until(lambda: gw.status()["depth"] == 20, what="all 20 kept")
    assert "FORWARDING STOPPED" in gw.log.read_text()
    assert gw.proc is not None and gw.proc.poll() is None  # still receiving


def test_full_store_drops_oldest_telemetry_first_and_counts_add_up(gateway, mqtt_broker):
    down = f"http://127.0.0.1:{free_port()}"  # no server: everything stays in the store
    gw = gateway(down, "t", max_events=1200, retry_max_s=1)
    gw.start()
    devices = fleet("full", 5)
    first = stream(devices, 300)  # 1,500 events: 375 telemetry, 1,125 feedback
    bad = [(f"nps/v1/{devices[0]}/feedback", b"{oops")] * 10
    publisher = Publisher(mqtt_broker.address)
    publisher.publish(first[:700] + bad + first[700:])
    wait_until(lambda: counters(gw).get("received") == 1510, what="all received")
    c = counters(gw)
    assert c["depth"] == 1200 and c["dead_letters:edge"] == 10
    # 300 over the limit: the 300 oldest telemetry went, every feedback stayed
    assert c["dropped:full_telemetry"] == 300 and "dropped:full_feedback" not in c
    assert c["received"] == c["depth"] + c["dropped:full_telemetry"] + c["dead_letters:edge"]
    ids = [json.loads(p)["id"] for t, p in first]
    telemetry = [i for (t, _), i in zip(first, ids, strict=True) if t.endswith("telemetry")]
    kept = stored_ids(gw)
    assert kept == [i for i in ids if i not in set(telemetry[:300])]

    second = stream(devices, 60, start=1001)  # 300 more: 75 telemetry, 225 feedback
    publisher.publish(second)
    wait_until(lambda: counters(gw).get("received") == 1810, what="the second wave")
    publisher.close()
    c = counters(gw)
    dropped = c["dropped:full_telemetry"] + c["dropped:full_feedback"]
    assert c["depth"] == 1200 and dropped == 600
    assert c["received"] == c["depth"] + dropped + c["dead_letters:edge"]
    kept = stored_ids(gw)
    all_ids = ids + [json.loads(p)["id"] for _, p in second]
    feedback = [i for i in all_ids if i not in set(telemetry) and int(i.split(":")[1]) % 4]
    kept_feedback = [i for i in kept if int(i.split(":")[1]) % 4]
    assert kept_feedback == feedback[len(feedback) - len(kept_feedback) :]  # the oldest went
    assert not set(telemetry) & set(kept)  # all of the first wave's telemetry went first
    status = gw.status()
    assert status["dropped"] == {
        "full_telemetry": c["dropped:full_telemetry"],
        "full_feedback": c["dropped:full_feedback"],
    }
    assert status["dead_letters"]["edge"] == 10 and status["depth"] == 1200


def stored_ids(gw: GatewayProcess) -> list[str]:
    store = Store(gw.store, readonly=True)
    try:
        return store.ids()
    finally:
        store.close()


def test_bad_payloads_are_dead_lettered_and_good_ones_around_them_arrive(
    server, gateway, mqtt_broker
):
    devices = fleet("bad", 3)
    gw = gateway(server.url, server.token_for(devices[0][:-3]))
    gw.start()
    good = stream(devices, 100)
    bad_device = "nps-junk001"
    topic = f"nps/v1/{bad_device}/feedback"
    payloads = [
        b"this is not json",
        event(bad_device, 1, "feedback", score=11),
        event(bad_device, 2, "feedback", score=True),
        event("nps-other01", 3, "feedback"),
        event(bad_device, 4, "feedback", pad="x" * 2100),
    ]
    bad = [(topic, p if isinstance(p, bytes) else json.dumps(p).encode()) for p in payloads]
    mixed = list(good)
    for i, b in enumerate(bad):
        mixed.insert(50 + 50 * i, b)
    publisher = Publisher(mqtt_broker.address)
    publisher.publish(mixed)
    publisher.close()
    wait_until(lambda: all_arrived(server, devices, 100), what="the good events")
    assert_server_has_exactly(server, devices, 100)
    # presence: the retained status and its last-will form reach the server
    status_topic = f"nps/v1/{devices[0]}/status"
    publisher = Publisher(mqtt_broker.address)
    publisher.publish([(status_topic, b'{"online": false}')], retain=True)
    publisher.close()
    wait_until(
        lambda: server.get(f"/api/v1/devices/{devices[0]}")["online"] is False, what="offline"
    )
    status = wait_until(lambda: (s := gw.status())["depth"] == 0 and s, what="drained")
    assert status["dead_letters"] == {"rows": 5, "edge": 5, "server": 0, "throttled": 0}
    assert status["received"] == 306 and status["forwarded"] == 300  # 305 events + 1 status
    store = Store(gw.store, readonly=True)
    reasons = " | ".join(d[3] for d in store.dead_letters(5))
    store.close()
    for expected in ("not JSON", "score: Input should be less than or equal to 10", "score:",
                     "does not match topic", "too large"):  # fmt: skip
        assert expected in reasons


def hostile_corpus(device: str, rng: random.Random, n: int = 200) -> list[tuple[str, bytes]]:
    """Issue 12's poison, then `n` near-valid mutations of a real event (seeded)."""
    topic = f"nps/v1/{device}/feedback"
    corpus = [
        (f"nps/v1/{device}/status", b'{"online": true, "boot": 9223372036854775808}'),
        (f"nps/v1/{device}/status", b"[" * 1000),
        (topic, b"[" * 1000),
        (topic, b'{"v": 1, "seq": NaN}'),
        (topic, json.dumps(event(device, 1, "feedback", boot=2**63)).encode()),
        (topic, json.dumps(event(device, 2, "feedback", ctx={"rssi": -(10**30)})).encode()),
        (topic, json.dumps(event(device, 3, "feedback", fw="x" * 5000)).encode()),
    ]
    corpus += [(f"nps/v1/{'y' * 60_000}{i}/feedback", b"{}") for i in range(50)]
    text = json.dumps(event(device, 4, "feedback"))
    for _ in range(n):
        at = rng.randrange(len(text))
        junk = rng.choice(["[" * 999, "NaN", "1e999", '"', "\\", "9" * 700, "\xff", "}", ""])
        corpus.append((topic, (text[:at] + junk + text[at + rng.randrange(3) :]).encode()))
    return corpus


def test_hostile_corpus_leaves_the_gateway_running_and_good_events_exactly_once(
    server, gateway, mqtt_broker
):
    devices = fleet("hos", 3)
    gw = gateway(server.url, server.token_for(devices[0][:-3]))
    gw.start()
    corpus = hostile_corpus("nps-hos-bad", random.Random(12))
    good = stream(devices, 40)
    mixed = list(good)
    for i, bad in enumerate(corpus):  # the poison among the good, and before most of them
        mixed.insert(min(i, len(mixed)), bad)
    publisher = Publisher(mqtt_broker.address)
    publisher.publish(corpus[:1], retain=True)  # redelivered at every start
    publisher.publish(mixed)
    wait_until(lambda: all_arrived(server, devices, 40), what="the good events")
    assert gw.proc is not None and gw.proc.poll() is None  # still running
    gw.stop()
    assert gw.proc.returncode == 0
    gw.start()  # the retained poison again: the old gateway died here on every start
    more = stream(devices, 10, start=41)
    publisher.publish(more)
    publisher.close()
    wait_until(lambda: all_arrived(server, devices, 50), what="events after the restart")
    assert_server_has_exactly(server, devices, 50)
    status = wait_until(lambda: (s := gw.status())["depth"] == 0 and s, what="drained")
    bad_received = status["received"] - len(good) - len(more)
    assert bad_received == len(corpus) + 2  # the retained status also at both starts
    # every bad message counted with its reason (a mutation may leave a valid event)
    judged = [admit(t, p, 1795000000.0, "nps/v1") for t, p in corpus]
    dead = sum(isinstance(j, Rejected) for j in judged)
    assert dead > len(corpus) // 2
    assert status["dead_letters"]["edge"] == dead + 2
    assert status["internal_errors"] == 0
    assert gw.proc.poll() is None
    assert gw.log.stat().st_size < 2_000_000  # 50 topics of 60 KB logged cut to 256 bytes
