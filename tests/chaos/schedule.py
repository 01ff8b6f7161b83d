"""The chaos run's settings and its fault schedule, pure: the same seed gives the same faults.

Settings come from `NPS_EDGE_CHAOS_*` variables (docs/chaos.md); without any, the bounded
run of CI. The schedule is drawn from the seed alone, before anything starts, so a failing
seed replays the same faults in the same order against the same targets (the timing of
the processes between them is the machine's own).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

# Every kind of fault, in the order the summary lists them.
DEVICE_KILL = "device_kill"  # SIGKILL one device (a power cut), restart it
GATEWAY_KILL = "gateway_kill"  # SIGKILL one gateway, restart it on the same store
BROKER_KILL = "broker_kill"  # SIGKILL one site's Mosquitto, restart it
BROKER_RESTART = "broker_restart"  # SIGTERM one site's Mosquitto, restart it
WORKER_KILL = "worker_kill"  # SIGKILL one server worker (uvicorn starts another)
SERVER_KILL = "server_kill"  # SIGKILL the server and its workers at once, restart it
SERVER_STOP = "server_stop"  # SIGTERM the server, keep it down for the outage, restart it
STORE_FILL = "store_fill"  # fill the filled site's gateway store to its limit
CUT_UPLINK = "cut_uplink"  # cut one gateway from the server
CUT_DEVICES = "cut_devices"  # cut one site's devices from their broker
KINDS = (
    DEVICE_KILL, GATEWAY_KILL, BROKER_KILL, BROKER_RESTART, WORKER_KILL,
    SERVER_KILL, SERVER_STOP, STORE_FILL, CUT_UPLINK, CUT_DEVICES,
)  # fmt: skip
NETWORK_KINDS = frozenset({CUT_UPLINK, CUT_DEVICES})  # need namespaces and veth pairs
SITES = 2
FILLED_SITE = 1  # the site whose gateway runs with a small store (`store_limit` events)
BOUNDED_SECONDS = 45.0  # the CI run: each kind once; set-up, faults and drain in ~2.5 min


class SettingsError(ValueError):
    """A `NPS_EDGE_CHAOS_*` variable holds something unusable; the message names it."""


@dataclass(frozen=True)
class Settings:
    seed: int
    seconds: float  # how long faults are injected
    devices: int  # over both sites
    kinds: tuple[str, ...]
    outage_s: float  # how long SERVER_STOP keeps the server down
    pace_s: float  # each device answers a prompt every pace_s to 2 x pace_s
    store_limit: int  # max_events of the filled site's gateway

    @property
    def long(self) -> bool:
        return self.seconds > 2 * BOUNDED_SECONDS

    def replay(self) -> str:
        """The variables that run this again, schedule included."""
        return (
            f"NPS_EDGE_CHAOS_SEED={self.seed} NPS_EDGE_CHAOS_SECONDS={self.seconds:g} "
            f"NPS_EDGE_CHAOS_DEVICES={self.devices} "
            f"NPS_EDGE_CHAOS_FAULTS={','.join(self.kinds)}"
        )


def parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise SettingsError(
            f"NPS_EDGE_CHAOS_FAULTS={text!r}: unknown {unknown or 'empty list'};"
            f" choose from {','.join(KINDS)}"
        )
    return kinds


def _number(env: dict[str, str], name: str, default: float, lo: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < lo:
        raise SettingsError(f"{name}={raw!r} is below {lo:g}")
    return value


def settings_from(env: dict[str, str] | None = None) -> Settings:
    """The run's settings from `NPS_EDGE_CHAOS_*` (docs/chaos.md); defaults: the CI run."""
    env = dict(os.environ) if env is None else env
    seed_text = env.get("NPS_EDGE_CHAOS_SEED", "1")
    if seed_text == "random":
        seed = random.SystemRandom().randrange(1, 10**9)
    else:
        seed = int(_number(env, "NPS_EDGE_CHAOS_SEED", 1, 0))
    seconds = _number(env, "NPS_EDGE_CHAOS_SECONDS", BOUNDED_SECONDS, 10)
    long = seconds > 2 * BOUNDED_SECONDS
    devices = int(_number(env, "NPS_EDGE_CHAOS_DEVICES", 50 if long else 6, SITES))
    return Settings(
        seed=seed,
        seconds=seconds,
        devices=devices,
        kinds=parse_kinds(env.get("NPS_EDGE_CHAOS_FAULTS", ",".join(KINDS))),
        outage_s=_number(env, "NPS_EDGE_CHAOS_OUTAGE_SECONDS", 150 if long else 15, 1),
        pace_s=_number(env, "NPS_EDGE_CHAOS_PACE_SECONDS", 8 if long else 3, 0.5),
        store_limit=int(_number(env, "NPS_EDGE_CHAOS_STORE_LIMIT", 5000 if long else 300, 50)),
    )


@dataclass(frozen=True)
class Fault:
    """One fault: at `at_s` after the start, on `target` (a device or a site index), for
    `hold_s` (the time a killed process stays down, or a cut or stop lasts)."""

    at_s: float
    kind: str
    target: int
    hold_s: float

    def __str__(self) -> str:
        return f"{self.at_s:6.1f}s {self.kind:<14} target {self.target} hold {self.hold_s:.1f}s"


def _hold(kind: str, rng: random.Random, s: Settings) -> float:
    if kind == SERVER_STOP:
        return s.outage_s
    if kind in NETWORK_KINDS:
        return rng.uniform(10, 60) if s.long else rng.uniform(5, 9)
    if kind in (WORKER_KILL, STORE_FILL):
        return 0.0  # uvicorn restarts the worker; a fill lasts until the store is at its limit
    return rng.uniform(0.2, 3.0)


def make_schedule(s: Settings, network: bool = True) -> list[Fault]:
    """Faults over `s.seconds`, one at a time, each selected kind at least once (first, in
    a seeded order), then kinds drawn at random until the time is used. Without `network`
    (no namespaces here) the network kinds are left out of the draw, the rest unchanged."""
    rng = random.Random(f"nps-edge-chaos:{s.seed}")
    kinds = list(s.kinds)
    first = rng.sample(kinds, len(kinds))
    faults: list[Fault] = []
    t = rng.uniform(3.0, 6.0)  # the devices answer a few prompts before the first fault
    while True:
        kind = first[len(faults)] if len(faults) < len(first) else rng.choice(kinds)
        hold = _hold(kind, rng, s)
        if len(faults) >= len(first) and t + hold > s.seconds:
            break
        target = (
            FILLED_SITE
            if kind == STORE_FILL
            else rng.randrange(s.devices if kind == DEVICE_KILL else SITES)
        )
        faults.append(Fault(round(t, 1), kind, target, round(hold, 1)))
        t += hold + (rng.uniform(2.0, 10.0) if s.long else rng.uniform(1.0, 3.0))
    if network:
        return faults
    return [f for f in faults if f.kind not in NETWORK_KINDS]
