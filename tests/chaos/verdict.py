"""The chaos run's verdict: the devices' own logs against the server's own API.

Every feedback event a device confirmed (its `saved` line: on flash, thanks on screen; or
its `acked` line) must be stored exactly once with the same outcome and score; the NPS the
server reports must be the NPS of those answers; every other event lost must be telemetry
the gateways counted as dropped. Nothing here starts or stops a process.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contract.nps import Tally

KIND = {"f": "feedback", "t": "telemetry"}
COUNTED_TELEMETRY_DROPS = ("full_telemetry", "expired")  # docs/gateway.md, the store's limits


@dataclass
class Logged:
    """One event as its device logged it."""

    kind: str
    outcome: str | None = None
    score: int | None = None
    saved_at: float | None = None
    acked_at: float | None = None
    errors: dict[str, int] = field(default_factory=dict)  # a telemetry event's counters

    @property
    def at(self) -> float:
        return self.acked_at if self.acked_at is not None else self.saved_at or 0.0


def read_device_log(path: Path) -> dict[int, Logged]:
    """seq -> event from a device's `.out` file (fleet.py: seconds, then the device's line)."""
    events: dict[int, Logged] = {}
    for raw in path.read_text(errors="replace").splitlines():
        parts = raw.split(" ", 4)
        if len(parts) < 4 or parts[1] not in ("saved", "acked") or parts[2] not in KIND:
            continue
        at, what, kind, seq = float(parts[0]), parts[1], KIND[parts[2]], int(parts[3])
        event = events.setdefault(seq, Logged(kind))
        rest = parts[4] if len(parts) > 4 else ""
        if what == "saved":
            event.saved_at = at if event.saved_at is None else event.saved_at
            if kind == "feedback":
                outcome, _, score = rest.partition(" ")
                event.outcome, event.score = outcome, None if score == "-" else int(score)
        else:
            event.acked_at = at if event.acked_at is None else event.acked_at
            if rest.startswith("{"):
                body = json.loads(rest)
                if kind == "feedback":
                    event.outcome, event.score = body["outcome"], body.get("score")
                else:
                    event.errors = body.get("errors") or {}
    return events


@dataclass
class ServerView:
    """What the server's API says at the end."""

    feedback: Counter[str]  # id -> rows in the export
    rows: dict[str, dict[str, Any]]
    seqs: dict[str, set[int]]  # device -> every seq stored (feedback and telemetry)
    received: dict[str, int]
    nps: dict[str, Any]

    @classmethod
    def read(cls, api: httpx.Client, devices: list[str]) -> ServerView:
        export = api.get("/api/v1/export", params={"format": "json"})
        export.raise_for_status()
        rows = [json.loads(line) for line in export.text.splitlines() if line.strip()]
        seqs: dict[str, set[int]] = {}
        received: dict[str, int] = {}
        for device in devices:
            answer = api.get(f"/api/v1/devices/{device}/gaps")
            if answer.status_code == 404:
                seqs[device], received[device] = set(), 0
                continue
            answer.raise_for_status()
            gaps = answer.json()
            have = set(range(1, gaps["max_seq"] + 1))
            for lo, hi in gaps["missing"]:
                have -= set(range(lo, hi + 1))
            seqs[device], received[device] = have, gaps["received"]
        nps = api.get("/api/v1/nps")
        nps.raise_for_status()
        return cls(
            Counter(r["id"] for r in rows), {r["id"]: r for r in rows}, seqs, received, nps.json()
        )

    def total(self) -> int:
        return sum(len(s) for s in self.seqs.values())


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def row(self, name: str, value: object) -> None:
        self.lines.append(f"  {name:<34} {value}")

    @property
    def table(self) -> str:
        return "\n".join(self.lines)


def attribute(at: float, timeline: list[tuple[float, float, str]]) -> str:
    """The fault that was on, or had last ended, when an event was acknowledged or saved."""
    before = [what for start, _, what in timeline if start <= at]
    return before[-1].split(":")[0] if before else "no fault yet"


def judge(
    *,
    logs: dict[str, dict[int, Logged]],
    server: ServerView,
    fillers: dict[str, int],
    gateways: dict[str, dict[str, Any]],
    timeline: list[tuple[float, float, str]],
) -> Verdict:
    """Hold the server to the devices' logs; `gateways`: site -> store counters."""
    v = Verdict()
    confirmed = {
        f"{dev}:{seq}": e
        for dev, events in logs.items()
        for seq, e in events.items()
        if e.kind == "feedback"
    }
    ours = {i: n for i, n in server.feedback.items() if i.split(":")[0] in logs}
    missing = sorted(set(confirmed) - set(ours))
    extra = sorted(set(ours) - set(confirmed))
    doubled = sorted(i for i, n in ours.items() if n > 1)
    changed = [
        i
        for i in set(confirmed) & set(ours)
        if (server.rows[i]["outcome"], server.rows[i].get("score"))
        != (confirmed[i].outcome, confirmed[i].score)
    ]
    by_fault = Counter(attribute(confirmed[i].at, timeline) for i in missing)
    if missing:
        v.fail(
            f"{len(missing)} confirmed feedback events missing at the server "
            f"(by the fault before their PUBACK: {dict(by_fault)}): {missing[:20]}"
        )
    if doubled:
        v.fail(f"feedback stored more than once: {doubled[:20]}")
    if extra:
        v.fail(f"feedback at the server that no device logged: {extra[:20]}")
    if changed:
        v.fail(f"feedback stored with another outcome or score: {sorted(changed)[:20]}")

    # NPS: the server's figure against the one of the devices' own answers.
    tally = Tally.of_scores([e.score for e in confirmed.values()]).summary()
    keys = ("n", "promoters", "passives", "detractors", "shown", "nps")
    if any(tally[k] != server.nps.get(k) for k in keys):  # type: ignore[literal-required]
        v.fail(
            "NPS differs: devices "
            f"{ {k: tally[k] for k in keys} } server { {k: server.nps.get(k) for k in keys} }"  # type: ignore[literal-required]
        )

    # Every other loss must be telemetry the gateways counted as dropped.
    lost_telemetry = 0
    unexplained: list[str] = []
    for dev, events in logs.items():
        stored = server.seqs.get(dev, set())
        lost_telemetry += sum(
            1 for seq, e in events.items() if e.kind == "telemetry" and seq not in stored
        )
        top = max(stored, default=0)
        unexplained += [
            f"{dev}:{s}" for s in range(1, top + 1) if s not in stored and s not in events
        ]
        if server.received.get(dev, 0) != len(stored):
            v.fail(
                f"{dev}: the server counts {server.received.get(dev)} received,"
                f" stores {len(stored)}"
            )
    filler_lost = sum(max(0, n - len(server.seqs.get(f, set()))) for f, n in fillers.items())
    dropped: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    dups: Counter[str] = Counter()
    for counters in gateways.values():
        dropped.update(counters["dropped"])
        dead.update(counters["dead_letters"])
        dups.update(counters["duplicates"])
    outbox: Counter[str] = Counter()
    for events in logs.values():  # the largest count a device reported, per counter
        most: Counter[str] = Counter()
        for e in events.values():
            for name, n in e.errors.items():
                if name.startswith("outbox_dropped"):
                    most[name] = max(most[name], n)
        outbox.update(most)
    counted = sum(dropped.get(k, 0) for k in COUNTED_TELEMETRY_DROPS)
    counted += outbox.get("outbox_dropped_telemetry", 0)
    losses = lost_telemetry + filler_lost + len(unexplained)
    if dropped.get("full_feedback", 0):
        v.fail(f"gateways dropped {dropped['full_feedback']} feedback events for room")
    if losses > counted:
        v.fail(
            f"{losses} events lost ({lost_telemetry} device telemetry, {filler_lost} filler"
            f" telemetry, {len(unexplained)} seqs no device logged: {unexplained[:10]})"
            f" but the gateways and devices counted {counted} telemetry drops"
        )

    answered = sum(1 for e in confirmed.values() if e.outcome == "answered")
    telemetry = sum(1 for ev in logs.values() for e in ev.values() if e.kind == "telemetry")
    v.row("feedback confirmed by devices", f"{len(confirmed)} ({answered} answered)")
    v.row("feedback stored at the server", f"{sum(ours.values())} rows, {len(ours)} ids")
    v.row("feedback missing / doubled / extra", f"{len(missing)} / {len(doubled)} / {len(extra)}")
    v.row("telemetry logged by devices", f"{telemetry}, {lost_telemetry} not stored")
    v.row("filler telemetry acked / lost", f"{sum(fillers.values())} / {filler_lost}")
    v.row("duplicates suppressed (gateways)", dict(dups))
    v.row("gateway drops by counter", dict(dropped) or "none")
    v.row("gateway dead letters", dict(dead))
    v.row("device outbox drops (telemetry)", dict(outbox) or "none")
    v.row("NPS devices / server", f"{tally['nps']} (n={tally['n']}) / "
          f"{server.nps.get('nps')} (n={server.nps.get('n')})")  # fmt: skip
    return v
