"""The NPS programme's routes in one router: band sets and targets, coverage by role,
the north star (issue 15; docs/programme.md)."""

from __future__ import annotations

from fastapi import APIRouter

from server.api import benchmarks, coverage, northstar

router = APIRouter()
for _module in (benchmarks, coverage, northstar):
    router.include_router(_module.router)
