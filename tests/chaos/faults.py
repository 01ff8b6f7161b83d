"""The faults of the chaos run: each one done to the running system and undone (restart,
restore) before the next; `inject` looks the fault's kind up in ACTIONS."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable

from nps_edge.processes import answers, wait_until
from tests.chaos import schedule as sc
from tests.chaos.rig import FILL_PER_FILLER, WORKERS, Rig, SiteRig


def inject(system: Rig, fault: sc.Fault) -> None:
    """Do one fault and undo it (restart, restore) before returning."""
    start = system.now()
    what = ACTIONS[fault.kind](system, fault)
    system.injected[fault.kind] += 1
    system.timeline.append((start, system.now(), f"{fault.kind}: {what}"))


def hold(fault: sc.Fault) -> None:
    time.sleep(fault.hold_s)  # the fault's length is the schedule's, not a wait for state


def device_kill(system: Rig, fault: sc.Fault) -> str:
    device = system.devices[fault.target]
    device.kill()
    hold(fault)
    device.start()
    return device.device


def gateway_kill(system: Rig, fault: sc.Fault) -> str:
    rig = system.sites[fault.target]
    assert rig.gateway is not None
    rig.gateway.kill()
    hold(fault)
    system.start_gateway(rig)
    return rig.name


def broker_cycle(system: Rig, fault: sc.Fault, stop: Callable[[], None]) -> str:
    rig = system.sites[fault.target]
    stop()
    hold(fault)
    system.start_broker(rig)
    return rig.name


def broker_kill(system: Rig, fault: sc.Fault) -> str:
    broker = system.sites[fault.target].site.broker
    assert broker is not None
    return broker_cycle(system, fault, broker.kill)


def broker_restart(system: Rig, fault: sc.Fault) -> str:
    broker = system.sites[fault.target].site.broker
    assert broker is not None
    return broker_cycle(system, fault, broker.stop)


def healthy(system: Rig) -> bool:
    return answers(f"{system.server_url}/healthz")


def worker_kill(system: Rig, fault: sc.Fault) -> str:
    before = wait_until(lambda: len(w := system.workers()) == WORKERS and w, 60, "2 workers")
    victim = before[fault.target % len(before)]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(w := system.workers()) == WORKERS and victim not in w and healthy(system),
        120,
        "uvicorn to replace the killed worker",
    )
    return f"pid {victim}"


def server_kill(system: Rig, fault: sc.Fault) -> str:
    assert system.server is not None
    for pid in [*system.workers(), system.server.proc.pid]:  # the host lost power
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    system.server.proc.wait()
    hold(fault)
    system.start_server()
    return "server and workers"


def server_stop(system: Rig, fault: sc.Fault) -> str:
    assert system.server is not None
    system.server.stop()
    hold(fault)
    system.start_server()
    return f"down {fault.hold_s:.0f}s"


def cut(system: Rig, link: str, fault: sc.Fault) -> str:
    assert system.net is not None
    system.net.links[link].cut()
    try:
        hold(fault)
    finally:
        system.net.links[link].restore()
    return link


def cut_uplink(system: Rig, fault: sc.Fault) -> str:
    return cut(system, f"srv{fault.target}", fault)


def cut_devices(system: Rig, fault: sc.Fault) -> str:
    return cut(system, f"dev{fault.target}", fault)


def store_fill(system: Rig, fault: sc.Fault) -> str:
    """Cut the gateway from the server (or stop the server without namespaces) and
    publish telemetry as filler devices until the store drops for room."""
    rig = system.sites[fault.target]
    link = system.net.links[f"srv{rig.index}"] if system.net else None
    if link is not None:
        link.cut()
    else:
        assert system.server is not None
        system.server.stop()
    try:
        before = rig.stats().dropped().get("full_telemetry", 0)
        sent = fill(system, rig, lambda: rig.stats().dropped().get("full_telemetry", 0) > before)
    finally:
        if link is not None:
            link.restore()
        else:
            system.start_server()
    return f"{rig.name}: {sent} telemetry events"


def fill(system: Rig, rig: SiteRig, full: Callable[[], bool]) -> int:
    """Telemetry from fresh filler devices, 100 at a time, until `full()` (bounded: each
    filler stays under the gateway's burst, together they send the limit and 500 more)."""
    used = sum(1 for f in rig.fillers if f in system.filler_acked)
    count = math.ceil((system.settings.store_limit + 500) / FILL_PER_FILLER)
    sent = 0
    for filler in rig.fillers[used : used + count]:
        client = rig.site.device(filler).connected()
        acked = 0
        try:
            while acked < FILL_PER_FILLER and not full():
                infos = [
                    client.client.publish(
                        f"nps/v1/{filler}/telemetry",
                        filler_event(filler, rig.name, acked + k + 1),
                        qos=1,
                    )
                    for k in range(100)
                ]
                for info in infos:
                    info.wait_for_publish(30)
                acked += len(infos)
        finally:
            system.filler_acked[filler] = acked
            client.close()
        sent += acked
        if full():
            return sent
    if wait_full(full):
        return sent
    raise AssertionError(f"{rig.name}'s store never dropped telemetry after {sent} events")


def wait_full(full: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll (bounded) until the gateway counted a drop for room; False when it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if full():
            return True
        time.sleep(0.2)
    return False


def filler_event(device: str, site: str, seq: int) -> bytes:
    """A contract telemetry event of a filler device (only there to fill a store)."""
    event = {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": site, "seq": seq,
        "boot": 0, "up_ms": seq, "ts": time.time(), "fw": "chaos-filler",
        "type": "telemetry", "battery_mv": 3900, "rssi": -60, "errors": {},
    }  # fmt: skip
    return json.dumps(event).encode()


ACTIONS: dict[str, Callable[[Rig, sc.Fault], str]] = {
    sc.DEVICE_KILL: device_kill,
    sc.GATEWAY_KILL: gateway_kill,
    sc.BROKER_KILL: broker_kill,
    sc.BROKER_RESTART: broker_restart,
    sc.WORKER_KILL: worker_kill,
    sc.SERVER_KILL: server_kill,
    sc.SERVER_STOP: server_stop,
    sc.STORE_FILL: store_fill,
    sc.CUT_UPLINK: cut_uplink,
    sc.CUT_DEVICES: cut_devices,
}
