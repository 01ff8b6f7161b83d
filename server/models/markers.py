"""Markers on the time charts: site events an operator records (a release marker is
derived from the data, `server.analytics.markers`, and never stored)."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from contract.protocol import SITE_PATTERN

# A marker's time: unix seconds between 2000-01-01 and 2100-01-01.
EARLIEST, LATEST = 946_684_800.0, 4_102_444_800.0


class MarkerKind(StrEnum):
    EVENT = "event"  # recorded by an operator
    RELEASE = "release"  # a firmware version first seen (derived)


class MarkerCreate(SQLModel):
    """What an operator records: when, where (no site: the whole fleet), and what."""

    at: float = Field(ge=EARLIEST, le=LATEST, description="unix seconds")
    site: str | None = Field(default=None, max_length=64)
    title: str = Field(min_length=1, max_length=120)
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(SITE_PATTERN, value):
            raise ValueError(f"not a site id (pattern {SITE_PATTERN})")
        return value

    @field_validator("title", "note")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ValueError("control characters are not allowed")
        return value


class Marker(SQLModel, table=True):
    __tablename__ = "marker"
    __table_args__ = (Index("ix_marker_site_at", "site", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: float
    site: str | None = Field(default=None, max_length=64)
    title: str = Field(max_length=120)
    note: str | None = Field(default=None, max_length=2000)
    created_by: str = Field(max_length=128)
    created_at: float


class MarkerPublic(SQLModel):
    """A marker as the charts get it; `id` None and `fw` set for a derived release."""

    id: int | None
    kind: MarkerKind
    at: float
    site: str | None
    title: str
    note: str | None = None
    fw: str | None = None
    created_by: str | None = None
