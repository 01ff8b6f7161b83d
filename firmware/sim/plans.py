"""What each simulated device is asked to do: its config.json and its input lines.

Random prompts for `nps-edge sim --devices N --responses M`, or a scenario file
(docs/firmware.md, Scenario files) for `--scenario DIR`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.protocol import TOPIC_ROOT
from firmware.sim.device import SimError

DEFAULT_REASONS = [
    {"code": "wait", "label": "Waiting time"},
    {"code": "price", "label": "Price"},
    {"code": "staff", "label": "Staff"},
    {"code": "broken", "label": "Not working"},
]
PROMPT_TIMEOUT_S = 30


def device_id(seed: int, index: int) -> str:
    digest = hashlib.sha256(f"nps-edge-sim:{seed}:{index}".encode()).hexdigest()
    return f"nps-{digest[:6]}"


def device_config(
    device: str,
    site: str,
    broker: tuple[str, int],
    *,
    topic_root: str = TOPIC_ROOT,
    fw: str | None = None,
    reasons: list[dict[str, str]] | None = None,
    sim: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A simulated device's config.json; the same schema as on an ESP32 plus "sim"."""
    cfg: dict[str, Any] = {
        "device_id": device,
        "site": site,
        "broker": {"host": broker[0], "port": broker[1], "backoff_max_s": 2},
        "topic_root": topic_root,
        "fw": fw,
        "reasons": DEFAULT_REASONS if reasons is None else reasons,
        "timeouts": {"prompt_s": PROMPT_TIMEOUT_S, "reason_s": 15, "thanks_s": 3},
        "sim": {"clock": "script", "stdin": "stream", **(sim or {})},
    }
    cfg.update(extra)
    return cfg


# Host-only marker between prompts in a paced plan; never sent to the device.
PAUSE = "#pause"


def answer_lines(score: int, reason_index: int | None, at_ms: int) -> list[str]:
    """Encoder input that picks score (the first detent selects 5) and a reason or skips it."""
    lines = [f"at {at_ms}", "turn 1"]
    if score != 5:
        lines.append(f"turn {score - 5}")
    lines.append("press")
    if score <= 6:
        if reason_index is None:
            lines.append("long")  # skip the reason, the score stands
        else:
            if reason_index:
                lines.append(f"turn {reason_index}")
            lines.append("press")
    return lines


def trigger_line(kind: str, ref: str | None) -> str:
    if kind == "walkup":
        return "press"
    return f"trigger {kind} {ref}" if ref else f"trigger {kind}"


@dataclass
class Plan:
    """A device's config and its input script, split at reboots (one part per process run)."""

    device: str
    config: dict[str, Any]
    parts: list[list[str]]
    # Config changes that take effect from the given part on (fw, rssi, battery after `set`).
    restart_sim: list[dict[str, Any]] = field(default_factory=list)


def random_plan(
    device: str,
    site: str,
    broker: tuple[str, int],
    responses: int,
    rng: random.Random,
    start_ms: int,
    *,
    topic_root: str = TOPIC_ROOT,
    fw: str | None = None,
    paced: bool = False,
) -> Plan:
    """Prompts after transactions until `responses` were answered; some time out, some dismissed.

    paced: the device runs on the real clock and the host feeds one prompt at a
    time (`PAUSE` separates them, see sim.run_device); `at` lines are then ignored.
    """
    sim: dict[str, Any] = {
        "rssi": rng.randint(-85, -45),
        "battery_mv": rng.randint(3500, 4150),
        "start_ms": start_ms,
    }
    if paced:
        sim["clock"] = "real"
    cfg = device_config(device, site, broker, topic_root=topic_root, fw=fw, sim=sim)
    lines: list[str] = []
    t = start_ms
    answered = 0
    n = 0
    while answered < responses:
        n += 1
        if paced and n > 1:
            lines.append(PAUSE)
        t += rng.randint(60, 600) * 1000
        kind = rng.choice(["cycle_complete", "cycle_complete", "service_visit", "walkup"])
        lines += [f"at {t}", trigger_line(kind, None if kind == "walkup" else f"tx-{n}")]
        roll = rng.random()
        if roll < 0.12:
            t += (PROMPT_TIMEOUT_S + 1) * 1000
            lines.append(f"at {t}")  # nobody answered
        elif roll < 0.18:
            lines.append("long")  # backed out
        else:
            score = rng.choices(range(11), weights=[2, 1, 1, 2, 2, 4, 6, 10, 16, 22, 24])[0]
            reason = rng.randrange(len(DEFAULT_REASONS) + 1) if score <= 6 else None
            t += rng.randint(1500, 9000)
            lines += answer_lines(score, None if reason == len(DEFAULT_REASONS) else reason, t)
            answered += 1
    if paced:  # on the real clock an `at` line would set the wall clock, not wait
        lines = [line for line in lines if not line.startswith("at ")]
    lines.append("drain")
    return Plan(device, cfg, [lines])


def scenario_plan(
    path: Path, broker: tuple[str, int], *, topic_root: str = TOPIC_ROOT, fw: str | None = None
) -> Plan:
    """Turn one scenario file (docs/firmware.md) into input lines, split at each reboot."""
    try:
        doc = json.loads(path.read_text())
        steps = sorted(doc["steps"], key=lambda s: float(s["at"]))
        device, site = doc["device"], doc["site"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SimError(f"{path.name}: not a scenario file ({err})") from None
    codes: list[str] = []
    for step in steps:
        code = step.get("reason")
        if code is not None and code not in codes:
            codes.append(code)
    if len(codes) > 4:
        raise SimError(f"{path.name}: a device has at most 4 reason codes, got {codes}")
    sim = {"rssi": doc.get("rssi"), "battery_mv": doc.get("battery_mv")}
    # The device boots a minute before its first step.
    first_ms = (int(float(steps[0]["at"]) * 1000) if steps else int(time.time() * 1000)) - 60000
    cfg = device_config(
        device,
        site,
        broker,
        topic_root=topic_root,
        fw=doc.get("fw") or fw,
        reasons=[{"code": c, "label": c.replace("_", " ")[:15]} for c in codes] or [],
        sim=dict(sim, start_ms=first_ms),
        telemetry_interval_s=0,
    )
    parts: list[list[str]] = [[]]
    restart: list[dict[str, Any]] = [dict(cfg["sim"], fw=cfg["fw"])]
    state = dict(restart[0])
    prev_ms = first_ms
    for i, step in enumerate(steps):
        try:
            lines, state, prev_ms = _step_lines(step, codes, state, prev_ms)
        except (KeyError, ValueError, TypeError) as err:
            raise SimError(f"{path.name}: step {i}: {err!r}") from None
        parts[-1] += lines
        if step["action"] == "reboot":
            parts.append([])
            restart.append(dict(state, start_ms=prev_ms))
    parts[-1].append("drain")
    return Plan(device, cfg, parts, restart)


def _step_lines(
    step: dict[str, Any], codes: list[str], state: dict[str, Any], prev_ms: int
) -> tuple[list[str], dict[str, Any], int]:
    """Input lines for one step, so that the event's ts is the step's `at`.

    A prompt is shown answer_ms (or the prompt timeout) before `at`, never
    before the previous step; returns (lines, device state, scripted time reached).
    """
    at_ms = int(float(step["at"]) * 1000)
    action = step["action"]
    lines = [f"at {at_ms}"]
    if action in ("answer", "timeout", "dismiss"):
        trig = step.get("trigger") or {"kind": "walkup", "ref": None}
        if action == "answer":
            lead_ms = int(step.get("answer_ms") or 2000)
        else:
            lead_ms = PROMPT_TIMEOUT_S * 1000 if action == "timeout" else 0
        shown_ms = max(at_ms - lead_ms, prev_ms)
        at_ms = shown_ms + lead_ms
        lines = [f"at {shown_ms}", trigger_line(trig["kind"], trig.get("ref"))]
    if action == "answer":
        score = step["score"]
        if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
            raise ValueError(f"score must be an integer 0..10, got {score!r}")
        reason = step.get("reason")
        index = codes.index(reason) if reason is not None and score <= 6 else None
        lines += answer_lines(score, index, at_ms)
        if score <= 6 and not codes:
            lines = [ln for ln in lines if ln != "long"]
    elif action == "timeout":
        lines.append(f"at {at_ms}")  # nobody touched it: the prompt ends at its deadline
    elif action == "dismiss":
        lines.append("long")
    elif action == "set":
        state = dict(state)
        for key in ("fw", "rssi", "battery_mv"):
            if key in step:
                state[key] = step[key]
                lines.append(f"set {key} {step[key]}")
    elif action == "telemetry":
        lines.append("telemetry")
    elif action == "reboot":
        lines.append("reboot")
    else:
        raise ValueError(f"unknown action {action!r}")
    return lines, state, at_ms
