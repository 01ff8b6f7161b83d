"""The NPS canary: the cohort on the new firmware against the control on the old one, over
the same hours, on NPS (`contract.nps.compare`, the drivers view's two-sample test) and on
health (reboots, errors, RSSI, outbox depth, heap_min). `judge` is pure; `measure` reads."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, func, select
from sqlmodel import Session

from contract.nps import Tally, compare, nps_variance
from server.db.sql import table_of
from server.models import Feedback, Telemetry

FB = table_of(Feedback).c
TM = table_of(Telemetry).c
# Fewer answers than this on either side: no verdict on NPS yet (the test's normal
# approximation is poor below it, and one unlucky hour must not halt a rollout).
MIN_ANSWERS = 20
ALPHA = 0.05
# The cohort rebooting this many more times per device than the control halts it.
REBOOT_MARGIN = 2.0


@dataclass(frozen=True)
class Health:
    devices: int = 0
    reboots: int = 0
    errors: int = 0
    rssi: float | None = None
    outbox_depth: float | None = None
    heap_min: float | None = None

    @property
    def reboots_per_device(self) -> float:
        return self.reboots / self.devices if self.devices else 0.0


@dataclass(frozen=True)
class Verdict:
    halt: bool
    reason: str | None
    diff: float | None
    diff_ci95: tuple[float, float] | None
    p: float | None


def judge(cohort: Tally, control: Tally, cohort_health: Health, control_health: Health) -> Verdict:
    """Halt on a significant NPS drop (two-sided test at ALPHA, both sides with at least
    MIN_ANSWERS answers) or on a reboot storm in the cohort."""
    result = compare(cohort, control, ALPHA)
    ci: tuple[float, float] | None = None
    if result.diff is not None:
        se = 100 * math.sqrt(
            nps_variance(cohort.promoters, cohort.detractors, cohort.n)
            + nps_variance(control.promoters, control.detractors, control.n)
        )
        ci = (round(result.diff - 1.96 * se, 2), round(result.diff + 1.96 * se, 2))
    enough = cohort.n >= MIN_ANSWERS and control.n >= MIN_ANSWERS
    reason = None
    if enough and result.significant and result.diff is not None and result.diff < 0:
        reason = f"NPS {result.diff:+.1f} points against the control (p = {result.p:.3g})"
    elif cohort_health.devices and (
        cohort_health.reboots_per_device >= control_health.reboots_per_device + REBOOT_MARGIN
    ):
        reason = (
            f"reboots: {cohort_health.reboots_per_device:.1f} per device against"
            f" {control_health.reboots_per_device:.1f} in the control"
        )
    diff = None if result.diff is None else round(result.diff, 2)
    return Verdict(reason is not None, reason, diff, ci, result.p)


def _tally(session: Session, where: ColumnElement[bool]) -> Tally:
    counts = dict(
        session.execute(select(FB.category, func.count()).where(where).group_by(FB.category)).all()
    )
    return Tally(
        counts.get("promoter", 0), counts.get("passive", 0), counts.get("detractor", 0),
        sum(counts.values()),
    )  # fmt: skip


def _health(session: Session, where: ColumnElement[bool]) -> Health:
    row = session.execute(
        select(
            func.count(distinct(TM.device)),
            func.coalesce(func.sum(TM.errors_delta), 0),
            func.avg(TM.rssi),
            func.avg(TM.outbox_depth),
            func.min(TM.heap_min),
        ).where(where)
    ).one()
    boots = session.execute(
        select(TM.device, TM.boot).where(where).group_by(TM.device, TM.boot)
    ).all()
    devices = int(row[0])
    return Health(
        devices=devices, reboots=max(len(boots) - devices, 0), errors=int(row[1]),
        rssi=_round(row[2]), outbox_depth=_round(row[3]), heap_min=_round(row[4]),
    )  # fmt: skip


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def measure(
    session: Session, *, version: str, cohort: list[str], lo: float, hi: float
) -> tuple[Tally, Tally, Health, Health]:
    """NPS and health of the cohort on `version` and of the others on another firmware,
    over the same window [lo, hi)."""
    fb_window = and_(FB.t >= lo, FB.t < hi)
    tm_window = and_(TM.t >= lo, TM.t < hi)
    mine_fb = and_(FB.device.in_(cohort), FB.fw == version)
    rest_fb = and_(FB.device.not_in(cohort), FB.fw != version)
    mine_tm = and_(TM.device.in_(cohort), TM.fw == version)
    rest_tm = and_(TM.device.not_in(cohort), TM.fw != version)
    return (
        _tally(session, and_(fb_window, mine_fb)),
        _tally(session, and_(fb_window, rest_fb)),
        _health(session, and_(tm_window, mine_tm)),
        _health(session, and_(tm_window, rest_tm)),
    )


def figures(
    cohort: Tally, control: Tally, cohort_health: Health, control_health: Health,
    verdict: Verdict, *, lo: float, hi: float,
) -> dict[str, Any]:  # fmt: skip
    """The comparison as stored on the rollout and shown by the API and the releases page."""
    return {
        "window": [lo, hi],
        "cohort": {"nps": cohort.summary(), "health": asdict(cohort_health)},
        "control": {"nps": control.summary(), "health": asdict(control_health)},
        "diff": verdict.diff,
        "diff_ci95": None if verdict.diff_ci95 is None else list(verdict.diff_ci95),
        "p": None if verdict.p is None else round(verdict.p, 6),
        "halt": verdict.halt,
        "reason": verdict.reason,
        "min_answers": MIN_ANSWERS,
    }
