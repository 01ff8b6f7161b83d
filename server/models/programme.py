"""The NPS programme's settings: targets and benchmarks an operator enters, the band set
and the north star an admin chooses. Every change is a new row, so the rows are the
audit (who, when) and the newest row of a key is the one in force."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class TargetBase(SQLModel):
    site: str | None = Field(default=None, max_length=64, description="null: the whole fleet")
    survey: str = Field(default="transactional", max_length=16)
    target: float | None = Field(default=None, ge=-100, le=100, description="the NPS aimed at")
    benchmark: float | None = Field(
        default=None, ge=-100, le=100, description="the category's or a competitor's NPS"
    )
    benchmark_label: str | None = Field(
        default=None, max_length=64, description="whose figure `benchmark` is"
    )


class Target(TargetBase, table=True):
    __tablename__ = "nps_target"
    __table_args__ = (Index("ix_nps_target_scope", "site", "survey", "set_at"),)

    id: int | None = Field(default=None, primary_key=True)
    set_by: str = Field(max_length=128)
    set_at: float


class ProgrammeChoice(SQLModel, table=True):
    """An admin's choice of `key` (`band_set`, `north_star`)."""

    __tablename__ = "programme_choice"
    __table_args__ = (Index("ix_programme_choice_key", "key", "set_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=32)
    value: str = Field(max_length=64)
    set_by: str = Field(max_length=128)
    set_at: float


class UnpromptedDay(SQLModel, table=True):
    """Host transactions the devices counted and did not prompt, per site, UTC day, the
    device's health at the reading that reported them, and why (`server.ingest.unprompted`):
    what the north star adds to the prompted ones."""

    __tablename__ = "unprompted_day"

    site: str = Field(primary_key=True, max_length=64)
    bucket: int = Field(primary_key=True, sa_type=BigInteger, description="the day's start, unix s")
    health: str = Field(primary_key=True, max_length=16)
    reason: str = Field(primary_key=True, max_length=32)
    count: int = Field(default=0, sa_type=BigInteger)
