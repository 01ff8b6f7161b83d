"""The voice from a phone in Debian's Chromium: the phone page at a phone's viewport adds
a comment that then shows on its alert, and the overview's why panel shows the themes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from nps_edge.story import generate, voice_comments
from nps_edge.story_voice import send_comments
from server.voice import keys
from tests.dashboard.conftest import LiveServer, axe_findings
from tests.dashboard.test_browser import WAIT_MS, login

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PHONE = {"width": 360, "height": 740}


def key_of(server: LiveServer, device: str) -> bytes:
    """The device's key from the secret the server made beside its database."""
    secret = keys.load_secret(server.log.parent / keys.SECRET_FILE)
    return keys.device_key(secret, device)


@pytest.fixture(scope="module")
def operator(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    login(page, live_server)
    page.close()
    yield context
    context.close()


def test_the_phone_page_adds_a_comment_that_shows_on_its_alert(
    browser: Browser, live_server: LiveServer, operator: BrowserContext
) -> None:
    device = next(e["device"] for e in live_server.events if e["site"] == "store-3")
    seq = live_server.next_seq[device]
    live_server.next_seq[device] += 1
    answer = {
        "v": 1, "id": f"{device}:{seq}", "device": device, "site": "store-3", "seq": seq,
        "boot": 99, "up_ms": 1000, "ts": time.time() - 30, "fw": "1.5.0", "type": "feedback",
        "outcome": "answered", "score": 1, "prompt": "nps",
        "trigger": {"kind": "service_visit", "ref": "sv-browser"}, "reason": "staff",
        "answer_ms": 1500, "ctx": {"rssi": -60, "battery_mv": 3900}, "rx_ts": time.time(),
    }  # fmt: skip
    assert live_server.ingest([answer])["accepted"] == 1
    link = keys.link(live_server.base, key_of(live_server, device), device, seq)

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # type: ignore[arg-type]
    page = phone.new_page()
    page.goto(link)
    expect(page.get_by_role("heading", name="Tell us more")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    said = "The technician was rude and we waited an hour"
    page.get_by_label("Your comment").fill(said)
    page.get_by_label("A way to reach you").fill("+44 7700 900456")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible(timeout=WAIT_MS)
    page.goto(link)  # once only
    expect(page.get_by_role("heading", name="Already received")).to_be_visible()
    phone.close()

    alerts = operator.new_page()
    alerts.goto(f"{live_server.base}/alerts")
    expect(alerts.get_by_text(said).first).to_be_visible(timeout=WAIT_MS)
    expect(alerts.get_by_text("customer (phone)").first).to_be_visible()
    alerts.close()


def test_the_why_panel_shows_the_themes_that_explain_store_3(
    live_server: LiveServer, operator: BrowserContext
) -> None:
    story = live_server.story
    said = voice_comments(generate(story), since=story.end - 6 * 86400)
    seqs = {
        (e["device"], e["trigger"]["ref"]): e["seq"]
        for e in live_server.events
        if e["type"] == "feedback" and e["trigger"]["ref"]
    }
    with httpx.Client(base_url=live_server.base, timeout=30) as client:
        stored = send_comments(
            client, said, seq_of=lambda c: seqs.get((c.device, c.ref)),
            link_of=lambda d, n: keys.link("", key_of(live_server, d), d, n),
        )  # fmt: skip
    assert stored == len(said) >= 6

    page = operator.new_page()
    page.goto(f"{live_server.base}/?site=store-3")
    rows = page.get_by_test_id("theme-row")
    expect(rows.first).to_be_visible(timeout=WAIT_MS)
    first = rows.first.get_attribute("data-theme")
    assert first in ("staff", "waiting"), first  # store-3's story: staff and waiting time
    staff = page.locator('[data-testid=theme-row][data-theme="staff"]')
    expect(staff).to_contain_text("Staff and service")
    expect(staff.get_by_test_id("theme-example")).to_be_visible()
    counts = [int(r.locator("td").first.inner_text().replace(",", "")) for r in rows.all()]
    assert counts == sorted(counts, reverse=True)  # largest first
    page.close()


def test_the_phone_page_passes_axe_at_a_phones_width(
    browser: Browser, live_server: LiveServer
) -> None:
    device = live_server.events[0]["device"]
    link = keys.link(live_server.base, key_of(live_server, device), device, 10**9)
    phone = browser.new_context(viewport=PHONE, is_mobile=True, bypass_csp=True)  # type: ignore[arg-type]
    page = phone.new_page()
    page.goto(link)  # an answer not arrived yet: the form all the same (held on POST)
    expect(page.get_by_label("Your comment")).to_be_visible()
    assert axe_findings(page) == []
    phone.close()
