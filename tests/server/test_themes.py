"""Themes and sentiment (server/analytics/themes.py) and `GET /api/v1/themes`."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from contract.nps import Tally
from nps_edge.story import Story, generate, voice_comments
from server.analytics import themes
from server.analytics.figures import Filters
from server.analytics.themes import Comment, Period, theme_figures, themes_of
from server.api.themes import _periods
from server.identity.tokens import create_token
from tests.server.factory import Api, feedback


def test_the_taxonomy_names_what_a_comment_is_about() -> None:
    assert themes_of("The staff were rude and I waited 40 minutes") == ["staff", "waiting"]
    assert themes_of("Screen froze, error on payment by card") == ["machine", "payment"]
    assert themes_of("Lovely day") == ["other"]
    assert themes_of("unfriendly cashier") == ["staff"]
    assert themes.theme_of_reason("wait_time") == "waiting"
    assert themes.theme_of_reason("parking") == "parking"  # an unknown code is its own theme


def test_sentiment_runs_offline_from_the_packaged_lexicon() -> None:
    assert themes.sentiment("The staff were rude and unhelpful") < -0.05
    assert themes.sentiment("Great machine, quick and friendly") > 0.05
    assert themes.sentiment_label(0.0) == "neutral"


def _c(eid: str, t: float, category: str, reason: str | None, text: str) -> Comment:
    return Comment(eid, "store-3", t, category, reason, text, themes.sentiment(text))


def test_an_answer_counts_once_per_theme_by_reason_or_by_comment() -> None:
    reasons = {"staff": Tally(0, 0, 2, 2), "price": Tally(1, 0, 0, 1), None: Tally(5, 0, 0, 9)}
    comments = [
        _c("d:1", 10.0, "detractor", "staff", "rude staff"),  # already in staff by its reason
        _c("d:2", 20.0, "passive", None, "rude staff, long wait"),  # adds to staff and waiting
    ]
    periods = [Period("a", 0.0, 15.0, {"staff": Tally(0, 0, 1, 1)}), Period("b", 15.0, 30.0, {})]
    figs = {f.theme: f for f in theme_figures(reasons, comments, periods)}
    staff = figs["staff"]
    assert (staff.tally.detractors, staff.tally.passives, staff.comments) == (2, 1, 2)
    assert staff.from_reasons == 2 and [e.event_id for e in staff.examples] == ["d:2", "d:1"]
    assert figs["waiting"].tally.n == 1 and figs["price"].tally.n == 1
    assert [(k, t.n) for k, t in staff.trend] == [("a", 1), ("b", 1)]
    assert list(figs)[0] == "staff"  # largest first


def test_periods_are_iso_weeks_clipped_to_the_window() -> None:
    monday = 1_795_996_800.0  # 2026-11-30T00:00Z, a Monday
    got = _periods(Filters(lo=monday - 3 * 86400, hi=monday + 86400), now=0.0)
    assert [(k, lo, hi) for k, lo, hi in got] == [
        ("2026-W48", monday - 3 * 86400, monday),
        ("2026-W49", monday, monday + 86400),
    ]
    assert len(_periods(Filters(), now=monday)) == 12


def test_the_story_comments_explain_store_3() -> None:
    end = 1_796_083_200.0
    scenarios = generate(Story(end=end, days=14, sites=4, devices_per_site=3, seed=7))
    said = voice_comments(scenarios, since=end - 6 * 86400)
    assert said == voice_comments(scenarios, since=end - 6 * 86400)  # seeded
    at_store_3 = [c for c in said if c.site == "store-3"]
    assert len(at_store_3) >= 6 and all(c.at >= end - 6 * 86400 for c in said)
    assert {t for c in at_store_3 for t in themes_of(c.text)} <= {"staff", "waiting", "machine"}


def test_themes_api_counts_reasons_and_a_site_limited_token_sees_only_its_site(
    api: Api, engine: Engine
) -> None:
    now = time.time() - 120
    api.ingest(
        [feedback("nps-aaa111", i, 3, ts=now, reason="staff") for i in range(1, 4)]
        + [feedback("nps-ccc333", 1, 2, ts=now, site="store-2", reason="price")]
    )
    got = api.get("/api/v1/themes")
    assert [(t["theme"], t["n"], t["nps"]) for t in got["themes"]] == [
        ("staff", 3, -100.0), ("price", 1, -100.0)
    ]  # fmt: skip
    assert [r["reason"] for r in got["reasons"]] == ["staff", "price"]
    with Session(engine) as session:
        limited = create_token(session, name="bob", role="viewer", site="store-2")
    auth = {"Authorization": f"Bearer {limited}"}
    client: TestClient = api.client
    mine = client.get("/api/v1/themes", headers=auth).json()
    assert [t["theme"] for t in mine["themes"]] == ["price"]
    assert client.get("/api/v1/themes", params={"site": "store-1"}, headers=auth).status_code == 403
    assert client.get("/api/v1/themes").status_code == 401
