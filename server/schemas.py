"""Response shapes of the read API that are not one table's public model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.nps import Tally
from server.analytics.drivers import Verdict
from server.models.alerts import AlertPublic, WebhookDelivery
from server.models.events import FeedbackPublic

FIGURES_EXAMPLE: dict[str, Any] = {
    "n": 412, "promoters": 190, "passives": 120, "detractors": 102, "nps": 21.36,
    "ci95": [13.9, 28.6], "shown": 655, "response_rate": 0.629,
}  # fmt: skip


class Figures(BaseModel):
    """The contract's figure block."""

    model_config = ConfigDict(json_schema_extra={"examples": [dict(FIGURES_EXAMPLE)]})

    n: int = Field(description="answered prompts")
    promoters: int
    passives: int
    detractors: int
    nps: float | None = Field(description="100 * (promoters - detractors) / n; null when n == 0")
    ci95: tuple[float, float] = Field(description="adjusted-Wald 95 % interval, clipped")
    shown: int = Field(description="all prompts shown")
    response_rate: float | None = Field(description="n / shown; null when nothing was shown")

    @classmethod
    def of(cls, tally: Tally) -> Figures:
        return cls.model_validate(tally.summary())


class Keyed(BaseModel):
    key: Any = Field(description="the group's key: a date, a name, a band; null for none")


class Group(Figures, Keyed):
    """A group's figures, its key first."""


class NpsAnswer(Figures):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**FIGURES_EXAMPLE, "groups": [{"key": "2026-11-01", **FIGURES_EXAMPLE}]}]
        }
    )

    groups: list[Group] = Field(default_factory=list)


class DeviceRow(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"device": "nps-a1b2c3", "site": "store-12", "fw": "1.0.0", "online": True,
                 "last_seen": 1795000000.9, "battery_mv": 3910, "rssi": -61, "nps": 40.0,
                 "n": 25, "missing": 0}
            ]
        }
    )  # fmt: skip

    device: str
    site: str
    fw: str
    online: bool
    last_seen: float
    battery_mv: float | None
    rssi: float | None
    nps: float | None
    n: int
    missing: int = Field(description="seqs up to the highest received that never arrived")


class DeviceDetail(DeviceRow):
    boot: int
    first_seen: float
    gateway: str | None


class Gaps(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device": "nps-a1b2c3",
                    "max_seq": 120,
                    "received": 117,
                    "missing": [[5, 6], [90, 90]],
                }
            ]
        }
    )

    device: str
    max_seq: int
    received: int
    missing: list[tuple[int, int]] = Field(description="inclusive ranges of seqs never received")


class Cell(BaseModel):
    weekday: int = Field(description="0 is Monday (UTC)")
    hour: int = Field(description="hour of day, UTC")
    n: int
    nps: float | None
    shown: int


class Heatmap(BaseModel):
    """NPS by weekday and hour of day: all 7 x 24 cells, Monday 00:00 first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"cells": [{"weekday": 0, "hour": 9, "n": 12, "nps": 25.0, "shown": 20}]}]
        }
    )

    cells: list[Cell]


class DriverComparison(BaseModel):
    """Group `a` against group `b` (the feature's largest), compared within site
    (server/analytics/drivers.py, docs/drivers.md)."""

    a: str | None
    b: str | None
    diff: float | None = Field(description="within-site NPS difference a - b, points")
    z: float | None
    p: float | None = Field(description="two-sided, before correction")
    p_adjusted: float | None = Field(
        default=None, description="Holm-corrected over every comparison of this answer"
    )
    n_a: int = Field(default=0, description="a's answers at the sites both groups share")
    n_b: int = Field(default=0, description="b's answers at the sites both groups share")
    sites: int = Field(default=0, description="sites where both groups have answers")
    verdict: Verdict = Verdict.NO_DIFFERENCE
    significant: bool = Field(description="verdict higher or lower: p_adjusted < 0.05")


class Driver(BaseModel):
    feature: str
    groups: list[Group]
    comparisons: list[DriverComparison]


class Drivers(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "features": [
                        {
                            "feature": "rssi_band",
                            "groups": [{"key": "strong", **FIGURES_EXAMPLE}],
                            "comparisons": [
                                {
                                    "a": "weak",
                                    "b": "strong",
                                    "diff": -31.2,
                                    "z": -3.9,
                                    "p": 0.0001,
                                    "significant": True,
                                }
                            ],
                        }
                    ]
                }
            ]
        }
    )

    features: list[Driver]


class FilterValues(BaseModel):
    """Values for the filter pickers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sites": ["store-12"],
                    "fw": ["1.0.0"],
                    "triggers": ["cycle_complete"],
                    "devices": ["nps-a1b2c3"],
                    "prompts": ["nps"],
                }
            ]
        }
    )

    sites: list[str]
    fw: list[str]
    triggers: list[str]
    devices: list[str]
    prompts: list[str]


class TelemetryPoint(BaseModel):
    ts: float = Field(description="the event's time")
    battery_mv: float | None
    rssi: float | None
    heap_free: float | None
    heap_min: float | None
    temp_c: float | None
    uptime_s: float | None
    outbox_depth: float | None
    sampling: dict[str, int] | None = Field(
        default=None,
        description="host transactions the device did not prompt since its boot, by why"
        " (`sampled_out`, `throttled`, `expired`; docs/firmware.md); null when it sent none",
    )


class TelemetrySeries(BaseModel):
    device: str
    points: list[TelemetryPoint] = Field(description="oldest first")


class Message(BaseModel):
    """Every error: a clear message."""

    detail: Any = Field(examples=["unknown or revoked token"])


FEEDBACK_ITEM_EXAMPLE: dict[str, Any] = {
    "id": "nps-a1b2c3:42", "device": "nps-a1b2c3", "site": "store-12", "ts": 1795000000.5,
    "outcome": "answered", "score": 4, "category": "detractor", "prompt": "nps",
    "trigger_kind": "cycle_complete", "trigger_ref": "tx-991", "reason": "slow",
    "answer_ms": 2300, "fw": "1.0.0", "rssi": -81, "battery_mv": 3910,
    "rssi_band": "weak", "battery_band": "good", "health": "degraded",
}  # fmt: skip
ALERT_EXAMPLE: dict[str, Any] = {
    "id": 7, "kind": "detractor", "status": "open", "site": "store-12", "device": "nps-a1b2c3",
    "feedback_id": "nps-a1b2c3:42",
    "title": "Score 4 at store-12 (nps-a1b2c3) after cycle_complete",
    "detail": {"score": 4, "reason": "slow", "trigger": {"kind": "cycle_complete", "ref": None}},
    "assignee": None, "created_at": 1795000001.0, "updated_at": 1795000001.0, "comments": [],
}  # fmt: skip


class FeedbackPage(BaseModel):
    """`GET /api/v1/feedback`: newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [FEEDBACK_ITEM_EXAMPLE]}]})

    items: list[FeedbackPublic]


class AlertList(BaseModel):
    """`GET /api/v1/alerts`: newest first, with counts per status."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"items": [ALERT_EXAMPLE], "counts": {"open": 1, "acknowledged": 0, "closed": 0}}
            ]
        }
    )

    items: list[AlertPublic]
    counts: dict[str, int] = Field(description="alerts per status, under the same filters")


class DeliveryLog(BaseModel):
    """`GET /api/v1/webhooks/deliveries`: attempts, newest first."""

    items: list[WebhookDelivery]
