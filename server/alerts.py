"""Opening alerts: detractors (one open per device and trigger kind, later answers
attached) and thresholds (site NPS, offline, battery)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import select, text
from sqlmodel import Session

from contract.nps import Tally
from contract.protocol import ForwardedTelemetry
from server.models import Alert, Device, Feedback
from server.settings import Settings
from server.sql import as_tuples, bulk_write, table_of, upsert

ACTIVE = ("open", "acknowledged")
ALERT = table_of(Alert)
A = ALERT.c
F = table_of(Feedback).c


# A threshold alert (every kind but a detractor's) is open at most once per scope:
# a site for its NPS, a device for its battery or its silence. Each check proposes
# one; `insert` drops those whose scope has an active alert, under a lock per scope
# so that two server workers (or a worker and its offline watch) cannot both open
# one. Active alerts are read by the (kind, site, device, status) index and their
# status tested here, not in SQL: given `status IN (...)`, PostgreSQL also read the
# status index, which holds every open detractor alert, and so grew with them
# (measured at 50,000 open: 4.0 ms per batch instead of 0.13).
SCOPE = {"site_nps": "site", "battery": "device", "offline": "device"}


def _scope(alert: Mapping[str, Any]) -> tuple[str, str]:
    return alert["kind"], alert[SCOPE[alert["kind"]]]


def _lock_scopes(session: Session, alerts: list[dict[str, Any]]) -> None:
    """Hold each proposed scope's lock (thresholds, and detractors per device and
    trigger kind) until commit: PostgreSQL takes a transaction-level advisory lock;
    a SQLite writer holds the database's."""
    scopes = {_scope(a) for a in alerts if a["kind"] in SCOPE}
    scopes |= {("detractor", " ".join(_detractor_key(a))) for a in alerts if a["kind"] == DETRACTOR}
    if scopes and session.get_bind().dialect.name == "postgresql":
        # One statement, in one order for every writer (no deadlock between two).
        locks = sorted({_lock_key(kind, key) for kind, key in scopes})
        session.execute(_LOCK, {"keys": locks})


def _not_yet_active(session: Session, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`alerts` less the threshold ones whose scope has an active alert, the first
    of each scope kept (under the scope's lock, `_lock_scopes`)."""
    scopes = sorted({_scope(a) for a in alerts if a["kind"] in SCOPE})
    if not scopes:
        return alerts
    taken: set[tuple[str, str]] = set()
    for kind in sorted({k for k, _ in scopes}):
        col = A[SCOPE[kind]]
        keys = sorted(key for k, key in scopes if k == kind)
        rows = session.execute(select(col, A.status).where(A.kind == kind, col.in_(keys)))
        taken.update((kind, key) for key, status in rows if status in ACTIVE)
    kept = []
    for a in alerts:
        if a["kind"] in SCOPE:
            scope = _scope(a)
            if scope in taken:
                continue
            taken.add(scope)
        kept.append(a)
    return kept


_LOCK = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def _lock_key(kind: str, key: str) -> int:
    """A scope's advisory lock number (a signed 64-bit integer, stable across processes)."""
    digest = hashlib.blake2b(f"nps-edge alert {kind} {key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _new(now: float, **fields: Any) -> dict[str, Any]:
    base = {"status": "open", "site": None, "device": None, "feedback_id": None, "assignee": None}
    return base | fields | {"created_at": now, "updated_at": now}


def insert(session: Session, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store new alerts in one statement, less the threshold ones already active
    (`_not_yet_active`) and the detractors attached to their device's open alert
    (`_attach_detractors`); the alert JSON of each stored, with its id. Only these
    are told (stream, webhooks): an attached answer notifies nobody again.

    Ids come from the sequence row by row in insertion order, so sorted they
    pair with the alerts in order.
    """
    _lock_scopes(session, alerts)
    alerts = _attach_detractors(session, _not_yet_active(session, alerts))
    if not alerts:
        return []
    ids = sorted(bulk_write(session, table_of(Alert), *as_tuples(alerts), returning="id"))
    return [{"id": i, **a, "comments": []} for i, a in zip(ids, alerts, strict=True)]


# A flood cannot bury the inbox (issue 12: 50,000 forged answers opened 50,000
# alerts): a device's detractors collapse into one active alert per trigger kind,
# which counts them and keeps the latest few; closing it lets the next one open.
DETRACTOR = "detractor"
LATEST_ANSWERS = 10


def _detractor_key(alert: Mapping[str, Any]) -> tuple[str, str]:
    return alert["device"], alert["detail"]["trigger"]["kind"]


def _attach_detractors(session: Session, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`alerts` with their detractors folded: into the device's active alert for the
    trigger kind when there is one (updated here), else into the first of the batch."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in sorted(alerts, key=_answer_time):
        if a["kind"] == DETRACTOR:
            groups.setdefault(_detractor_key(a), []).append(a)
    if not groups:
        return alerts
    # By the (kind, site, device, status) index; status tested here (see SCOPE).
    rows = session.execute(
        select(A.id, A.device, A.status).where(
            A.kind == DETRACTOR,
            A.site.in_(sorted({a["site"] for g in groups.values() for a in g})),
            A.device.in_(sorted({device for device, _ in groups})),
        )
    ).all()
    active = sorted(i for i, _, status in rows if status in ACTIVE)
    open_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    if active:
        stored = session.execute(select(ALERT).where(A.id.in_(active)).order_by(A.id))
        for found in stored.mappings():
            detail = found["detail"]
            key = (found["device"], detail.get("trigger", {}).get("kind"))
            if key in groups:  # the newest, if there were several
                started = _started(detail, found["feedback_id"])
                open_by_key[key] = {**found, "detail": started}
    kept = [a for a in alerts if a["kind"] != DETRACTOR]
    attached = []
    for key, group in groups.items():
        if key in open_by_key:
            row = open_by_key[key]
            detail = _folded(row["detail"], group)
            at = max(a["created_at"] for a in group)
            attached.append(row | {"detail": detail, "title": _collapsed_title(key, detail),
                                   "updated_at": at})  # fmt: skip
        else:
            first = dict(group[0])
            first["detail"] = _folded(_started(first["detail"], first["feedback_id"]), group[1:])
            if first["detail"]["count"] > 1:
                first["title"] = _collapsed_title(key, first["detail"])
            kept.append(first)
    # One statement for all (an UPDATE per alert cost PostgreSQL 10 ms per batch
    # of 200), in id order like every multi-row write.
    upsert(session, ALERT, sorted(attached, key=itemgetter("id")), ("id",), _attach)
    return kept


def _attach(c: Any, x: Any) -> dict[str, Any]:
    return {"detail": x.detail, "title": x.title, "updated_at": x.updated_at}


def _answer_time(alert: Mapping[str, Any]) -> float:
    return alert["detail"]["ts"] if alert["kind"] == DETRACTOR else 0.0


def _answer(feedback_id: str | None, detail: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": feedback_id, "score": detail.get("score"), "ts": detail.get("ts")}


def _started(detail: dict[str, Any], feedback_id: str | None) -> dict[str, Any]:
    """A detractor alert's detail with its collapse fields: as it is once it has
    them, else (just proposed, or opened before the collapse) as its one answer."""
    if "count" in detail:
        return detail
    ts = detail.get("ts")
    return detail | {
        "count": 1, "first_ts": ts, "last_ts": ts, "latest": [_answer(feedback_id, detail)],
    }  # fmt: skip


def _folded(detail: dict[str, Any], group: list[dict[str, Any]]) -> dict[str, Any]:
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


def _collapsed_title(key: tuple[str, str], detail: Mapping[str, Any]) -> str:
    device, trigger = key
    return f"{detail['count']} detractors at {device} after {trigger}"


HEALTH_FIELDS = ("rssi", "battery_mv", "rssi_band", "battery_band", "health", "errors_24h",
                 "reboots_24h", "offline_min_24h", "fw")  # fmt: skip


def _detractor(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _new(
        now,
        kind="detractor",
        site=row["site"],
        device=row["device"],
        feedback_id=row["id"],
        title="Score {score} at {site} ({device}) after {trigger_kind}".format(**row),
        detail={
            "score": row["score"],
            "ts": row["t"],
            "prompt": row["prompt"],
            "trigger": {"kind": row["trigger_kind"], "ref": row["trigger_ref"]},
            "reason": row["reason"],
            "health": {k: row[k] for k in HEALTH_FIELDS},
        },
    )


def on_ingest(
    session: Session,
    *,
    feedback: Sequence[Mapping[str, Any]],
    telemetry: Sequence[ForwardedTelemetry],
    settings: Settings,
    now: float,
) -> list[dict[str, Any]]:
    """Alerts a batch proposes: detractors, low batteries, sites whose rolling NPS fell.
    `feedback` is the batch's rows, not stored yet. `insert` opens those of a
    threshold whose scope has no active alert."""
    opened = [_detractor(row, now) for row in feedback if row["category"] == "detractor"]
    low = {
        ev.device: ev
        for ev in telemetry
        if ev.battery_mv is not None and ev.battery_mv < settings.battery_low_mv
    }
    for device, ev in sorted(low.items()):
        opened.append(
            _new(
                now, kind="battery", site=ev.site, device=device,
                title=f"Battery low on {device}: {ev.battery_mv:.0f} mV",
                detail={"battery_mv": ev.battery_mv, "threshold_mv": settings.battery_low_mv},
            )
        )  # fmt: skip
    answered: dict[str, list[tuple[float, str]]] = {}
    for r in feedback:
        if r["category"] is not None:
            answered.setdefault(r["site"], []).append((r["t"], r["category"]))
    for site in sorted(answered):
        alert = _check_site(session, site, answered[site], settings, now)
        if alert is not None:
            opened.append(alert)
    return opened


def _check_site(
    session: Session,
    site: str,
    batch: list[tuple[float, str]],
    settings: Settings,
    now: float,
) -> dict[str, Any] | None:
    """A site NPS alert if the site's last N answers, stored and `batch` ((t, category)),
    are under the threshold."""
    last_n = settings.site_nps_last_n
    # Written so that only the (site, t) index gives this order, however long ago
    # the site last answered. With `site = :site ORDER BY t`, PostgreSQL may walk
    # the fleet-wide time index back until it has met the site's last N answers:
    # one small site among busy ones means scanning the fleet's recent history
    # (measured at 200,000 stored, sites taking turns: 3.9 ms instead of 0.2).
    stored = session.execute(
        select(F.t, F.category)
        .where(F.site.between(site, site), F.category.is_not(None))
        .order_by(F.site.desc(), F.t.desc())
        .limit(last_n)
    ).all()
    latest = sorted([*batch, *((t, c) for t, c in stored)], key=itemgetter(0), reverse=True)
    cats = [c for _, c in latest[:last_n]]
    if len(cats) < last_n:
        return None
    tally = Tally(cats.count("promoter"), cats.count("passive"), cats.count("detractor"), len(cats))
    figures = tally.summary()
    value = figures["nps"]
    assert isinstance(value, float)
    if value >= settings.site_nps_threshold:
        return None
    return _new(
        now, kind="site_nps", site=site,
        title=f"NPS of {site} is {value:.1f} over its last {last_n} answers"
        f" (threshold {settings.site_nps_threshold:g})",
        detail={**figures, "last_n": last_n, "threshold": settings.site_nps_threshold},
    )  # fmt: skip


def check_offline(session: Session, *, settings: Settings, now: float) -> list[dict[str, Any]]:
    """Open an alert for each device offline (or silent) longer than `offline_alert_s`."""
    limit = now - settings.offline_alert_s
    opened = []
    for dev in session.execute(select(Device)).scalars():
        since = dev.presence_ts if dev.online is False else dev.last_seen
        offline = (dev.online is False and since is not None and since < limit) or (
            dev.online is None and dev.last_seen < limit
        )
        if offline:
            minutes = (now - (since or dev.last_seen)) / 60
            opened.append(
                _new(
                    now, kind="offline", site=dev.site, device=dev.id,
                    title=f"{dev.id} at {dev.site} offline for {minutes:.0f} min",
                    detail={"since": since, "minutes": round(minutes, 1),
                            "threshold_s": settings.offline_alert_s},
                )
            )  # fmt: skip
    return insert(session, opened)
