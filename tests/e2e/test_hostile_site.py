"""Issue 12's proof for a whole locked-down site, set up as docs/broker.md tells a customer:
`nps-edge server` on SQLite, a site-bound gateway token, devices from `nps-edge device add`,
`nps-edge broker certs` + `broker config --tls`, `mosquitto -c`, `nps-edge gateway --config`.

Devices (paho over TLS, client id = username) publish good contract events among hostile
ones: issue 12's list and hypothesis-generated ones. What is good or bad is decided here, by
construction (raw bytes that cannot start a JSON object; one known contract violation applied
to a valid event), never by asking the code under test. Attacks on the broker go alongside.
At the end the server's own API and `nps-edge gateway status --json` must show every good
event once, the NPS of the good answers, every bad message counted with a reason, and every
process still running.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store import Store
from nps_edge.broker import Broker, free_port
from nps_edge.processes import (
    Child,
    create_token,
    gateway_status,
    nps_edge_command,
    spawn,
    start_server,
    subscriptions,
    wait_child,
    wait_until,
)
from nps_edge.site_broker import start_site_broker
from tests.broker.site import Mqtt, needs_mosquitto
from tests.conftest import gateway_token

pytestmark = pytest.mark.slow

S, T = "store-7", "store-9"  # this site, and another one
DEVICES = ("kiosk-a", "kiosk-b", "kiosk-c")
STRANGER = "kiosk-t"  # registered to site T
BAD_SEQ = 900_000  # bad events carry seqs from here: one wrongly stored shows in max_seq
MAX_INT = 2**53 - 1  # the contract's integer bound (issue 12)
NOW = time.time()
TS_1970, TS_2099 = 86_400.0, 4_070_908_800.0  # implausible: flagged, not rejected


def event(device: str, seq: int, kind: str = "answered", score: int | None = 9, **kw: Any):
    """A valid contract event: feedback (`answered`, `timeout`, `dismissed`) or `telemetry`."""
    base: dict[str, Any] = {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": S, "seq": seq,
        "boot": 3, "up_ms": 1000 + seq, "ts": NOW - 3600 + seq % 1000, "fw": "1.4.2",
    }  # fmt: skip
    if kind == "telemetry":
        base |= {"type": "telemetry", "battery_mv": 3900, "rssi": -60, "errors": {"wifi": 1}}
    else:
        base |= {"type": "feedback", "outcome": kind, "prompt": "nps", "answer_ms": 2100,
                 "trigger": {"kind": "walkup", "ref": None}, "ctx": {"rssi": -61}}  # fmt: skip
        if kind == "answered":
            base["score"] = score
    return base | kw


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --- what is certainly invalid: one known contract violation of a valid event -------------

# Values each field must not take (contract, and the bounds issue 12 documents).
NOT_ALLOWED: dict[str, list[Any]] = {
    "v": [0, 2, "1", True, None, 1.5],
    "seq": [0, -1, MAX_INT + 1, 2**63, "5", True, 3.5, None],
    "boot": [-1, MAX_INT + 1, 2**63, "3", False, 1.5, None],
    "up_ms": [-5, 2**64, "x", 0.5, None, 10**1500],
    "score": [11, -1, 100, "7", True, 7.5, None, [7]],
    "outcome": ["maybe", "", 1, None],
    "type": ["survey", "", None, 7],
    "fw": [7, None, "x" * 200, ["1"]],
    "site": ["Store 7", "", "-x", 7, None],
    "id": [None, 42, "x"],
    "ctx": ["x", [1], {"rssi": "strong"}, {"rssi": 10**30}],
    "trigger": ["walkup", {"kind": 5}, {"kind": "walkup", "ref": 5}],
    "answer_ms": [-1, "fast", 1.5],
    "ts": ["2026-01-01", True, {"t": 1}, [1.0]],
}
REQUIRED = ["v", "id", "device", "site", "seq", "boot", "up_ms", "fw", "type", "outcome", "score"]
JUNK = ["x", "}", "{", ",", "]", "null", '"', "\\", "\x00", "1"]


@dataclass(frozen=True)
class Bad:
    """One hostile message, published by device `dev` on its own topic. `how` says which
    known violation it carries; `arg` picks the value, position or bytes."""

    dev: int
    how: str
    arg: Any = None

    def render(self, seq: int) -> tuple[str, bytes]:
        device = DEVICES[self.dev]
        other = DEVICES[(self.dev + 1) % len(DEVICES)]
        topic = f"nps/v1/{device}/feedback"
        good = event(device, seq, score=self.dev + 5)
        text = json.dumps(good)
        match self.how:
            case "raw":  # not starting with `{` or blank: not a JSON object
                return f"nps/v1/{device}/{self.arg[0]}", self.arg[1]
            case "field":
                name, value = self.arg
                return topic, dumps(good | {name: value})
            case "missing":
                return topic, dumps({k: v for k, v in good.items() if k != self.arg})
            case "score_not_answered":  # a score with another outcome
                return topic, dumps(good | {"outcome": self.arg})
            case "device_not_topic":
                return topic, dumps(event(other, seq))
            case "other_site":  # valid JSON, refused by the server (not this gateway's site)
                return topic, dumps(good | {"site": T})
            case "type_not_topic":
                return f"nps/v1/{device}/telemetry", text.encode()
            case "cut":  # strictly shorter than the object: not JSON
                return topic, text.encode()[: self.arg % len(text)]
            case "trailing":
                return topic, (text + self.arg).encode()
            case "not_utf8":
                at = text.index('"1.4.2"') + 2
                return topic, text[:at].encode() + self.arg + text[at:].encode()
            case "digits":  # an integer literal of `arg[1]` digits for field `arg[0]`
                name, digits = self.arg
                return topic, re.sub(rf'"{name}": \d+', f'"{name}": {"9" * digits}', text).encode()
            case "constant":  # NaN and Infinity are not JSON (RFC 8259 section 6)
                name, constant = self.arg
                return topic, (text[:-1] + f', "{name}": {constant}}}').encode()
            case "nested":  # deeper than the documented bound (8)
                return topic, (text[:-1] + f', "x": {"[" * self.arg}{"]" * self.arg}}}').encode()
            case "too_large":  # over the contract's 2048 bytes
                return topic, dumps(good | {"pad": "p" * self.arg})
            case "not_object":
                return topic, dumps([good] if self.arg == "array" else text)
        raise AssertionError(self.how)


def hostile() -> st.SearchStrategy[Bad]:
    dev = st.integers(0, len(DEVICES) - 1)
    not_object_start = st.integers(0, 255).filter(lambda b: b not in b"{ \t\r\n\xef")
    raw = st.tuples(
        st.sampled_from(["feedback", "telemetry"]),
        st.builds(lambda b, rest: bytes([b]) + rest, not_object_start, st.binary(max_size=2500)),
    )
    field_value = st.sampled_from(sorted(NOT_ALLOWED)).flatmap(
        lambda k: st.tuples(st.just(k), st.sampled_from(NOT_ALLOWED[k]))
    )
    how_arg = st.one_of(
        st.tuples(st.just("raw"), raw),
        st.tuples(st.just("raw"), raw),  # twice: as likely as the near-valid fields
        st.tuples(st.just("field"), field_value),
        st.tuples(st.just("field"), field_value),
        st.tuples(st.just("missing"), st.sampled_from(REQUIRED)),
        st.tuples(st.just("score_not_answered"), st.sampled_from(["timeout", "dismissed"])),
        st.tuples(st.sampled_from(["device_not_topic", "other_site", "type_not_topic"]), st.none()),
        st.tuples(st.just("cut"), st.integers(0, 10_000)),
        st.tuples(st.just("trailing"), st.sampled_from(JUNK)),
        st.tuples(st.just("not_utf8"), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])),
        st.tuples(
            st.just("constant"),
            st.tuples(st.sampled_from(["ts", "x"]), st.sampled_from(["NaN", "Infinity"])),
        ),
        st.tuples(st.just("nested"), st.integers(9, 600)),
        st.tuples(st.just("too_large"), st.integers(2100, 4000)),
        st.tuples(st.just("not_object"), st.sampled_from(["array", "string"])),
    )
    return st.builds(lambda d, ha: Bad(d, ha[0], ha[1]), dev, how_arg)


@dataclass(frozen=True)
class Good:
    """A valid event of device `dev`; its seq is the device's next one when published."""

    dev: int
    kind: str  # answered, timeout, dismissed, telemetry
    score: int | None = None
    ts: str = "now"  # now, null, 1970, 2099

    def render(self, seq: int) -> tuple[str, bytes, dict[str, Any]]:
        device = DEVICES[self.dev]
        ts = {"now": NOW - 3600 + seq % 1000, "null": None, "1970": TS_1970, "2099": TS_2099}[
            self.ts
        ]
        ev = event(device, seq, self.kind, self.score, ts=ts)
        topic = "telemetry" if self.kind == "telemetry" else "feedback"
        return f"nps/v1/{device}/{topic}", dumps(ev), ev


def goods() -> st.SearchStrategy[Good]:
    kind = st.sampled_from(["answered", "answered", "timeout", "dismissed", "telemetry"])
    return st.builds(
        lambda d, k, s, ts: Good(d, k, s if k == "answered" else None, ts),
        st.integers(0, len(DEVICES) - 1), kind, st.integers(0, 10),
        st.sampled_from(["now", "now", "null", "1970", "2099"]),
    )  # fmt: skip


# --- the site ------------------------------------------------------------------------------


def cli(*args: str) -> str:
    """`nps-edge ...` as an installer types it; its stdout."""
    done = subprocess.run([*nps_edge_command(), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"nps-edge {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class Site:
    root: Path
    server: Child
    broker: Broker
    gateway: Child
    viewer: str
    logins: dict[str, str]
    clients: dict[str, Mqtt] = field(default_factory=dict)
    next_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DEVICES, 1))
    good: list[dict[str, Any]] = field(default_factory=list)
    bad: list[tuple[Bad, str, bytes]] = field(default_factory=list)
    statuses: int = 0
    opened: list[Mqtt] = field(default_factory=list)

    @property
    def store(self) -> Path:
        return self.root / "gateway.db"

    def mqtt(self, username: str | None, password: str | None) -> Mqtt:
        client = Mqtt(self.broker, username=username, password=password, ca=self.root / "ca/ca.crt")
        self.opened.append(client)
        return client

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.viewer}"}
        answer = httpx.get(f"{self.server.url}{path}", params=params, headers=headers, timeout=10)
        answer.raise_for_status()
        return answer

    def api(self, path: str, **params: Any) -> Any:
        return self.get(path, **params).json()

    def publish(self, items: list[Good | Bad]) -> None:
        """Publish in order, each from its own device's client, QoS 1, every PUBACK awaited."""
        pending = []
        for item in items:
            device = DEVICES[item.dev]
            if isinstance(item, Good):
                topic, payload, ev = item.render(self.next_seq[device])
                self.next_seq[device] += 1
                self.good.append(ev)
            else:
                topic, payload = item.render(BAD_SEQ + len(self.bad))
                self.bad.append((item, topic, payload))
            pending.append(self.clients[device].client.publish(topic, payload, qos=1))
        for info in pending:
            info.wait_for_publish(10)
            assert info.is_published()

    def counters(self) -> dict[str, int]:
        store = Store(self.store, readonly=True)
        try:
            return store.stats().counters
        finally:
            store.close()

    def settled(self) -> dict[str, int]:
        """Wait (bounded) until the gateway took every message that passed the ACL and the
        server answered for every event; returns the store's counters."""
        sent = len(self.good) + len(self.bad) + self.statuses

        def done() -> dict[str, int] | None:
            c = self.counters()
            return c if c.get("received", 0) >= sent and c.get("depth", 0) == 0 else None

        counters: dict[str, int] = wait_until(done, 30, f"the gateway to take {sent} messages")
        assert counters["received"] == sent  # nothing forged slipped through the broker
        return counters


@pytest.fixture
def site() -> Iterator[Site]:
    """Server, broker and gateway started once, as docs/broker.md sets a site up."""
    needs_mosquitto()
    root = Path(tempfile.mkdtemp(prefix="nps-hostile-site-"))
    root.chmod(0o711)  # the mosquitto user enters; pytest's tmp_path is 0700
    db = f"sqlite:///{root / 'server.db'}"
    children: list[Any] = []
    try:
        server = start_server(db, root / "logs/server.log", port=free_port())
        children.append(server)
        token_file = root / "gateway.token"
        token_file.write_text(gateway_token(db, name=f"gw-{S}", site=S) + "\n")
        token_file.chmod(0o600)
        viewer = create_token(db, "viewer", "auditor")
        logins = {}
        for device, at in [(d, S) for d in DEVICES] + [(STRANGER, T)]:
            line = json.loads(cli("device", "add", "--db", db, "--site", at, "--id", device))
            assert line["username"] == device and line["site"] == at
            logins[device] = line["password"]
        out, port = root / "broker", free_port()
        cli("broker", "certs", "--site", S, "--out", str(root / "ca"))
        cli("broker", "config", "--db", db, "--site", S, "--out", str(out), "--tls",
            "--port", str(port), "--certs", str(root / "ca"))  # fmt: skip
        broker = start_site_broker(out, port=port)
        children.append(broker)
        gateway_log = root / "logs/gateway.log"
        gateway = spawn(
            "gateway",
            ["gateway", "--config", str(out / "gateway.toml"), "--server", str(server.url),
             "--store", str(root / "gateway.db"), "--metrics-port", "0"],
            gateway_log,
            env={"NPS_EDGE_TOKEN_FILE": str(token_file)},
        )  # fmt: skip
        children.append(gateway)
        wait_child(gateway, lambda: subscriptions(gateway_log) > 0, "the gateway's subscription")
        s = Site(root, server, broker, gateway, viewer, logins)
        for device in DEVICES:
            s.clients[device] = s.mqtt(device, logins[device]).connected()
        yield s
        for client in s.opened:
            client.close()
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- the proof -----------------------------------------------------------------------------

ISSUE_12 = [  # (dev, how, arg): issue 12's list, each certainly invalid
    Bad(0, "raw", ("status", b'{"online": true, "fw": "1.4.2", "boot": 9223372036854775808}')),
    Bad(0, "raw", ("status", b"[" * 1000)),
    Bad(1, "raw", ("feedback", b"[" * 1000)),
    Bad(1, "digits", ("seq", 5000)),  # also over 2048 bytes
    Bad(2, "digits", ("up_ms", 1500)),  # under 2048 bytes
    Bad(2, "constant", ("ts", "NaN")),
    Bad(0, "not_utf8", b"\xff\xfe"),
    Bad(1, "too_large", 3000),  # a 3 KB payload
    Bad(2, "device_not_topic"),
    Bad(0, "field", ("score", 11)),
    Bad(1, "field", ("score", "7")),
    Bad(2, "other_site"),
]


def nps_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's figures (contract.md, server read API), computed here from what was sent."""
    feedback = [e for e in events if e["type"] == "feedback"]
    scores = [e["score"] for e in feedback if e["outcome"] == "answered"]
    n, pro, det = len(scores), sum(s >= 9 for s in scores), sum(s <= 6 for s in scores)
    p, d = (pro + 0.75) / (n + 3), (det + 0.75) / (n + 3)
    c = p - d
    se = math.sqrt((p + d - c * c) / (n + 3))
    ci = [max(-100.0, 100 * (c - 1.96 * se)), min(100.0, 100 * (c + 1.96 * se))]
    return {"n": n, "promoters": pro, "detractors": det, "shown": len(feedback),
            "nps": 100 * (pro - det) / n if n else None, "ci95": ci}  # fmt: skip


def test_a_locked_down_site_under_attack_keeps_every_good_event_exactly_once(site: Site) -> None:
    a, b, _ = DEVICES
    for device in DEVICES:  # each device's retained presence, as the firmware sends it
        site.clients[device].publish(
            f"nps/v1/{device}/status", b'{"online": true, "boot": 3}', True
        )
        site.statuses += 1

    # The broker: no anonymous login, no wrong password, no login for another site's device.
    for username, password in [(None, None), (a, "wrong"), (STRANGER, site.logins[STRANGER])]:
        assert site.mqtt(username, password).answer().is_failure, username
    # Device A writes as B: B's next seqs with score 0, a far seq, and B's status offline.
    forged = [event(b, site.next_seq[b] + i, score=0) for i in range(2)] + [event(b, 777_777)]
    for ev in forged:
        site.clients[a].publish(f"nps/v1/{b}/feedback", dumps(ev))
    site.clients[a].publish(f"nps/v1/{b}/status", b'{"online": false}', True)

    # Issue 12's list among good events, including the implausible times (flagged, kept).
    items: list[Good | Bad] = []
    for i, bad in enumerate(ISSUE_12):
        items += [Good(i % 3, "answered", (i * 7) % 11, ["now", "1970", "2099", "null"][i % 4])]
        items += [bad, Good((i + 1) % 3, "timeout" if i % 5 else "telemetry")]
    site.publish(items)
    site.settled()

    @settings(max_examples=40, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(st.lists(st.one_of(goods(), hostile(), hostile()), min_size=4, max_size=24))
    def batch(items: list[Good | Bad]) -> None:
        before = site.counters()
        site.publish(items)
        after = site.settled()
        dead = sum(after.get(f"dead_letters:{k}", 0) - before.get(f"dead_letters:{k}", 0)
                   for k in ("edge", "server"))  # fmt: skip
        assert dead == sum(isinstance(i, Bad) for i in items)
        for proc in (site.server.proc, site.broker.proc, site.gateway.proc):
            assert proc.poll() is None, proc.args

    batch()

    # Every good event exactly once, and only those: per device, per id and score.
    site.settled()
    for device in DEVICES:
        mine = [e for e in site.good if e["device"] == device]
        gaps = site.api(f"/api/v1/devices/{device}/gaps")
        assert gaps == {"device": device, "max_seq": len(mine), "received": len(mine),
                        "missing": []}  # fmt: skip
    export = site.get("/api/v1/export", site=S, format="json").text
    exported = [json.loads(line) for line in export.splitlines()]
    got = sorted((r["id"], r["outcome"], r["score"]) for r in exported)
    sent = sorted(
        (e["id"], e["outcome"], e.get("score")) for e in site.good if e["type"] == "feedback"
    )
    assert got == sent
    figures, want = site.api("/api/v1/nps", site=S), nps_of(site.good)
    for key in ("n", "promoters", "detractors", "shown"):
        assert figures[key] == want[key], key
    assert figures["nps"] == pytest.approx(want["nps"], abs=0.01)
    assert figures["ci95"] == pytest.approx(want["ci95"], abs=0.01)
    assert site.api(f"/api/v1/devices/{b}")["online"] is True  # A's forged offline dropped
    assert STRANGER not in {row["device"] for row in site.api("/api/v1/devices")}

    # Every bad message counted once with a reason, at the gateway's edge or by the server.
    status = gateway_status(site.store)
    assert status["received"] == len(site.good) + len(site.bad) + site.statuses
    assert status["forwarded"] == len(site.good) and status["depth"] == 0
    dead = status["dead_letters"]
    assert dead["edge"] + dead["server"] == len(site.bad) and dead["throttled"] == 0
    assert status["duplicates"] == {"received": 0, "server": 0}
    assert status["internal_errors"] == 0
    rejections = site.api("/api/v1/rejections", limit=1000)
    assert (
        rejections["count"] == dead["server"] == sum(b.how == "other_site" for b, _, _ in site.bad)
    )
    assert all(r["error"].startswith("site:") for r in rejections["items"])
    store = Store(site.store, readonly=True)
    reasons = [reason for _, _, _, reason in store.dead_letters(100_000)]
    store.close()
    assert len(reasons) == len(site.bad) and all(r.strip() for r in reasons)
    assert not [r for r in reasons if r.startswith("internal")]
    assert sum(r.startswith("server: site:") for r in reasons) == dead["server"]

    # The implausible times: kept, and counted at both hops.
    implausible = sum(e["ts"] in (TS_1970, TS_2099) for e in site.good)
    assert implausible > 0 and status["implausible_ts"] == implausible
    metrics = httpx.get(f"{site.server.url}/metrics", timeout=10).text
    assert f'nps_edge_implausible_ts_total{{field="ts"}} {float(implausible)}' in metrics

    # Nothing stopped.
    for proc in (site.server.proc, site.broker.proc, site.gateway.proc):
        assert proc.poll() is None, proc.args
