"""Events and a client for the server tests: contract-shaped, with sensible defaults."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

T0 = 1_795_000_000.0  # Wednesday 2026-11-18T11:06:40Z


class Api:
    """A test client that knows the tokens."""

    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def ingest(self, events: list[Any], gateway: str = "gw-1") -> Any:
        r = self.client.post(
            "/api/v1/ingest",
            json={"gateway": gateway, "events": events},
            headers={"Authorization": f"Bearer {self.tokens['gateway']}"},
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
