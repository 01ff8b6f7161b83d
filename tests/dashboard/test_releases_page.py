"""Issue 14 in the browser: the releases page shows the demo story's 1.5.0 rollout halted
by its NPS canary, with both groups' intervals; a device page shows its config drift."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from nps_edge import story_fleet
from nps_edge.story import Story, generate, scenario_events, site_names
from server.db.engine import make_engine
from server.fleet import keys, rollout
from tests.dashboard.conftest import (
    BATCH,
    TEST_STORY,
    _tokens,
    axe_findings,
    running_server,
    watched,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT_MS = 15_000


@dataclass
class Server:
    base: str
    tokens: dict[str, str]
    cohort: list[str]
    control: str


@pytest.fixture(scope="module")
def server(nps_edge_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("releases-server")
    key_file = tmp / "command.key"
    with running_server(nps_edge_bin, tmp, command_key=str(key_file), canary_interval_s="3600") as (
        base,
        db,
        _log,
    ):
        story = Story(end=time.time() - 60, **TEST_STORY)  # type: ignore[arg-type]
        sites = site_names(story)
        wanted: list[tuple[str, ...]] = [("operator", "ops"), ("viewer", "vera")]
        wanted += [("gateway", f"gw-{s}", s) for s in sites]
        operator, viewer, *gateways = _tokens(nps_edge_bin, db, *wanted)
        scenarios = generate(story)
        chapter = story_fleet.seed(db, scenarios)
        assert chapter is not None and chapter.cohort
        events = sorted(
            (e for s in scenarios for e in scenario_events(s)), key=lambda e: e["rx_ts"]
        )
        for site, token in zip(sites, gateways, strict=True):
            mine = [e for e in events if e["site"] == site]
            for i in range(0, len(mine), BATCH):
                body = {"gateway": f"gw-{site}", "events": mine[i : i + BATCH]}
                r = httpx.post(
                    f"{base}/api/v1/ingest", json=body,
                    headers={"Authorization": f"Bearer {token}"}, timeout=60,
                )  # fmt: skip
                assert r.status_code == 200, r.text
        engine = make_engine(db)  # the periodic check, run now rather than in an hour
        with Session(engine) as session:
            rollout.tick(session, key=keys.load_or_create(Path(key_file)))
            session.commit()
        engine.dispose()
        control = next(s["device"] for s in scenarios if s["device"] not in chapter.cohort)
        yield Server(base, {"operator": operator, "viewer": viewer}, chapter.cohort, control)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(bypass_csp=True)  # axe is injected as a script
    try:
        with watched(context.new_page()) as page:
            yield page
    finally:
        context.close()


def logged_in_as(page: Page, server: Server, role: str, at: str) -> None:
    page.goto(f"{server.base}/login?next={at}")
    page.get_by_label("Your token").fill(server.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.base}{at}", timeout=WAIT_MS)


def test_the_story_rollout_is_halted_by_its_canary(page: Page, server: Server) -> None:
    logged_in_as(page, server, "operator", "/releases")
    release = page.get_by_test_id("release").filter(has_text="1.5.0")
    expect(release.get_by_test_id("rollout-state")).to_have_text("halted", timeout=WAIT_MS)
    expect(release.get_by_test_id("rollout-reason")).to_contain_text("NPS")
    expect(release.get_by_test_id("cohort-nps")).to_contain_text(" to ")  # its interval
    expect(release.get_by_test_id("control-nps")).to_contain_text(" to ")
    expect(release.get_by_test_id("canary-diff")).to_contain_text("significant drop")
    assert axe_findings(page) == []
    # The canary alert sits in the inbox with the others.
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_text("halted by its canary").first).to_be_visible(timeout=WAIT_MS)


def test_a_viewer_is_told_releases_are_for_operators(page: Page, server: Server) -> None:
    logged_in_as(page, server, "viewer", "/releases")
    expect(page.get_by_role("note")).to_contain_text("operators", timeout=WAIT_MS)


def test_the_device_page_shows_config_drift(page: Page, server: Server) -> None:
    r = httpx.put(
        f"{server.base}/api/v1/devices/{server.control}/config",
        json={"set": {"prompt": {"text": "How was your wash?"}}},
        headers={"Authorization": f"Bearer {server.tokens['operator']}"}, timeout=30,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    logged_in_as(page, server, "operator", f"/fleet/{server.control}")
    expect(page.get_by_test_id("drift")).to_contain_text("yes", timeout=WAIT_MS)
    expect(page.get_by_test_id("desired-cfg")).to_have_text("version 1")
