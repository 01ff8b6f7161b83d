"""Events and a client for the server tests: contract-shaped, with sensible defaults."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from contract.protocol import SITE_PATTERN

T0 = 1_795_000_000.0  # Wednesday 2026-11-18T11:06:40Z


class Api:
    """A test client that knows the tokens; `mint(gateway, site)` makes a gateway token
    for a gateway or site other than `tokens["gateway"]`'s (`gw-1` of `store-1`)."""

    def __init__(
        self,
        client: TestClient,
        tokens: dict[str, str],
        mint: Callable[[str, str], str] | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.mint = mint
        self.gateways: dict[tuple[str, str], str] = {("gw-1", "store-1"): tokens["gateway"]}

    def gateway_token(self, gateway: str, site: str) -> str:
        """The token of `gateway` at `site` (each gateway token belongs to one site)."""
        if (gateway, site) not in self.gateways:
            assert self.mint is not None, f"no token for gateway {gateway} of site {site}"
            self.gateways[(gateway, site)] = self.mint(gateway, site)
        return self.gateways[(gateway, site)]

    def ingest(self, events: list[Any], gateway: str = "gw-1", site: str | None = None) -> Any:
        """Post a batch as `gateway` of `site`; without `site`, as each event's own site's
        gateway (a batch mixing sites goes as one batch per site, the answers merged)."""
        if site is not None:
            return self._post(events, gateway, site)
        parts: dict[str, list[int]] = {}
        for i, ev in enumerate(events):
            claimed = ev.get("site") if isinstance(ev, dict) else None
            valid = isinstance(claimed, str) and re.fullmatch(SITE_PATTERN, claimed)
            parts.setdefault(claimed if valid else "store-1", []).append(i)  # type: ignore[arg-type]
        if len(parts) <= 1:
            return self._post(events, gateway, next(iter(parts), "store-1"))
        out: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": []}
        for part_site, where in parts.items():
            got = self._post([events[i] for i in where], gateway, part_site)
            out["accepted"] += got["accepted"]
            out["duplicates"] += got["duplicates"]
            out["rejected"] += [r | {"index": where[r["index"]]} for r in got["rejected"]]
        out["rejected"].sort(key=lambda r: r["index"])
        return out

    def _post(self, events: list[Any], gateway: str, site: str) -> Any:
        r = self.client.post(
            "/api/v1/ingest",
            json={"gateway": gateway, "events": events},
            headers={"Authorization": f"Bearer {self.gateway_token(gateway, site)}"},
        )
        assert r.status_code == 200, r.text
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {self.tokens['operator']}"}
        )
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        r = self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {self.tokens['operator']}"}
        )
        assert r.status_code == 200, r.text
        return r.json()


def feedback(
    device: str = "nps-aaa111",
    seq: int = 1,
    score: int | None = 9,
    *,
    ts: float | None = T0,
    site: str = "store-1",
    boot: int = 1,
    up_ms: int | None = None,
    rx_ts: float | None = None,
    fw: str = "1.0.0",
    kind: str = "cycle_complete",
    reason: str | None = None,
    prompt: str = "nps",
    rssi: int | None = -55,
    battery_mv: int | None = 3900,
    outcome: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A contract feedback event as a gateway forwards it."""
    return {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": site, "seq": seq,
        "boot": boot, "up_ms": seq * 1000 if up_ms is None else up_ms, "ts": ts, "fw": fw,
        "type": "feedback", "outcome": outcome or ("answered" if score is not None else "timeout"),
        "score": score, "prompt": prompt, "trigger": {"kind": kind, "ref": None},
        "reason": reason, "answer_ms": 1500, "ctx": {"rssi": rssi, "battery_mv": battery_mv},
        "rx_ts": (ts if ts is not None else T0) + 1.0 if rx_ts is None else rx_ts, **extra,
    }  # fmt: skip


def telemetry(
    device: str = "nps-aaa111",
    seq: int = 1,
    *,
    ts: float | None = T0,
    site: str = "store-1",
    boot: int = 1,
    up_ms: int | None = None,
    rx_ts: float | None = None,
    rssi: float | None = -55,
    battery_mv: float | None = 3900,
    errors: dict[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": site, "seq": seq,
        "boot": boot, "up_ms": seq * 1000 if up_ms is None else up_ms, "ts": ts, "fw": "1.0.0",
        "type": "telemetry", "battery_mv": battery_mv, "rssi": rssi, "heap_free": 50000,
        "heap_min": 40000, "uptime_s": 100, "temp_c": 30.5, "outbox_depth": 0,
        "reset_cause": "power_on", "errors": errors or {},
        "rx_ts": (ts if ts is not None else T0) + 1.0 if rx_ts is None else rx_ts, **extra,
    }  # fmt: skip


ORIGIN = {"Origin": "http://testserver"}  # what a browser on the dashboard sends with a write


def as_(token: str) -> dict[str, str]:
    """Headers of a dashboard call with `token` (the `people` fixture's)."""
    return {"Authorization": f"Bearer {token}"} | ORIGIN
