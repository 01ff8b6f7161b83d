"""Who may do what in the dashboard, in Debian's Chromium against a real, small server:
the login's redirect stays on the site, and another origin cannot make the browser write."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from nps_edge.broker import free_port
from tests.dashboard.conftest import _tokens, axe_findings, running_server, watched
from tests.server.factory import feedback

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 15_000
EVIL = "http://evil.example"


@dataclass
class Server:
    base: str
    tokens: dict[str, str]

    def api(self, method: str, path: str, role: str = "operator") -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def server(nps_edge_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with one open detractor alert of store-1, one event store-2's gateway
    was refused for (a store-1 device), and a token per person's role."""
    tmp = tmp_path_factory.mktemp("access-server")
    with running_server(nps_edge_bin, tmp) as (base, db, _log):
        wanted = {
            "operator": ("operator", "ops"), "viewer": ("viewer", "vera"),
            "admin": ("admin", "ada"),
            "store-1": ("gateway", "gw-store-1", "store-1"),
            "store-2": ("gateway", "gw-store-2", "store-2"),
        }  # fmt: skip
        tokens = dict(zip(wanted, _tokens(nps_edge_bin, db, *wanted.values()), strict=True))
        now = time.time() - 60
        answers = []
        for seq, site in ((1, "store-1"), (2, "store-2")):  # the same device, nps-aaa111
            event = feedback(seq=seq, score=0, ts=now, site=site)
            r = httpx.post(
                f"{base}/api/v1/ingest",
                json={"gateway": f"gw-{site}", "events": [event]},
                headers={"Authorization": f"Bearer {tokens[site]}"},
                timeout=30,
            )  # fmt: skip
            assert r.status_code == 200, r.text
            answers.append(r.json())
        assert answers[0]["accepted"] == 1
        assert answers[1]["rejected"][0]["error"].startswith("site:")  # first seen via store-1
        yield Server(base, tokens)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser with no cookie; another site's pages answered by the test itself."""
    context = browser.new_context()
    context.route(
        f"{EVIL}/**", lambda route: route.fulfill(body="<h1>evil</h1>", content_type="text/html")
    )
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    with watched(context.new_page()) as page:
        yield page


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Your token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def logged_in_as(page: Page, server: Server, role: str, at: str = "/") -> None:
    page.goto(f"{server.base}/login?next={at}")
    sign_in(page, server.tokens[role])
    page.wait_for_url(f"{server.base}{at}", timeout=WAIT_MS)


@pytest.mark.parametrize(
    "next_",
    ["/\\evil.example", "%2F%5Cevil.example", "//evil.example", "%2F%2Fevil.example",
     "/%09/evil.example", "http://evil.example/"],
)  # fmt: skip
def test_login_never_sends_the_browser_to_another_site(
    page: Page, server: Server, next_: str
) -> None:
    page.goto(f"{server.base}/login?next={next_}")
    sign_in(page, server.tokens["operator"])
    page.wait_for_url(f"{server.base}/", timeout=WAIT_MS)
    assert page.evaluate("location.origin") == server.base
    # Already logged in, the login page sends the browser on at once: same rule.
    page.goto(f"{server.base}/login?next={next_}")
    page.wait_for_url(f"{server.base}/", timeout=WAIT_MS)


def test_login_goes_back_to_the_page_asked_for(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/alerts?status=all")
    page.wait_for_url(f"{server.base}/login?next=%2Falerts%3Fstatus%3Dall", timeout=WAIT_MS)
    sign_in(page, server.tokens["operator"])
    page.wait_for_url(f"{server.base}/alerts?status=all", timeout=WAIT_MS)


def test_another_origin_on_the_same_host_cannot_write_with_the_cookie(
    context: BrowserContext, page: Page, server: Server
) -> None:
    """SameSite ignores ports: a page on 127.0.0.1:<other port> is the same site, so the
    browser sends the session cookie with its form post. Only the Origin check stops it."""
    page.goto(f"{server.base}/login")
    sign_in(page, server.tokens["operator"])
    page.wait_for_url(f"{server.base}/", timeout=WAIT_MS)
    [alert] = server.api("GET", "/alerts").json()["items"]
    target = f"{server.base}/api/v1/alerts/{alert['id']}/ack"

    attacker = f"http://127.0.0.1:{free_port()}"
    form = (
        f'<form method="post" action="{target}"></form><script>document.forms[0].submit()</script>'
    )

    def attack_page(route: Route) -> None:
        route.fulfill(body=form, content_type="text/html")

    context.route(f"{attacker}/**", attack_page)
    with page.expect_response(target) as answer:
        page.goto(f"{attacker}/attack")
    response = answer.value
    assert "nps_session=" in (response.request.all_headers().get("cookie") or "")  # it rode along
    assert response.status == 403
    assert "cross-site request refused" in response.text()
    assert server.api("GET", f"/alerts/{alert['id']}").json()["status"] == "open"

    # The dashboard's own writes (fetch sends this server's Origin) still work.
    page.goto(f"{server.base}/alerts")
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text("acknowledged", exact=False).first.wait_for(timeout=WAIT_MS)
    deadline = time.monotonic() + WAIT_MS / 1000
    while server.api("GET", f"/alerts/{alert['id']}").json()["status"] != "acknowledged":
        assert time.monotonic() < deadline, "the dashboard's acknowledge did not arrive"
        time.sleep(0.05)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server.base}/login", timeout=WAIT_MS)
    assert context.request.get(f"{server.base}/api/v1/session").status == 401


def test_a_viewer_reads_alerts_without_the_buttons_it_may_not_use(
    page: Page, server: Server
) -> None:
    logged_in_as(page, server, "viewer", "/alerts?status=all")
    expect(page.locator("#who")).to_have_text("Signed in as vera (viewer)", timeout=WAIT_MS)
    expect(page.locator("li.alert").first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#read-only")).to_contain_text("you can read alerts")
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    assert page.locator("li.alert form").count() == 0
    expect(page.get_by_role("link", name="Device registry")).to_be_hidden()
    # Nor does the API let it (the page only hides what the server refuses).
    [alert] = server.api("GET", "/alerts?status=all").json()["items"]
    forged = page.evaluate(
        """id => fetch(`/api/v1/alerts/${id}/ack`, {method: "POST"}).then(r => r.status)""",
        alert["id"],
    )
    assert forged == 403
    page.goto(f"{server.base}/registry")
    expect(page.get_by_role("note")).to_contain_text("Only an admin", timeout=WAIT_MS)


def test_the_fleet_page_shows_events_refused_across_sites(page: Page, server: Server) -> None:
    logged_in_as(page, server, "viewer", "/fleet")
    count = page.get_by_test_id("rejected-count")
    expect(count).to_have_attribute("data-value", "1", timeout=WAIT_MS)
    expect(count).to_contain_text("1 event was refused")
    reasons = page.locator("ul.rejections li")
    expect(reasons).to_have_count(1)
    expect(reasons.first).to_contain_text("gw-store-2")
    expect(reasons.first).to_contain_text("first seen through site store-1")


def test_an_admin_registers_a_device_sees_its_password_once_and_revokes_it(
    page: Page, server: Server, shots: Path
) -> None:
    logged_in_as(page, server, "admin")
    page.get_by_role("link", name="Device registry").click()
    page.wait_for_url(f"{server.base}/registry", timeout=WAIT_MS)
    form = page.locator("#add-device")
    form.get_by_label("Site").fill("store-2")
    form.get_by_label("Device id").fill("nps-reg001")
    page.get_by_role("button", name="Add device").click()
    box = page.locator("#new-password")
    expect(box).to_contain_text("shown this once", timeout=WAIT_MS)
    password = page.get_by_label("Broker password of nps-reg001").input_value()
    assert len(password) >= 32
    page.get_by_role("button", name="Copy").click()
    # Copied, or (no clipboard without HTTPS) told to copy the selected text.
    expect(page.locator("#registry-message")).to_contain_text(re.compile(r"copied|copy it"))
    row = page.locator("#registry-table tr[data-device=nps-reg001]")
    expect(row.get_by_test_id("registry-status")).to_have_text("active", timeout=WAIT_MS)
    page.screenshot(path=shots / "registry.png", full_page=True)
    listed = server.api("GET", "/registry/devices", role="admin").json()
    assert "nps-reg001" in [d["device"] for d in listed] and password not in str(listed)

    page.reload()  # the password is gone for good
    expect(page.locator("#registry-table")).to_be_visible(timeout=WAIT_MS)
    assert password not in page.content()

    row = page.locator("#registry-table tr[data-device=nps-reg001]")
    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("button", name="Confirm: revoke nps-reg001").click()
    expect(row.get_by_test_id("registry-status")).to_contain_text("revoked", timeout=WAIT_MS)
    listed = server.api("GET", "/registry/devices", role="admin").json()
    assert [d["revoked_at"] is not None for d in listed if d["device"] == "nps-reg001"] == [True]


def test_the_registry_and_read_only_pages_pass_axe(browser: Browser, server: Server) -> None:
    """axe-core on what this file adds: the registry with a new password shown, the
    alerts as a viewer sees them, the fleet's refused events."""
    context = browser.new_context(bypass_csp=True)  # axe is injected as a script
    page = context.new_page()
    logged_in_as(page, server, "admin", "/registry")
    form = page.locator("#add-device")
    form.get_by_label("Site").fill("store-1")
    page.get_by_role("button", name="Add device").click()
    expect(page.locator("#new-password")).to_be_visible(timeout=WAIT_MS)
    found = {"/registry": axe_findings(page)}
    page.context.clear_cookies()
    logged_in_as(page, server, "viewer", "/alerts")
    expect(page.locator("#read-only")).to_be_visible(timeout=WAIT_MS)
    found["/alerts (viewer)"] = axe_findings(page)
    page.goto(f"{server.base}/fleet")
    expect(page.get_by_test_id("rejected-count")).to_be_visible(timeout=WAIT_MS)
    found["/fleet"] = axe_findings(page)
    context.close()
    bad = {path: v for path, v in found.items() if v}
    assert not bad, bad
