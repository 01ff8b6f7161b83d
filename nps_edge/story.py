"""A seeded month of plausible fleet history with a story in it, for the demo and tests.

Pure: no I/O, no clock. `generate(Story(end=...))` returns one simulator
scenario per device (the JSON `nps-edge sim --scenario DIR` consumes);
`scenario_events(scenario)` turns one into the contract events the firmware
would emit, so tests can seed a server through `POST /api/v1/ingest` fast.

The story an operator should find on the dashboard:

- firmware `release_fw` rolls out mid-period to part of the fleet; it hurts
  Wi-Fi (RSSI about 20 dB lower, more connection errors, more reboots),
  more prompts time out, and scores drop; `nps_edge/story_fleet.py` records that as a
  staged rollout of a signed release, which its NPS canary halts (issue 14);
- at `service_site` machines need a technician three times as often, and
  detractors cluster on prompts after service visits (trigger kind
  `service_visit`, reasons "staff" and "wait_time");
- an evening rush (17-19 h UTC) costs a little everywhere, which the
  hour-by-weekday heat map shows.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from nps_edge.story_programme import add_programme
from nps_edge.story_voice import voice_comments  # noqa: F401  (the story's phone comments)

DAY = 86_400.0
HOUR = 3_600.0

DETRACTOR_REASONS = ("wait_time", "machine_fault", "price", "staff")
PASSIVE_REASONS = ("wait_time", "price")

# Relative prompt volume per UTC hour (0 = closed): morning, lunch and evening peaks.
HOUR_WEIGHTS = (
    0, 0, 0, 0, 0, 0, 0, 2, 4, 5, 5, 6, 9, 9, 6, 5, 6, 9, 10, 9, 6, 4, 2, 0,
)  # fmt: skip
RUSH_HOURS = (17, 18, 19)
SITE_MOOD = (0.45, 0.1, -0.15, -0.4, 0.25, -0.25)
BASE_MOOD = 8.8
SCORE_SD = 1.5


@dataclass(frozen=True)
class Story:
    """What to generate; `end` is the last instant of history (unix seconds)."""

    end: float
    days: int = 30
    sites: int = 4
    devices_per_site: int = 5
    prompts_per_day: float = 30.0
    telemetry_minutes: tuple[float, float] = (15.0, 30.0)
    seed: int = 7
    base_fw: str = "1.4.0"
    release_fw: str = "1.5.0"
    release_share: float = 0.5
    service_site: str = "store-3"
    service_visits_per_day: float = 1.5

    @property
    def start(self) -> float:
        return self.end - self.days * DAY

    @property
    def release_at(self) -> float:
        """Start of the rollout: midnight UTC of the middle day, plus 2 h."""
        middle = self.start + (self.days // 2) * DAY
        return math.floor(middle / DAY) * DAY + 2 * HOUR


@dataclass
class _Device:
    """One device's evolving state while its story is written."""

    device: str
    site: str
    mood: float
    rssi: int
    battery_mv: int
    fw: str
    updated_at: float | None  # when it gets the release, None if never


def site_names(story: Story) -> list[str]:
    return [f"store-{i + 1}" for i in range(story.sites)]


def generate(story: Story) -> list[dict[str, Any]]:
    """One scenario dict per device, in fleet order (site by site)."""
    rng = random.Random(story.seed)
    fleet = _fleet(story, rng)
    scenarios = [
        _scenario(story, dev, random.Random(f"{story.seed}:{dev.device}")) for dev in fleet
    ]
    return add_programme(
        scenarios,
        start=story.start,
        end=story.end,
        seed=story.seed,
        service_site=story.service_site,
    )  # roles and relationship answers: nps_edge/story_programme.py


def _fleet(story: Story, rng: random.Random) -> list[_Device]:
    total = story.sites * story.devices_per_site
    ids = rng.sample(range(0x1000, 0xFFFFFF), total)
    updated = set(rng.sample(range(total), round(total * story.release_share)))
    fleet = []
    for index, device_no in enumerate(ids):
        site_index = index // story.devices_per_site
        site = f"store-{site_index + 1}"
        rollout = story.release_at + (index % 3) * DAY + rng.uniform(0, HOUR)
        fleet.append(
            _Device(
                device=f"nps-{device_no:06x}",
                site=site,
                mood=SITE_MOOD[site_index % len(SITE_MOOD)] + rng.gauss(0, 0.15),
                rssi=rng.randint(-68, -50),
                battery_mv=rng.randint(3750, 4150),
                fw=story.base_fw,
                updated_at=rollout if index in updated else None,
            )
        )
    return fleet


def _scenario(story: Story, dev: _Device, rng: random.Random) -> dict[str, Any]:
    header = {
        "device": dev.device,
        "site": dev.site,
        "fw": dev.fw,
        "rssi": dev.rssi,
        "battery_mv": dev.battery_mv,
    }
    steps: list[dict[str, Any]] = []
    steps += _telemetry_steps(story, rng)
    steps += _health_steps(story, dev, rng)
    steps += _prompt_steps(story, dev, rng)
    steps = [s for s in steps if story.start <= s["at"] < story.end]
    steps.sort(key=lambda s: s["at"])
    return {**header, "steps": steps}


def _telemetry_steps(story: Story, rng: random.Random) -> list[dict[str, Any]]:
    low, high = story.telemetry_minutes
    at = story.start + rng.uniform(0, low * 60)
    steps = []
    while at < story.end:
        steps.append({"at": round(at, 1), "action": "telemetry"})
        at += rng.uniform(low, high) * 60
    return steps


def _health_steps(story: Story, dev: _Device, rng: random.Random) -> list[dict[str, Any]]:
    """Nightly battery/RSSI drift, the firmware update with its reboot, random reboots."""
    steps: list[dict[str, Any]] = []
    base_rssi, battery = dev.rssi, dev.battery_mv
    first_day = math.floor(story.start / DAY)
    for day in range(first_day, math.ceil(story.end / DAY)):
        if dev.updated_at is not None and day == math.floor(dev.updated_at / DAY):
            # The update lands in the small hours: new firmware, a reboot, weaker Wi-Fi.
            rssi = base_rssi - 20 + rng.randint(-2, 2)
            steps.append(_set(dev.updated_at, story, dev, True, rssi, battery))
            steps.append({"at": round(dev.updated_at + 5.0, 1), "action": "reboot"})
        night = day * DAY + 3 * HOUR + rng.uniform(0, HOUR)
        released = dev.updated_at is not None and night >= dev.updated_at
        battery -= rng.randint(10, 35)
        if battery < 3550:
            battery = rng.randint(4050, 4180)  # someone charged it
        rssi = base_rssi + rng.randint(-3, 3) - (20 if released else 0)
        steps.append(_set(night, story, dev, released, rssi, battery))
        crash_rate = 0.5 if released else 0.03
        if rng.random() < crash_rate:
            steps.append(
                {"at": round(day * DAY + rng.uniform(8, 21) * HOUR, 1), "action": "reboot"}
            )
    return steps


def _set(
    at: float, story: Story, dev: _Device, released: bool, rssi: int, battery: int
) -> dict[str, Any]:
    fw = story.release_fw if released else story.base_fw
    return {"at": round(at, 1), "action": "set", "fw": fw, "rssi": rssi, "battery_mv": battery}


def _prompt_steps(story: Story, dev: _Device, rng: random.Random) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    tx = visit = 0
    visits: list[float] = []
    for day in range(math.floor(story.start / DAY), math.ceil(story.end / DAY)):
        weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        expected = story.prompts_per_day * (1.25 if weekend else 1.0)
        count = max(0, round(rng.gauss(expected, math.sqrt(expected))))
        hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=count)
        times = sorted(day * DAY + h * HOUR + rng.uniform(0, HOUR) for h in hours)
        # The troubled site's machines need a technician three times as often.
        visits_per_day = story.service_visits_per_day * (3 if dev.site == story.service_site else 1)
        for _ in range(_poisson(rng, visits_per_day)):
            visits.append(day * DAY + rng.uniform(8, 18) * HOUR)
        for at in times:
            tx += 1
            kind, ref = ("walkup", None) if rng.random() < 0.15 else ("cycle_complete", f"tx-{tx}")
            steps.append(_prompt(story, dev, rng, at, kind, ref, visits))
    for at in visits:
        visit += 1
        steps.append(_prompt(story, dev, rng, at, "service_visit", f"sv-{visit}", visits))
    return steps


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; small means only."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _prompt(
    story: Story,
    dev: _Device,
    rng: random.Random,
    at: float,
    kind: str,
    ref: str | None,
    visits: list[float],
) -> dict[str, Any]:
    released = dev.updated_at is not None and at >= dev.updated_at
    step: dict[str, Any] = {"at": round(at, 1), "trigger": {"kind": kind, "ref": ref}}
    answer_rate = 0.55 if released else 0.72
    roll = rng.random()
    if roll >= answer_rate:
        step["action"] = "dismiss" if roll >= 0.94 else "timeout"
        return step
    mood = BASE_MOOD + dev.mood
    if released:
        mood -= 1.4
    if int(at % DAY // HOUR) in RUSH_HOURS:
        mood -= 0.6
    after_visit = any(0 <= at - v < HOUR for v in visits)
    if dev.site == story.service_site and kind == "service_visit":
        mood -= 4.5
    elif dev.site == story.service_site and after_visit:
        mood -= 2.5
    score = min(10, max(0, round(rng.gauss(mood, SCORE_SD))))
    step.update(
        action="answer",
        score=score,
        reason=_reason(rng, score, released, dev.site == story.service_site and after_visit),
        answer_ms=int(min(20_000, rng.lognormvariate(math.log(2600), 0.45))),
    )
    return step


def _reason(rng: random.Random, score: int, released: bool, after_visit: bool) -> str | None:
    if score >= 9 or rng.random() < (0.2 if score <= 6 else 0.7):
        return None
    if score >= 7:
        return rng.choice(PASSIVE_REASONS)
    if after_visit:
        return rng.choice(("staff", "staff", "wait_time"))
    if released:
        return rng.choice(("machine_fault", "machine_fault", "wait_time"))
    return rng.choice(DETRACTOR_REASONS)


def scenario_events(
    scenario: dict[str, Any],
    *,
    gateway_rx_delay: float = 0.8,
    first_seq: int = 1,
    first_boot: int = 1,
    uptime_s: float = 3_600.0,
) -> list[dict[str, Any]]:
    """The contract events (with `rx_ts`) the firmware would emit for `scenario`.

    seq counts every event from `first_seq`; `reboot` steps increment the boot
    counter and restart `up_ms`; ctx and telemetry carry the current health.
    """
    rng = random.Random(f"events:{scenario['device']}")
    device, site = scenario["device"], scenario["site"]
    fw, rssi, battery = scenario["fw"], scenario["rssi"], scenario["battery_mv"]
    steps = scenario["steps"]
    boot = first_boot
    booted_at = (steps[0]["at"] if steps else 0.0) - uptime_s
    reset_cause = "power_on"
    errors: dict[str, int] = {"wifi_reconnect": 0, "mqtt_timeout": 0}
    events: list[dict[str, Any]] = []
    for step in steps:
        at, action = float(step["at"]), step["action"]
        if action == "set":
            fw = step.get("fw", fw)
            rssi = step.get("rssi", rssi)
            battery = step.get("battery_mv", battery)
            continue
        if action == "reboot":
            boot, booted_at, reset_cause = boot + 1, at, "soft_reset"
            errors = {"wifi_reconnect": 0, "mqtt_timeout": 0}
            continue
        seq = first_seq + len(events)
        event: dict[str, Any] = {
            "v": 1,
            "id": f"{device}:{seq}",
            "device": device,
            "site": site,
            "seq": seq,
            "boot": boot,
            "up_ms": int((at - booted_at) * 1000),
            "ts": at,
            "fw": fw,
        }
        if action == "telemetry":
            weak = rssi < -75
            errors["wifi_reconnect"] += (
                rng.choice((0, 1, 1, 2)) if weak else int(rng.random() < 0.004)
            )
            errors["mqtt_timeout"] += int(rng.random() < (0.4 if weak else 0.002))
            outbox = rng.randint(0, 6) if weak else int(rng.random() < 0.03)
            # The heap fragments slowly with uptime and holds the events waiting to be sent.
            hours_up = (at - booted_at) / HOUR
            heap = int(61_000 - min(9_000, 12 * hours_up) - 700 * outbox + rng.gauss(0, 300))
            event.update(
                type="telemetry",
                battery_mv=battery,
                rssi=rssi,
                heap_free=heap,
                heap_min=heap - rng.randint(2_000, 4_000),
                uptime_s=int(at - booted_at),
                temp_c=round(
                    36.0 + 4.0 * math.sin(2 * math.pi * (at % DAY) / DAY) + rng.gauss(0, 0.4), 1
                ),
                outbox_depth=outbox,
                reset_cause=reset_cause,
                errors=dict(errors),
            )
        else:
            answered = action == "answer"
            event.update(
                type="feedback",
                outcome={"answer": "answered", "timeout": "timeout", "dismiss": "dismissed"}[
                    action
                ],
                prompt="nps",
                trigger=dict(step["trigger"]),
                reason=step.get("reason") if answered else None,
                answer_ms=step.get("answer_ms") if answered else None,
                ctx={"rssi": rssi, "battery_mv": battery},
                **{k: step[k] for k in ("survey", "role") if k in step},
            )
            if answered:
                event["score"] = step["score"]
        event["rx_ts"] = round(at + gateway_rx_delay, 3)
        events.append(event)
    return events
