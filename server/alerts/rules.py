"""What opens an alert, and how detractors fold into one: pure rules, no database.

`server.alerts.store` reads what these rules need, holds the locks and writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from contract.nps import Tally
from contract.protocol import SURVEYS, ForwardedTelemetry
from server.models.alerts import AlertKind, AlertStatus
from server.settings import Settings

ACTIVE = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
# A threshold alert (every kind but a detractor's) is open at most once per scope:
# a site for its NPS, a device for its battery or its silence.
SCOPE: dict[str, str] = {
    AlertKind.SITE_NPS: "site",
    AlertKind.BATTERY: "device",
    AlertKind.OFFLINE: "device",
}
# A flood cannot bury the inbox (issue 12: 50,000 forged answers opened 50,000
# alerts): a device's detractors collapse into one active alert per trigger kind,
# which counts them and keeps the latest few; closing it lets the next one open.
DETRACTOR = AlertKind.DETRACTOR
LATEST_ANSWERS = 10
HEALTH_FIELDS = ("rssi", "battery_mv", "rssi_band", "battery_band", "health", "errors_24h",
                 "reboots_24h", "offline_min_24h", "fw")  # fmt: skip


class ProposedAlert(TypedDict):
    """An alert a rule proposes: an `alert` row without its id, not stored yet."""

    status: AlertStatus
    site: str | None
    device: str | None
    feedback_id: str | None
    assignee: str | None
    kind: AlertKind
    title: str
    detail: dict[str, Any]
    created_at: float
    updated_at: float
    started_at: float


class OpenedAlert(ProposedAlert):
    """An alert as stored and told (stream, webhooks): `AlertPublic`'s fields, its id
    first (`store.insert` builds it in that order)."""

    id: int
    comments: list[Any]


def scope_of(alert: Mapping[str, Any]) -> tuple[str, str]:
    """A threshold alert's scope: (kind, site or device)."""
    return alert["kind"], alert[SCOPE[alert["kind"]]]


TRANSACTIONAL, RELATIONSHIP = SURVEYS


def transactional(row: Mapping[str, Any]) -> bool:
    """Whether a feedback row (or an alert's detail) is a transaction's answer: a
    relationship answer is the account's periodic view, never counted with them."""
    return row.get("survey", TRANSACTIONAL) == TRANSACTIONAL


def detractor_key(alert: Mapping[str, Any]) -> tuple[str, str]:
    """The (device, trigger kind) a detractor alert collapses by; relationship answers
    collapse apart from any transaction's."""
    detail = alert["detail"]
    kind = detail.get("trigger", {}).get("kind")
    return alert["device"], kind if transactional(detail) else f"{RELATIONSHIP}:{kind}"


def new_alert(
    now: float,
    *,
    kind: AlertKind,
    title: str,
    detail: dict[str, Any],
    site: str | None = None,
    device: str | None = None,
    feedback_id: str | None = None,
    started_at: float | None = None,
) -> ProposedAlert:
    """`started_at`: when the customer began to wait (`server.alerts.clock`); the raise."""
    return ProposedAlert(
        status=AlertStatus.OPEN, site=site, device=device, feedback_id=feedback_id,
        assignee=None, kind=kind, title=title, detail=detail, created_at=now, updated_at=now,
        started_at=now if started_at is None else started_at,
    )  # fmt: skip


def answer_time(alert: Mapping[str, Any]) -> float:
    return alert["detail"]["ts"] if alert["kind"] == DETRACTOR else 0.0


def _answer(feedback_id: str | None, detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": feedback_id, "score": detail.get("score"), "ts": detail.get("ts")}


def started(detail: dict[str, Any], feedback_id: str | None) -> dict[str, Any]:
    """A detractor alert's detail with its collapse fields: as it is once it has
    them, else (just proposed, or opened before the collapse) as its one answer."""
    if "count" in detail:
        return detail
    ts = detail.get("ts")
    return detail | {
        "count": 1, "first_ts": ts, "last_ts": ts, "latest": [_answer(feedback_id, detail)],
    }  # fmt: skip


def folded(detail: dict[str, Any], group: Sequence[ProposedAlert]) -> dict[str, Any]:
    """`detail` (with its collapse fields) with the answers of `group` attached. A
    gateway's backlog may bring older answers late: times and `latest` go by `ts`."""
    if not group:
        return detail
    added = [_answer(a["feedback_id"], a["detail"]) for a in group]
    times = [t for t in (detail["first_ts"], detail["last_ts"], *(a["ts"] for a in added))
             if t is not None]  # fmt: skip
    latest = sorted([*detail["latest"], *added], key=lambda a: a["ts"] or 0.0)
    return detail | {
        "count": detail["count"] + len(group),
        "first_ts": min(times, default=None),
        "last_ts": max(times, default=None),
        "latest": latest[-LATEST_ANSWERS:],
    }


def collapsed_title(key: tuple[str, str], detail: Mapping[str, Any]) -> str:
    device, trigger = key
    if not transactional(detail):
        return f"{detail['count']} relationship detractors at {device}"
    return f"{detail['count']} detractors at {device} after {trigger}"


def _detractor_title(row: Mapping[str, Any]) -> str:
    if transactional(row):
        return "Score {score} at {site} ({device}) after {trigger_kind}".format(**row)
    who = (row.get("role") or "someone").replace("_", " ")
    return f"Relationship score {row['score']} from {who} at {row['site']} ({row['device']})"


def detractor_alert(row: Mapping[str, Any], now: float) -> ProposedAlert:
    """The alert one detractor answer (a feedback row, health joined) proposes."""
    return new_alert(
        now,
        kind=AlertKind.DETRACTOR,
        site=row["site"],
        device=row["device"],
        feedback_id=row["id"],
        started_at=min(row["t"], now),
        title=_detractor_title(row),
        detail={
            "score": row["score"],
            "survey": row.get("survey", TRANSACTIONAL),
            "role": row.get("role"),
            "ts": row["t"],
            "prompt": row["prompt"],
            "trigger": {"kind": row["trigger_kind"], "ref": row["trigger_ref"]},
            "reason": row["reason"],
            "health": {k: row[k] for k in HEALTH_FIELDS},
        },
    )


def battery_alerts(
    telemetry: Sequence[ForwardedTelemetry], settings: Settings, now: float
) -> list[ProposedAlert]:
    """One alert per device whose battery reads under `battery_low_mv` in the batch."""
    low = {
        ev.device: ev
        for ev in telemetry
        if ev.battery_mv is not None and ev.battery_mv < settings.battery_low_mv
    }
    return [
        new_alert(
            now,
            kind=AlertKind.BATTERY,
            site=ev.site,
            device=device,
            title=f"Battery low on {device}: {ev.battery_mv:.0f} mV",
            detail={"battery_mv": ev.battery_mv, "threshold_mv": settings.battery_low_mv},
        )  # fmt: skip
        for device, ev in sorted(low.items())
    ]


def site_nps_reading(
    site: str, categories: list[str], settings: Settings, now: float
) -> ProposedAlert | None:
    """The site's NPS over its last `site_nps_last_n` answers (`categories`, newest
    first) as a site case, `detail.below` telling whether it is under the threshold:
    a reading under it opens a case; any reading retitles the site's active case, so
    its title always carries the current value. None with fewer answers than that."""
    last_n = settings.site_nps_last_n
    cats = categories[:last_n]
    if len(cats) < last_n:
        return None
    figures = Tally.of_categories(cats, len(cats)).summary()
    value = figures["nps"]  # never None: last_n answers were counted
    if value is None:
        return None
    below = value < settings.site_nps_threshold
    return new_alert(
        now, kind=AlertKind.SITE_NPS, site=site,
        title=f"NPS of {site} is {value:.1f} over its last {last_n} answers"
        f" (threshold {settings.site_nps_threshold:g}{'' if below else ', back above it'})",
        detail={**figures, "last_n": last_n, "threshold": settings.site_nps_threshold,
                "below": below, "at": now},
    )  # fmt: skip


def site_nps_alert(
    site: str, categories: list[str], settings: Settings, now: float
) -> ProposedAlert | None:
    """A site NPS alert if the reading (`site_nps_reading`) is under the threshold."""
    reading = site_nps_reading(site, categories, settings, now)
    return reading if reading is not None and reading["detail"]["below"] else None


def offline_alert(
    *,
    device: str,
    site: str,
    online: bool | None,
    presence_ts: float | None,
    last_seen: float,
    settings: Settings,
    now: float,
) -> ProposedAlert | None:
    """An alert if the device is offline (or silent) longer than `offline_alert_s`."""
    limit = now - settings.offline_alert_s
    since = presence_ts if online is False else last_seen
    offline = (online is False and since is not None and since < limit) or (
        online is None and last_seen < limit
    )
    if not offline:
        return None
    minutes = (now - (since or last_seen)) / 60
    return new_alert(
        now, kind=AlertKind.OFFLINE, site=site, device=device,
        title=f"{device} at {site} offline for {minutes:.0f} min",
        detail={"since": since, "minutes": round(minutes, 1),
                "threshold_s": settings.offline_alert_s},
    )  # fmt: skip
