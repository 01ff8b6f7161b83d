"""The operator dashboard: pages and assets served by the server itself (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
