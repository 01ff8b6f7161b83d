"""Response shapes of the read API that are not one table's public model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.nps import Tally

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


class Message(BaseModel):
    """Every error: a clear message."""

    detail: Any = Field(examples=["unknown or revoked token"])


def example(value: Any) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI 200 response with an example, for endpoints answering plain JSON objects."""
    return {200: {"content": {"application/json": {"example": value}}}}


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
