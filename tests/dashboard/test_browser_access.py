"""Who may do what in the dashboard, in Debian's Chromium against a real, small server:
the login's redirect stays on the site, and another origin cannot make the browser write."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from nps_edge.broker import free_port
from tests.dashboard.conftest import _tokens, running_server
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
    """A server with one open detractor alert and nothing else."""
    tmp = tmp_path_factory.mktemp("access-server")
    with running_server(nps_edge_bin, tmp) as (base, db, _log):
        operator, gateway = _tokens(nps_edge_bin, db, ("operator", "ops"), ("gateway", "gw-test"))
        now = time.time() - 60
        r = httpx.post(
            f"{base}/api/v1/ingest",
            json={"gateway": "gw-test", "events": [feedback(seq=1, score=0, ts=now)]},
            headers={"Authorization": f"Bearer {gateway}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        yield Server(base, {"operator": operator, "gateway": gateway})


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
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    page.close()
    assert not errors, f"errors in the page: {errors}"


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Operator token").fill(token)
    page.get_by_role("button", name="Sign in").click()


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
