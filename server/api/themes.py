"""`GET /api/v1/themes`: what people say, in themes (server/analytics/themes.py), for
the same filters as `/api/v1/nps`; a site-limited token sees only its site."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.analytics import themes
from server.analytics.figures import Filters, figures
from server.api.deps import SessionDep, ViewerDep
from server.api.scope import ScopedFiltersDep
from server.schemas import Message
from server.voice.store import comments_in

router = APIRouter(prefix="/api/v1", tags=["analytics"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller is limited to another site"},
    422: {"model": Message, "description": "a bad parameter"},
}
WEEK = 7 * 86400.0
MAX_PERIODS = 12  # the trend shows the window's last 12 ISO weeks


class Example(BaseModel):
    text: str
    site: str
    ts: float
    category: str | None
    sentiment: float = Field(description="VADER compound score, -1 .. 1")


class Point(BaseModel):
    period: str = Field(description="ISO week, e.g. 2026-W48")
    n: int
    nps: float | None


class ThemeItem(BaseModel):
    theme: str = Field(examples=["staff"])
    label: str = Field(examples=["Staff and service"])
    n: int = Field(description="answers in the theme (by reason code or by comment), each once")
    nps: float | None = Field(description="NPS of those answers")
    promoters: int
    passives: int
    detractors: int
    from_reasons: int = Field(description="answers whose device reason code maps here")
    comments: int = Field(description="phone comments that mention the theme")
    sentiment: float | None = Field(description="mean VADER compound of those comments")
    sentiment_label: str | None = Field(description="negative, neutral or positive")
    examples: list[Example] = Field(description="the newest comments, at most 3")
    trend: list[Point]
    change: int | None = Field(description="answers in the last period minus the one before")


class ReasonItem(BaseModel):
    reason: str
    theme: str
    n: int
    nps: float | None


class ThemesAnswer(BaseModel):
    n: int = Field(description="answers in the window")
    nps: float | None
    reasons: list[ReasonItem] = Field(description="device reason codes, largest first")
    themes: list[ThemeItem] = Field(description="largest first")


def _periods(f: Filters, now: float) -> list[tuple[str, float, float]]:
    """The window's ISO weeks (UTC), oldest first, clipped to it: at most the last MAX_PERIODS."""
    hi = f.hi if f.hi is not None else now
    day = dt.datetime.fromtimestamp(hi, dt.UTC).date()
    a = dt.datetime.combine(day - dt.timedelta(days=day.weekday()), dt.time(), dt.UTC).timestamp()
    if a >= hi:  # `hi` is exclusive: a window ending at midnight on Monday ends the week before
        a -= WEEK
    out: list[tuple[str, float, float]] = []
    while len(out) < MAX_PERIODS:
        lo, b = (a if f.lo is None else max(a, f.lo)), min(a + WEEK, hi)
        if lo >= b:
            break
        year, week, _ = dt.datetime.fromtimestamp(a, dt.UTC).isocalendar()
        out.append((f"{year}-W{week:02d}", lo, b))
        a -= WEEK
    return out[::-1]


def _item(fig: themes.ThemeFigures) -> ThemeItem:
    s = fig.tally.summary()
    trend = [Point(period=k, n=t.n, nps=t.summary()["nps"]) for k, t in fig.trend]
    return ThemeItem(
        theme=fig.theme, label=themes.label_of(fig.theme), n=fig.tally.n, nps=s["nps"],
        promoters=fig.tally.promoters, passives=fig.tally.passives,
        detractors=fig.tally.detractors, from_reasons=fig.from_reasons, comments=fig.comments,
        sentiment=fig.sentiment,
        sentiment_label=None if fig.sentiment is None else themes.sentiment_label(fig.sentiment),
        examples=[Example(text=c.text, site=c.site, ts=c.t, category=c.category,
                          sentiment=c.sentiment) for c in fig.examples],
        trend=trend, change=trend[-1].n - trend[-2].n if len(trend) >= 2 else None,
    )  # fmt: skip


@router.get(
    "/themes",
    response_model=ThemesAnswer,
    responses=ERRORS,
    summary="Reasons and comments in themes, with their NPS, sentiment and weekly trend",
)
def get_themes(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> ThemesAnswer:
    """Themes from the device reason codes and the phone comments (docs/server.md
    "Themes"); the trend is per ISO week (UTC), at most the window's last 12."""
    total, reasons = figures(session, f, "reason")
    comments = comments_in(session, f)
    periods = []
    for key, lo, hi in _periods(f, time.time()):
        _, by_reason = figures(session, dataclasses.replace(f, lo=lo, hi=hi), "reason")
        periods.append(themes.Period(key=key, lo=lo, hi=hi, reasons=by_reason))
    ranked = sorted(((r, t) for r, t in reasons.items() if r is not None and t.n),
                    key=lambda rt: (-rt[1].n, rt[0] or ""))  # fmt: skip
    return ThemesAnswer(
        n=total.n,
        nps=total.summary()["nps"],
        reasons=[
            ReasonItem(
                reason=r or "", theme=themes.theme_of_reason(r or ""), n=t.n, nps=t.summary()["nps"]
            )
            for r, t in ranked
        ],  # fmt: skip
        themes=[_item(fig) for fig in themes.theme_figures(reasons, comments, periods)],
    )
