"""The device application: input -> prompt machine -> outbox -> MQTT, in one loop that never waits
on the network.

The board (boards/*.py) hands in every piece of hardware (docs/firmware.md,
board API); this module and everything it imports stay free of `machine` and
`network`.
"""

import gc
import os
import random
import select
import sys
import time

import events
import mqtt
import persist
import prompt as pm
from acks import parse_ack
from micropython import const
from outbox import FEEDBACK, TELEMETRY, Outbox, OutboxError
from screens import Screens

KINDS = {FEEDBACK: "feedback", TELEMETRY: "telemetry"}
# Collect after this many bytes allocated, so garbage never piles up; and when
# the loop is about to sleep anyway (cheap) once this much has been allocated.
_GC_EVERY_BYTES = const(4096)
_GC_IDLE_BYTES = const(1024)
# Waiting in vain for the gateway's ack hands the backlog out again after
# outbox.confirm_timeout_s, then after twice as long each time, up to this.
_RESEND_MAX_MS = const(900000)


def next_boot(path):
    """Bump and return the boot counter kept on flash (contract field `boot`)."""
    boot = persist.read_json(path, {"boot": -1})["boot"] + 1
    persist.write_json(path, {"boot": boot})
    return boot


class App:
    def __init__(self, board, cfg, remote):
        self.board = board
        self.clock = board.clock
        dev = cfg["device_id"]
        self.ident = {
            "device": dev,
            "site": cfg["site"],
            "fw": board.fw,
            "boot": next_boot(board.root + "boot.json"),
        }
        ob = cfg["outbox"]
        gateway = ob["confirm"] == "gateway"
        self.outbox = Outbox(
            board.root + "ob", ob["max_kb"] * 1024, ob["segment_kb"] * 1024, gateway
        )
        # Real time (ticks), not the prompt's clock: a simulator's scripted clock jumps.
        self.confirm_ms = ob["confirm_timeout_s"] * 1000 if gateway else 0
        self.floor = None  # the outbox's floor() when the wait below started
        self.resend_wait = self.confirm_ms
        self.resend_at = 0
        self.dropped_at_boot = dict(self.outbox.dropped)
        self.sampling = {"sampled_out": 0, "throttled": 0, "expired": 0}
        self.settings(cfg)
        # Signed commands and updates: state here, code in fleet.py, loaded only when due.
        self.remote = remote
        remote.app = self
        random.seed(int.from_bytes(os.urandom(4), "little"))
        root = cfg["topic_root"].rstrip("/") + "/" + dev + "/"
        self.topics = {FEEDBACK: root + "feedback", TELEMETRY: root + "telemetry"}
        self.status_topic = root + "status"
        self.client = mqtt.Client(
            cfg["broker"],
            dev,
            will_topic=self.status_topic,
            will_msg=events.status(False),
            rand=random.random,
            link=board.link,
            on_up=self.connected,
            on_ack=self.on_ack,
            log=board.log,
            reload=self.reload,
            subscribe=root + "cmd",
            on_message=self.on_message,
        )
        self.errors = {}
        # The sim host wants each acknowledged event's JSON (its `acked` line).
        self.echo_acked = getattr(board, "echo_acked", False)
        self.heap_min = gc.mem_free()
        self.collected = gc.mem_alloc()
        self.draining = False
        self.shown = None
        self.last_telemetry = 0
        self.poller = select.poll()
        self.polled = None  # the MQTT socket registered in poller
        self.polled_input = board.stream  # the board's input registered in poller
        if board.stream is not None:
            self.poller.register(board.stream, select.POLLIN)

    def settings(self, cfg):
        """The prompt's settings from cfg: at boot, and again when a signed command changes them."""
        self.prompt_key = cfg["prompt"]["key"]
        self.telemetry_ms = cfg["telemetry_interval_s"] * 1000
        t = cfg["timeouts"]
        self.machine = pm.PromptMachine(
            [r["code"] for r in cfg["reasons"]],
            t["prompt_s"] * 1000,
            t["reason_s"] * 1000,
            t["thanks_s"] * 1000,
            cfg["min_answer_interval_s"] * 1000,
            roles=cfg["roles"]["choices"] if cfg["roles"]["ask"] else (),
        )
        # sampling.py is loaded per call (a trigger, an answer, the calendar): it keeps its
        # state on flash, and its code would cost the 64 KB heap ~3 KB for good.
        self.programme_cfg = {
            "sampling": cfg["sampling"],
            "survey": cfg["survey"],
            "voice": cfg["voice"],
        }
        self.relationship_s = None  # unix s the relationship prompt is due, None: never
        if cfg["survey"]["relationship"] is not None:
            self.programme("relationship_next")
        self.screens = Screens(
            self.board.display,
            self.board.width,
            self.board.height,
            cfg["prompt"],
            [r["label"] for r in cfg["reasons"]],
        )
        self.shown = None

    def count(self, name):
        self.errors[name] = self.errors.get(name, 0) + 1

    def store(self, kind, make, result):
        """Append an event to the outbox: its seq, or 0 (and counted) when flash refused it."""
        try:
            seq = self.outbox.append(kind, make)
        except OutboxError as err:
            self.count("outbox_write")
            self.board.log(str(err))
            return 0
        detail = "-" if result is None else "%s %s" % (result["outcome"], result.get("score", "-"))
        self.board.report("saved", kind, seq, detail)
        return seq

    def programme(self, name, *args):
        """sampling.Sampler's method `name`, its state read from flash, its code freed after."""
        import sampling

        out, self.relationship_s = sampling.call(self, name, args)
        del sys.modules["sampling"]
        return out

    def wall_s(self, ms):
        """Unix seconds at ms since boot, None while the wall clock is not set."""
        t = self.clock.unix_ms(ms)
        return None if t is None else t // 1000

    def record(self, result):
        """A prompt finished: write it to flash first, then thank (or warn) on screen."""
        at = result["at_ms"]
        rssi, battery, _ = self.board.sense()
        body = events.feedback_body(result, self.prompt_key, rssi, battery)
        ts = self.clock.unix_ms(at)
        out = self.outbox.record
        seq = self.store(
            FEEDBACK,
            lambda seq: events.event(self.ident, seq, at, ts, "feedback", body, out),
            result,
        )
        if seq:
            link, link_ms = None, 0
            if result["outcome"] == "answered":
                link, link_ms = self.programme("finished", result, seq, self.wall_s(at))
            self.machine.saved(self.clock.ms(), link, link_ms)
        else:
            self.machine.failed(self.clock.ms())

    def telemetry(self):
        """Health as the contract's telemetry event: at boot, every N minutes, on request."""
        now = self.last_telemetry = self.clock.ms()
        self.heap_low()  # before the collection: the low point of the turn
        gc.collect()
        self.collected = gc.mem_alloc()
        free = gc.mem_free()
        errors = dict(self.errors)
        for counts in (self.machine.counts, self.client.errors, self.remote.counts):
            errors.update(counts)
        for kind in KINDS:
            lost = self.outbox.dropped[kind] - self.dropped_at_boot[kind]
            if lost:
                errors["outbox_dropped_" + KINDS[kind]] = lost
        if self.outbox.corrupt:
            errors["outbox_corrupt"] = self.outbox.corrupt
        rssi, battery, temp = self.board.sense()
        body = {
            "battery_mv": battery,
            "rssi": rssi,
            "heap_free": free,
            "heap_min": self.heap_min,
            "uptime_s": now // 1000,
            "temp_c": temp,
            "outbox_depth": self.outbox.depth,
            "reset_cause": self.board.reset_cause,
            "errors": errors,
            "sampling": dict(self.sampling),
        }
        ts = self.clock.unix_ms(now)
        out = self.outbox.record
        self.store(
            TELEMETRY,
            lambda seq: events.event(self.ident, seq, now, ts, "telemetry", body, out),
            None,
        )

    def connected(self):
        """Each CONNACK: what the gateway has not confirmed goes again (the broker may have
        died holding it), then the status."""
        if self.confirm_ms:
            self.outbox.rewind()
            self.waiting(time.ticks_ms(), True)
        self.on_up()

    def on_up(self):
        # Retained presence (contract); the last will says offline when we vanish.
        if self.client.state != mqtt.UP:
            return
        status = events.status(True, self.ident["fw"], self.ident["boot"], self.remote.status)
        self.client.publish(self.status_topic, status, True)

    def on_message(self, topic, payload):
        if payload[:7] == b'{"ack":':
            # The gateway's ack (docs/protocol.md, Acks): trim what it holds; bad bytes counted.
            ranges = parse_ack(payload, self.outbox.next_seq - 1)
            if ranges is None:
                self.count("ack_bad")
            elif self.outbox.confirm(ranges):
                for kind in KINDS:
                    self.board.report("confirmed", kind, self.outbox.queues[kind].acked, "-")
            return
        import fleet  # a signed command on our cmd topic (rare): code loaded for it

        fleet.on_message(self.remote, payload)

    def waiting(self, now, restart=False):
        """No confirmation of the oldest unconfirmed event for a while: hand it out again."""
        floor = self.outbox.floor()
        if restart or floor != self.floor:  # progress, or a new wait starts
            self.floor = floor
            self.resend_wait = self.confirm_ms
            self.resend_at = time.ticks_add(now, self.confirm_ms)
        elif floor is not None and time.ticks_diff(now, self.resend_at) >= 0:
            self.outbox.rewind()
            self.count("outbox_resend")
            self.resend_wait = min(self.resend_wait * 2, _RESEND_MAX_MS)
            self.resend_at = time.ticks_add(now, self.resend_wait)

    def on_ack(self, tag, packet):
        if tag is not None:
            if self.echo_acked:
                payload = self.outbox.read_at(tag[0], tag[2], tag[3])
                self.board.report("acked", tag[0], tag[1], "-" if payload is None else payload)
            self.outbox.ack(tag[0], tag[1])

    def reload(self, tag):
        """(topic, payload) of an event waiting for its PUBACK, read back from flash to re-send."""
        payload = self.outbox.read_at(tag[0], tag[2], tag[3])
        return None if payload is None else (self.topics[tag[0]], payload)

    def heap_low(self):
        """Note the free heap at a low point of the turn (uncollected garbage counts as used)."""
        free = gc.mem_free()
        if free < self.heap_min:
            self.heap_min = free

    def step(self):
        """One loop turn: inputs, timers, network, screen. Returns False when done."""
        board = self.board
        machine = self.machine
        for ev in board.events():
            kind = ev[0]
            result = machine.tick(self.clock.ms())
            if result is not None:
                self.record(result)
            if kind == "trigger":
                self.programme("offer", machine, ev, self.clock.ms(), self.wall_s(self.clock.ms()))
            elif kind in ("turn", "press", "long"):
                result = machine.handle(ev, self.clock.ms())
                if result is not None:
                    self.record(result)
            elif kind == "at":
                self.clock.at(ev[1])  # the wall clock was set (script, host line, NTP)
            elif kind == "fw":
                self.ident["fw"] = ev[1]
            elif kind == "telemetry":
                self.telemetry()
            elif kind == "drain":
                self.draining = True
            elif kind == "reboot":
                self.outbox.close()
                board.reset()
            else:
                self.count("input_unknown")
        now = self.clock.ms()
        result = machine.tick(now)
        if result is not None:
            self.record(result)
        due = self.relationship_s
        if due is not None and machine.state == pm.IDLE and now >= machine.ready_ms:
            wall = self.wall_s(now)
            if wall is not None and wall >= due:
                self.programme("tick", machine, now, wall)
        if self.telemetry_ms and now - self.last_telemetry >= self.telemetry_ms:
            self.telemetry()
        client = self.client
        client.poll()
        self.heap_low()  # a TLS handshake allocates in the heap during poll()
        if self.confirm_ms and client.state == mqtt.UP:
            self.waiting(time.ticks_ms())
        if self.remote.due:
            import fleet

            fleet.step(self.remote, client.state == mqtt.UP)
        while client.can_publish():
            item = self.outbox.next_unsent()
            if item is None:
                break
            client.publish(
                self.topics[item[0]], item[2], False, (item[0], item[1], item[3], item[4])
            )
        self.heap_low()
        if machine.changed or self.shown != self.status():
            self.render()
        board.feed()
        # Drained once the broker has everything: what the gateway has not confirmed yet
        # stays on flash and goes again at the next boot.
        return not (self.draining and not client.inflight and self.outbox.idle)

    def status(self):
        """What the idle screen shows besides the prompt: link, backlog, cool-down."""
        if self.machine.state != pm.IDLE:
            return None
        return self.link(), self.outbox.depth, self.machine.cooling(self.clock.ms())

    def link(self):
        if self.client.looking_up:
            return "dns"  # the next turn blocks on the broker's name lookup: say why
        return self.client.state == mqtt.UP

    def render(self):
        self.machine.changed = False
        self.shown = self.status()
        self.screens.render(self.machine, self.link(), self.outbox.depth, self.clock.ms())
        self.board.report("screen", self.machine.state, 0, "-")

    def wait(self):
        """Sleep until input, socket activity or the next deadline (bounded)."""
        if self.board.stream is not self.polled_input:
            self.poller.unregister(self.polled_input)  # input ended: no busy wake-ups on it
            self.polled_input = None
        sock = self.client.sock
        if sock is not self.polled:
            if self.polled is not None:
                self.poller.unregister(self.polled)
            if sock is not None:
                self.poller.register(sock, select.POLLIN)
            self.polled = sock
        if sock is not None:
            want = select.POLLIN
            if self.client.pending() or self.client.state == mqtt.CONNECTING:
                want |= select.POLLOUT
            self.poller.modify(sock, want)
        timeout = self.board.max_wait_ms
        deadline = self.machine.next_deadline(self.clock.ms())
        if deadline is not None:
            timeout = max(0, min(timeout, deadline - self.clock.ms()))
        if self.client.state != mqtt.UP:
            timeout = min(timeout, 100)
        if self.board.more:
            timeout = 0
        if timeout >= 50 and gc.mem_alloc() - self.collected >= _GC_IDLE_BYTES:
            gc.collect()  # about to sleep anyway: the collection costs the loop nothing
            self.collected = gc.mem_alloc()
        self.poller.poll(timeout)

    def run(self):
        self.telemetry()  # at boot
        self.render()
        gc.collect()
        gc.threshold(_GC_EVERY_BYTES)
        self.collected = gc.mem_alloc()
        free = gc.mem_free()
        self.heap_min = min(self.heap_min, free)
        self.board.log("heap free after boot: %d" % free)
        while self.step():
            self.wait()
        if self.client.state == mqtt.UP:
            # A clean DISCONNECT cancels the last will (3.1.2.5): say offline ourselves.
            self.client.publish(self.status_topic, events.status(False), True)
        self.client.close()
        self.outbox.close()
