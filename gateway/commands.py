"""The command relay (issue 14): signed `cmd` messages from the server to the site's devices.

It fetches its site's commands (`GET /api/v1/gateway/commands?after=<id>`) into the store,
so a device offline for days still gets them, and publishes each, in `n` order, to
`{root}/{device}/cmd` (QoS 1, not retained) while the device's status says online. It
publishes again after each new status of the device (a reconnect publishes one) until the
status reports `cmd >= n`, then drops it. The gateway never reads or changes a command:
the device checks the server's signature. Expired or undeliverable ones are dropped, counted.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from gateway.database import Transaction, connect, write_lock
from gateway.logs import log_event

log = logging.getLogger("nps_edge.gateway.commands")
COMMANDS_PATH = "/api/v1/gateway/commands"
CURSOR = "commands_after"
# A device that keeps refusing a command (a bad signature after a key change, say) gets it
# again at most this often and this many times; its status says why (`cmd_error`).
RETRY_S = 30.0
MAX_ATTEMPTS = 10

Publish = Callable[[str, bytes], bool]


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "nps_gateway_commands",
            "Device commands: fetched, published, confirmed, expired, given_up, bad",
            ["outcome"],
            registry=registry,
        )


class Relay:
    def __init__(
        self, path: Path, client: httpx.Client, publish: Publish, registry: CollectorRegistry,
        *, root: str, fw_url: str | None = None, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.path = path
        self.conn = connect(path, synchronous="FULL", readonly=False)
        self.lock = write_lock(path)
        self.client = client
        self.publish = publish
        self.root = root.rstrip("/")
        self.fw_url = fw_url
        self.clock = clock
        self.metrics = RelayMetrics(registry)

    def close(self) -> None:
        self.conn.close()

    def _cursor(self) -> int:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (CURSOR,)).fetchone()
        return int(row[0]) if row else 0

    def fetch(self) -> int:
        """Take the server's new commands into the store; how many. Raises httpx errors
        (the caller retries next round); a 4xx other than 401/403 is logged and skipped."""
        params: dict[str, Any] = {"after": self._cursor()}
        if self.fw_url:
            params["fw_url"] = self.fw_url
        response = self.client.get(COMMANDS_PATH, params=params)
        if response.status_code in (404, 405):
            return 0  # a server without the fleet API
        response.raise_for_status()
        items = response.json().get("commands", [])
        if not items:
            return 0
        rows = []
        for item in items:
            try:
                cmd = json.loads(json.loads(item["payload"])["c"])
                exp = cmd.get("exp")
                row = (int(item["id"]), str(item["device"]), int(item["n"]))
                rows.append((*row, None if exp is None else float(exp), str(item["payload"])))
            except (KeyError, TypeError, ValueError) as err:
                self.metrics.commands.labels("bad").inc()
                log_event(
                    log, logging.WARNING, "unreadable command from the server", error=str(err)
                )
        ids = [i["id"] for i in items if isinstance(i, dict) and type(i.get("id")) is int]
        last = max([*ids, self._cursor()])  # past the unreadable ones too: asked once
        with Transaction(self.conn, self.lock):
            self.conn.executemany(
                "INSERT OR IGNORE INTO commands(id, device, n, exp, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self.conn.execute(
                "INSERT INTO state(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (CURSOR, str(last)),
            )
        self.metrics.commands.labels("fetched").inc(len(rows))
        return len(rows)

    def deliver(self) -> int:
        """Publish what is due, drop what is confirmed or expired; how many were published."""
        now = self.clock()
        due = self.conn.execute(
            "SELECT c.id, c.device, c.n, c.exp, c.payload, c.sent_rx_ts, c.sent_at, c.attempts,"
            " p.online, p.rx_ts, p.cmd FROM commands c LEFT JOIN presence p ON p.device = c.device"
            " ORDER BY c.device, c.n"
        ).fetchall()
        drop: list[tuple[int, str]] = []
        sent: list[tuple[float, float, int]] = []
        for cid, device, n, exp, payload, sent_rx, sent_at, attempts, online, rx_ts, cmd in due:
            if cmd is not None and cmd >= n:
                drop.append((cid, "confirmed"))
            elif exp is not None and exp < now:
                drop.append((cid, "expired"))
            elif attempts >= MAX_ATTEMPTS:
                drop.append((cid, "given_up"))
            elif (
                online
                and (sent_rx is None or rx_ts > sent_rx)
                and (sent_at is None or now - sent_at >= RETRY_S)
                and self.publish(f"{self.root}/{device}/cmd", payload.encode("utf-8"))
            ):
                sent.append((rx_ts, now, cid))
                log_event(log, logging.INFO, "command published", device=device, n=n)
        if drop or sent:
            with Transaction(self.conn, self.lock):
                self.conn.executemany("DELETE FROM commands WHERE id = ?", [(c,) for c, _ in drop])
                self.conn.executemany(
                    "UPDATE commands SET sent_rx_ts = ?, sent_at = ?, attempts = attempts + 1"
                    " WHERE id = ?",
                    sent,
                )
        for _, outcome in drop:
            self.metrics.commands.labels(outcome).inc()
        self.metrics.commands.labels("published").inc(len(sent))
        return len(sent)

    def pending(self) -> list[tuple[str, int]]:
        return [(d, n) for d, n in self.conn.execute("SELECT device, n FROM commands ORDER BY id")]

    def run(
        self, stop: Callable[[], bool], wait: Callable[[float], object], *, poll_s: float,
        deliver_s: float = 1.0,
    ) -> None:  # fmt: skip
        """Fetch every `poll_s`, deliver every `deliver_s`, until `stop()`."""
        next_fetch = 0.0
        while not stop():
            if time.monotonic() >= next_fetch:
                next_fetch = time.monotonic() + poll_s
                try:
                    self.fetch()
                except (httpx.HTTPError, ValueError) as err:
                    log_event(log, logging.WARNING, "cannot fetch commands, will retry",
                              error=str(err)[:200])  # fmt: skip
            try:
                self.deliver()
            except sqlite3.DatabaseError as err:
                log_event(log, logging.ERROR, "command store error", error=str(err))
            wait(deliver_s)
