"""The programme on the overview in Debian's Chromium against a real, small server:
bands explained, the target's gap, the north star tile, coverage by role; a viewer
gets no forms and cannot write, a site-bound viewer sees only its site's coverage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from server.analytics.northstar import week_start
from server.db.engine import make_engine
from server.identity.tokens import create_token
from tests.dashboard.conftest import axe_findings, running_server
from tests.server.factory import feedback, telemetry

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 15_000


@dataclass
class Server:
    base: str
    tokens: dict[str, str]

    def api(self, method: str, path: str, role: str, body: object = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.base}/api/v1{path}", json=body,
            headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=30,
        )  # fmt: skip


@pytest.fixture(scope="module")
def server(nps_edge_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """store-1: transactional answers from end users and technicians, relationship answers
    from an operator and a sponsor, a reading of transactions not prompted; store-2: end
    users only. All last week and today."""
    tmp = tmp_path_factory.mktemp("programme-server")
    with running_server(nps_edge_bin, tmp) as (base, db, _log):
        wanted = {
            "operator": ("operator", "ops"), "viewer": ("viewer", "vera"),
            "admin": ("admin", "ada"),
            "viewer-store-2": ("viewer", "val", "store-2"),
            "gw-store-1": ("gateway", "gw-store-1", "store-1"),
            "gw-store-2": ("gateway", "gw-store-2", "store-2"),
        }  # fmt: skip
        # In-process on the server's migrated database: six `nps-edge token create`
        # processes cost a loaded machine a minute.
        engine = make_engine(db)
        with Session(engine) as session:
            tokens = {
                key: create_token(session, name=name, role=role, site=site[0] if site else None)
                for key, (role, name, *site) in wanted.items()
            }
        engine.dispose()
        now = time.time() - 60
        last_week = week_start(now) - 4 * 86400
        s1 = [
            *(feedback("nps-aaa111", i, 10, ts=last_week + i, role="end_user") for i in (1, 2, 3)),
            *(feedback("nps-aaa111", i, 9, ts=last_week + i, role="end_user") for i in (4, 5, 6)),
            feedback("nps-aaa111", 7, 2, ts=now, role="technician"),
            feedback("nps-aaa111", 8, 9, ts=now, role="operator", survey="relationship"),
            feedback("nps-aaa111", 9, 3, ts=now, role="sponsor", survey="relationship"),
            # A device sampling 1 in k: 4 transactions last week it did not prompt.
            telemetry("nps-ccc333", 1, ts=last_week + 10, up_ms=600_000,
                      sampling={"sampled_out": 3, "throttled": 1}),
        ]  # fmt: skip
        s2 = [feedback("nps-bbb222", 1, 8, ts=now, site="store-2", role="end_user")]
        for site, events in (("store-1", s1), ("store-2", s2)):
            r = httpx.post(
                f"{base}/api/v1/ingest", json={"gateway": f"gw-{site}", "events": events},
                headers={"Authorization": f"Bearer {tokens['gw-' + site]}"}, timeout=30,
            )  # fmt: skip
            assert r.status_code == 200 and not r.json()["rejected"], r.text
        yield Server(base, tokens)


def signed_in(browser: Browser, server: Server, role: str) -> Page:
    """The overview as `role`, its programme panels loaded (no CSP: axe is injected)."""
    context = browser.new_context(viewport={"width": 1366, "height": 1000}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.errors = errors  # type: ignore[attr-defined]
    page.goto(f"{server.base}/login?next=/?range=30d")
    page.get_by_label("Your token").fill(server.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.base}/?range=30d", timeout=WAIT_MS)
    for panel in ("#surveys", "#standing", "#northstar", "#roles"):
        expect(page.locator(panel)).to_be_visible(timeout=WAIT_MS)
        expect(page.locator(panel)).not_to_have_attribute("aria-busy", "true", timeout=WAIT_MS)
    return page


def test_surveys_side_by_side_and_bands_explained(browser: Browser, server: Server) -> None:
    page = signed_in(browser, server, "operator")
    expect(page.get_by_test_id("survey-difference")).to_contain_text("never averaged")
    # 6 promoters, 1 passive (store-2), 1 detractor: +62.5 transactional; the relationship
    # answers (1 promoter, 1 detractor: 0.0) are not in it, nor averaged with it.
    expect(page.get_by_test_id("nps-transactional")).to_have_text("+62.5")
    expect(page.get_by_test_id("nps-relationship")).to_have_text("0.0")
    # The headline too is transactional only, with its band's meaning next to it.
    expect(page.get_by_test_id("nps")).to_have_text("+62.5")
    headline = page.locator("#headline")
    expect(headline.get_by_test_id("band-label")).to_have_text("leader")
    expect(headline.get_by_test_id("band-meaning")).to_contain_text("consumer leaders score")
    page.locator("#standing summary").click()
    expect(page.get_by_test_id("band-list")).to_contain_text("more detractors: below 0")
    assert not page.errors  # type: ignore[attr-defined]
    page.context.close()


def test_an_operator_enters_a_target_and_sees_the_gap(browser: Browser, server: Server) -> None:
    page = signed_in(browser, server, "operator")
    form = page.locator("#target-form")
    form.get_by_label("Target NPS").fill("80")
    form.get_by_label("Category or competitor NPS").fill("50")
    form.get_by_label("Whose figure").fill("category average")
    form.get_by_role("button", name="Save target").click()
    expect(page.get_by_test_id("target")).to_have_text("+80.0", timeout=WAIT_MS)
    expect(page.get_by_test_id("target-gap")).to_have_text("−17.5 points")
    expect(page.get_by_test_id("benchmark-gap")).to_have_text("+12.5 points")
    expect(page.locator("#standing dd").last).to_have_text("ops for the fleet")
    history = server.api("GET", "/targets/history", "viewer").json()
    assert [(h["target"], h["set_by"]) for h in history][0] == (80, "ops")
    page.context.close()


def test_an_admin_switches_the_band_set(browser: Browser, server: Server) -> None:
    page = signed_in(browser, server, "admin")
    page.locator("#bands-form").get_by_label("Band set").select_option("enterprise_b2b")
    page.locator("#bands-form").get_by_role("button", name="Use these bands").click()
    expect(page.get_by_test_id("standing-band")).to_contain_text("strong", timeout=WAIT_MS)
    assert server.api("GET", "/benchmarks", "viewer").json()["active"] == "enterprise_b2b"
    server.api("PUT", "/benchmarks/active", "admin", {"set": "consumer"})
    page.context.close()


def test_north_star_tile_and_coverage_by_role(browser: Browser, server: Server) -> None:
    page = signed_in(browser, server, "operator")
    expect(page.get_by_test_id("northstar-label")).to_have_text(
        "Weekly transactions completed on healthy devices"
    )
    # 6 prompted last week on a healthy device, and 4 a healthy device did not prompt.
    expect(page.get_by_test_id("northstar-value")).to_have_text("10")
    skipped = page.get_by_test_id("northstar-unprompted")
    expect(skipped).to_have_count(8)
    expect(skipped.nth(6)).to_have_text("4")
    expect(page.get_by_test_id("northstar-trend")).to_contain_text("no trend yet")
    missing = page.get_by_test_id("coverage-missing")
    expect(missing).to_contain_text("store-2 has no answers from technicians this quarter")
    expect(missing).to_contain_text("store-1 has no answers from buyers this quarter")
    expect(page.get_by_test_id("roles-relationship")).to_contain_text("sponsor")
    assert page.get_by_test_id("coverage").locator("tbody tr").count() == 2
    assert axe_on_our_panels(page) == []
    page.context.close()


def axe_on_our_panels(page: Page) -> list[str]:
    """axe-core's serious and critical findings inside the programme's panels only."""
    axe_findings(page)  # injects axe (and skips when it is missing)
    return list(
        page.evaluate(
            """async () => {
              const r = await axe.run({include: [['#surveys'], ['#standing'], ['#northstar'],
                ['#roles']]}, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice'],
                resultTypes: ['violations']});
              return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => `${v.id}: ${v.nodes.length} x ${v.nodes[0].target.join(' ')}`);
            }"""
        )
    )


def test_a_viewer_gets_no_forms_and_cannot_write(browser: Browser, server: Server) -> None:
    page = signed_in(browser, server, "viewer")
    expect(page.get_by_test_id("target-gap")).to_be_visible()
    assert page.locator("#target-form, #bands-form").count() == 0
    forged = page.evaluate(
        """() => Promise.all([
             fetch('/api/v1/targets', {method: 'PUT', headers: {'Content-Type': 'application/json'},
                   body: JSON.stringify({target: 99})}).then(r => r.status),
             fetch('/api/v1/benchmarks/active', {method: 'PUT',
                   headers: {'Content-Type': 'application/json'},
                   body: JSON.stringify({set: 'consumer'})}).then(r => r.status)])"""
    )
    assert forged == [403, 403]
    for body in ({"target": "<script>"}, {"target": 1e9}):
        assert server.api("PUT", "/targets", "operator", body).status_code == 422
    page.context.close()


def test_a_site_bound_viewer_sees_its_own_sites_coverage_only(
    browser: Browser, server: Server
) -> None:
    page = signed_in(browser, server, "viewer-store-2")
    coverage = page.get_by_test_id("coverage")
    expect(coverage.locator("tbody tr")).to_have_count(1)
    expect(coverage).to_contain_text("store-2")
    expect(coverage).not_to_contain_text("store-1")
    expect(page.get_by_test_id("coverage-missing")).not_to_contain_text("store-1")
    assert server.api("GET", "/coverage?site=store-1", "viewer-store-2").status_code == 403
    page.context.close()
