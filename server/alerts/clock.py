"""The case clock, pure: when a case started, whether it is overdue, how urgent it is.

A customer waits from their answer (a detractor case's first answer), or from the
raise (a threshold case). A case is overdue when it is still open, nobody has taken
a step on it (acknowledge, assign, comment, close) and the response-time target has
passed since it started. Urgency: a site-wide NPS breach first, then a rollout halted
by its canary (issue 14), a silent device, a detractor, a battery; an overdue case
moves two steps up (so it passes everything but a site's breach).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.models.alerts import AlertKind, AlertStatus

WEIGHT: dict[str, int] = {
    AlertKind.SITE_NPS: 4,
    AlertKind.CANARY: 3,
    AlertKind.OFFLINE: 2,
    AlertKind.DETRACTOR: 1,
    AlertKind.BATTERY: 0,
}
OVERDUE_STEPS = 2


def start_of(case: Mapping[str, Any]) -> float:
    started = case.get("started_at")
    return float(case["created_at"] if started is None else started)


def answered_at(case: Mapping[str, Any]) -> float | None:
    """When the customer last answered (a detractor case), else None."""
    if case["kind"] != AlertKind.DETRACTOR:
        return None
    detail = case.get("detail") or {}
    ts = detail.get("last_ts", detail.get("ts"))
    return float(ts) if isinstance(ts, int | float) else None


def is_overdue(case: Mapping[str, Any], *, now: float, target_s: float) -> bool:
    return (
        case["status"] == AlertStatus.OPEN
        and case.get("first_response_at") is None
        and now - start_of(case) > target_s
    )


def urgency(case: Mapping[str, Any], *, now: float, target_s: float) -> int:
    overdue = is_overdue(case, now=now, target_s=target_s)
    return WEIGHT.get(case["kind"], 0) + (OVERDUE_STEPS if overdue else 0)


def offline_title(case: Mapping[str, Any], now: float) -> str:
    """An offline case's title with the real time gone so far (its stored title holds
    the duration at the raise); a closed case's duration stops at its close."""
    since = (case.get("detail") or {}).get("since")
    if not isinstance(since, int | float):
        return str(case["title"])
    until = case.get("closed_at") or now
    return f"{case['device']} at {case['site']} offline for {duration(until - since)}"


def duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"
