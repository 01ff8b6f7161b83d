"""The rollup tables bound to the application's metadata (see server/analytics/rollups.py)."""

from __future__ import annotations

from sqlmodel import SQLModel

from server.analytics.rollups import build_tables

ROLLUP_TABLES = build_tables(SQLModel.metadata)
