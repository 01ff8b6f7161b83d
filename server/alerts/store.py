"""Storing the alerts `server.alerts.rules` proposes: detractors (one open per device
and trigger kind, later answers attached) and thresholds (site NPS, offline, battery),
each opened once, under a lock per scope."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Integer, Text, bindparam, case, select, text, update
from sqlalchemy import cast as sql_cast
from sqlmodel import Session

from contract.protocol import ForwardedTelemetry
from server.alerts.routing import route_new
from server.alerts.rules import (
    ACTIVE,
    DETRACTOR,
    SCOPE,
    TRANSACTIONAL,
    OpenedAlert,
    ProposedAlert,
    answer_time,
    battery_alerts,
    collapsed_title,
    detractor_alert,
    detractor_key,
    folded,
    offline_alert,
    scope_of,
    site_nps_reading,
    started,
    transactional,
)
from server.db.listed import dialect_of, listed
from server.db.sql import as_tuples, bulk_write, json_value, table_of, update_rows
from server.models import Alert, Device, Feedback
from server.models.alerts import AlertKind
from server.settings import Settings

ALERT = table_of(Alert)
A = ALERT.c
F = table_of(Feedback).c


# A threshold alert is open at most once per scope (`rules.SCOPE`). Each check proposes
# one; `insert` drops those whose scope has an active alert, under a lock per scope
# so that two server workers (or a worker and its offline watch) cannot both open
# one. Active alerts are read by the (kind, site, device, status) index and their
# status tested here, not in SQL: given `status IN (...)`, PostgreSQL also read the
# status index, which holds every open detractor alert, and so grew with them
# (measured at 50,000 open: 4.0 ms per batch instead of 0.13).


def _lock_scopes(session: Session, alerts: list[ProposedAlert]) -> None:
    """Hold each proposed scope's lock (thresholds, and detractors per device and
    trigger kind) until commit: PostgreSQL takes a transaction-level advisory lock;
    a SQLite writer holds the database's."""
    scopes = {scope_of(a) for a in alerts if a["kind"] in SCOPE}
    scopes |= {(DETRACTOR, " ".join(detractor_key(a))) for a in alerts if a["kind"] == DETRACTOR}
    if scopes and session.get_bind().dialect.name == "postgresql":
        # One statement, in one order for every writer (no deadlock between two).
        locks = sorted({_lock_key(kind, key) for kind, key in scopes})
        session.execute(_LOCK, {"keys": locks})


def _not_yet_active(session: Session, alerts: list[ProposedAlert]) -> list[ProposedAlert]:
    """`alerts` less the threshold ones whose scope has an active alert, the first
    of each scope kept (under the scope's lock, `_lock_scopes`). A site reading
    retitles its site's active case with the current value (`_retitle`), and opens
    one only when under the threshold."""
    scopes = sorted({scope_of(a) for a in alerts if a["kind"] in SCOPE})
    if not scopes:
        return alerts
    taken: dict[tuple[str, str], int] = {}
    for kind in sorted({k for k, _ in scopes}):
        keys = sorted(key for k, key in scopes if k == kind)
        rows = session.execute(_scoped(kind), {"keys": keys})
        taken.update({(kind, key): i for i, key, status in rows if status in ACTIVE})
    _retitle(session, alerts, taken)
    kept = []
    for a in alerts:
        if a["kind"] in SCOPE:
            scope = scope_of(a)
            if scope in taken or not a["detail"].get("below", True):
                continue
            taken[scope] = 0
        kept.append(a)
    return kept


@cache
def _scoped(kind: str) -> Any:
    """The alerts of `kind` in the scopes given as `keys`, with their status."""
    col = A[SCOPE[kind]]
    return select(A.id, col, A.status).where(
        A.kind == kind, col.in_(bindparam("keys", expanding=True))
    )


def _retitle(
    session: Session, alerts: list[ProposedAlert], taken: Mapping[tuple[str, str], int]
) -> None:
    """Each site case still active takes the title and figures of its site's latest
    reading in `alerts`; the figures it opened with stay under `detail.opened`."""
    latest = {scope_of(a): a for a in alerts if a["kind"] == AlertKind.SITE_NPS}
    changes = {taken[s]: a for s, a in latest.items() if taken.get(s)}
    if not changes:
        return
    stored = session.execute(_DETAILS, {"ids": sorted(changes)})
    retitled = [
        {"alert_id": i, "new_title": changes[i]["title"], "at": changes[i]["created_at"],
         "new_detail": changes[i]["detail"] | {"opened": detail.get("opened", detail)}}
        for i, detail in sorted(stored)
    ]  # fmt: skip
    if retitled:  # one per site in the batch
        session.execute(_RETITLED, retitled)


# `_retitle`'s statements, built once: a site reading comes with every batch of answers.
_DETAILS = select(A.id, A.detail).where(A.id.in_(bindparam("ids", expanding=True)))
_RETITLED = (
    update(ALERT)
    .where(A.id == bindparam("alert_id"))
    .values(
        title=bindparam("new_title"),
        updated_at=bindparam("at"),
        detail=bindparam("new_detail", type_=A.detail.type),
    )
)


_LOCK = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def _lock_key(kind: str, key: str) -> int:
    """A scope's advisory lock number (a signed 64-bit integer, stable across processes)."""
    digest = hashlib.blake2b(f"nps-edge alert {kind} {key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def insert(session: Session, alerts: list[ProposedAlert]) -> list[OpenedAlert]:
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
    route_new(session, alerts)
    rows = cast(list[dict[str, Any]], alerts)  # as_tuples reads them as plain dicts
    ids = sorted(bulk_write(session, table_of(Alert), *as_tuples(rows), returning="id"))
    return [OpenedAlert(id=i, **a, comments=[]) for i, a in zip(ids, alerts, strict=True)]


def _attach_detractors(session: Session, alerts: list[ProposedAlert]) -> list[ProposedAlert]:
    """`alerts` with their detractors folded: into the device's active alert for the
    trigger kind when there is one (updated here), else into the first of the batch."""
    groups: dict[tuple[str, str], list[ProposedAlert]] = {}
    for a in sorted(alerts, key=answer_time):
        if a["kind"] == DETRACTOR:
            groups.setdefault(detractor_key(a), []).append(a)
    if not groups:
        return alerts
    open_by_key = _active_detractors(session, groups)
    kept = [a for a in alerts if a["kind"] != DETRACTOR]
    attached: list[dict[str, Any]] = []
    for key, group in groups.items():
        if key in open_by_key:
            i, detail = open_by_key[key]
            detail = folded(detail, group)
            at = max(a["created_at"] for a in group)
            attached.append({"id": i, "detail": detail, "title": collapsed_title(key, detail),
                             "updated_at": at})  # fmt: skip
        else:
            first = group[0].copy()
            first["detail"] = folded(started(first["detail"], first["feedback_id"]), group[1:])
            if first["detail"]["count"] > 1:
                first["title"] = collapsed_title(key, first["detail"])
            kept.append(first)
    # One statement for all (an UPDATE per alert cost PostgreSQL 10 ms per batch of
    # 200), of the changed columns only, in id order like every multi-row write.
    update_rows(session, ALERT, "id", sorted(attached, key=itemgetter("id")))
    return kept


def _active_detractors(
    session: Session, groups: Mapping[tuple[str, str], list[ProposedAlert]]
) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
    """The active detractor alert (id, detail with its collapse fields) of each key of
    `groups` that has one, the newest if several; one statement.

    The devices' detractor alerts are read by the (kind, site, device, status) index;
    the status is tested here (see SCOPE), and only an active alert's detail is sent,
    as text, read with orjson: a fleet's batch reads about 3 active alerts for each
    alert it updates (one per trigger kind), and json.loads of their details cost more
    than the rest of the fold (docs/benchmarks.md, "One fleet batch in process").
    """
    lists: dict[str, list[Any]] = {
        "sites": sorted({a["site"] for g in groups.values() for a in g}),
        "devices": sorted({device for device, _ in groups}),
    }
    rows = session.execute(_detractors_of(dialect_of(session)), lists).all()
    found: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for i, device, feedback_id, stored in sorted(rows, key=itemgetter(0)):
        if stored is None:
            continue
        detail = json_value(stored)
        key = detractor_key({"device": device, "detail": detail})
        if key in groups:  # the newest, if there were several
            found[key] = (i, started(detail, feedback_id))
    return found


@cache
def _detractors_of(dialect: str) -> Any:
    """`_active_detractors`' statement, built once per dialect."""
    active = case((A.status.in_(ACTIVE), sql_cast(A.detail, Text)))
    return select(A.id, A.device, A.feedback_id, active).where(
        A.kind == DETRACTOR, listed(A.site, "sites", dialect), listed(A.device, "devices", dialect)
    )


def on_ingest(
    session: Session,
    *,
    feedback: Sequence[Mapping[str, Any]],
    telemetry: Sequence[ForwardedTelemetry],
    settings: Settings,
    now: float,
) -> list[ProposedAlert]:
    """Alerts a batch proposes: detractors, low batteries, sites whose rolling NPS fell.
    `feedback` is the batch's rows, not stored yet. `insert` opens those of a
    threshold whose scope has no active alert."""
    opened = [detractor_alert(row, now) for row in feedback if row["category"] == DETRACTOR]
    opened += battery_alerts(telemetry, settings, now)
    answered: dict[str, list[tuple[float, str]]] = {}
    for r in feedback:  # a site's NPS is its transactions' (relationship answers apart)
        if r["category"] is not None and transactional(r):
            answered.setdefault(r["site"], []).append((r["t"], r["category"]))
    for site in sorted(answered):
        alert = _check_site(session, site, answered[site], settings, now)
        if alert is not None:
            opened.append(alert)
    return opened


# Built once (docs/benchmarks.md, Run 13); see `_check_site`.
_SITE_LATEST = (
    select(F.t, F.category)
    .where(
        F.site.between(bindparam("site"), bindparam("site")),
        F.category.is_not(None),
        F.survey == TRANSACTIONAL,
    )
    .order_by(F.site.desc(), F.t.desc())
    .limit(bindparam("n", type_=Integer))
)


def _check_site(
    session: Session,
    site: str,
    batch: list[tuple[float, str]],
    settings: Settings,
    now: float,
) -> ProposedAlert | None:
    """A site NPS alert if the site's last N answers, stored and `batch` ((t, category)),
    are under the threshold (`rules.site_nps_alert`)."""
    # Written so that only the (site, t) index gives this order, however long ago
    # the site last answered. With `site = :site ORDER BY t`, PostgreSQL may walk
    # the fleet-wide time index back until it has met the site's last N answers:
    # one small site among busy ones means scanning the fleet's recent history
    # (measured at 200,000 stored, sites taking turns: 3.9 ms instead of 0.2).
    stored = session.execute(_SITE_LATEST, {"site": site, "n": settings.site_nps_last_n}).all()
    latest = sorted([*batch, *((t, c) for t, c in stored)], key=itemgetter(0), reverse=True)
    return site_nps_reading(site, [c for _, c in latest], settings, now)


def check_offline(session: Session, *, settings: Settings, now: float) -> list[OpenedAlert]:
    """Open an alert for each device offline (or silent) longer than `offline_alert_s`."""
    opened = []
    for dev in session.execute(select(Device)).scalars():
        alert = offline_alert(
            device=dev.id, site=dev.site, online=dev.online, presence_ts=dev.presence_ts,
            last_seen=dev.last_seen, settings=settings, now=now,
        )  # fmt: skip
        if alert is not None:
            opened.append(alert)
    return insert(session, opened)
