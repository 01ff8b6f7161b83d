"""`GET /api/v1/bands`: the health bands' thresholds and the health rules' figures,
from their one table (server/ingest/health.py), for the dashboard's words."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.api.deps import ViewerDep
from server.ingest import health
from server.schemas import Message

router = APIRouter(prefix="/api/v1", tags=["analytics"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "not a person's token"},
}


class Band(BaseModel):
    band: str = Field(examples=["strong"])
    min: float | None = Field(
        description="a reading at or above this is in the band (the first that fits, best first);"
        " null: the last band, every reading below the others",
        examples=[-60],
    )


class Reading(BaseModel):
    unit: str = Field(examples=["dBm"])
    bands: list[Band] = Field(description="best first; without a reading the band is `none`")


class State(BaseModel):
    state: str = Field(examples=["faulty"])
    errors: int = Field(description="at least this many errors in the previous 24 h")
    reboots: int = Field(description="at least this many boots started in that time")
    offline_min: float = Field(description="at least this many minutes offline in that time")
    rssi_bands: list[str] = Field(description="or a Wi-Fi band among these")
    battery_bands: list[str] = Field(description="or a battery band among these")


class BandTable(BaseModel):
    rssi: Reading
    battery_mv: Reading
    health: list[State] = Field(
        description="worst first: a device is in the first state whose any condition holds,"
        " `healthy` when none does"
    )


def _reading(bands: health.Bands) -> Reading:
    rows = [Band(band=name, min=floor) for name, floor in bands.floors]
    return Reading(unit=bands.unit, bands=[*rows, Band(band=bands.below, min=None)])


def _state(state: str, limits: health.Limits) -> State:
    return State(
        state=state, errors=limits.errors, reboots=limits.reboots,
        offline_min=limits.offline_min, rssi_bands=list(limits.rssi_bands),
        battery_bands=list(limits.battery_bands),
    )  # fmt: skip


def table() -> BandTable:
    return BandTable(
        rssi=_reading(health.RSSI),
        battery_mv=_reading(health.BATTERY),
        health=[_state("faulty", health.FAULTY), _state("degraded", health.DEGRADED)],
    )


@router.get(
    "/bands",
    response_model=BandTable,
    responses=ERRORS,
    summary="The thresholds of the Wi-Fi and battery bands and of the health states",
)
def bands(caller: ViewerDep) -> BandTable:
    return table()
