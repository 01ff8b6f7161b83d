# ruff: noqa: F811
"""Issue 16 in the browser: markers and their before/after, the fleet table following
the filter bar, the device page agreeing with itself, drivers verdicts not clipped,
and labels that say what they cover, at a tablet's and a laptop's width."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import LOST_SEQS, LiveServer

# The overview tests' logged-in `context` and error-watching `page` fixtures, imported (so the
# test parameters named `page` redefine the import: F811 is expected here).
from tests.dashboard.test_browser import (  # noqa: F401
    WAIT_MS,
    context,
    page,
    page_query,
    wait_for_overview,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_release_marker_opens_its_before_after_and_operators_record_events(
    page: Page, live_server: LiveServer
) -> None:
    page.goto(f"{live_server.base}/")
    wait_for_overview(page)
    release = live_server.story.release_fw
    marker = page.locator("#trend [data-testid=marker]", has_text=f"firmware {release}")
    expect(marker).to_be_visible(timeout=WAIT_MS)
    marker.click()  # one click: before against after
    panel = page.get_by_test_id("before-after")
    expect(panel.get_by_test_id("change")).to_be_visible(timeout=WAIT_MS)
    [m] = [m for m in live_server.api("/markers") if m.get("fw") == release]
    c = live_server.api("/compare", at=str(m["at"]), window_s=str(7 * 86400))
    assert c["significant"] and c["diff"] < 0  # the release hurt, the test says so
    expect(panel.get_by_test_id("change")).to_contain_text("significantly lower")
    expect(panel).to_contain_text(f"{c['before']['n']:,}")

    form = page.locator("#marker-form")
    page.locator("#trend summary", has_text="Record a site event").click()
    form.get_by_label("When (UTC)").fill("2026-01-01T10:00")  # before the range: not listed
    form.get_by_label("What").fill("Old refit")
    form.get_by_role("button", name="Add marker").click()
    expect(form.locator("#marker-status")).to_have_text("Added.", timeout=WAIT_MS)
    inside = page.evaluate("new Date(Date.now() - 3 * 86400e3).toISOString().slice(0, 16)")
    form.get_by_label("When (UTC)").fill(inside)
    form.get_by_label("What").fill("New coffee beans")
    form.get_by_role("button", name="Add marker").click()
    added = page.locator("#trend [data-testid=marker]", has_text="New coffee beans")
    expect(added).to_be_visible(timeout=WAIT_MS)
    assert page.locator("#trend [data-testid=marker]", has_text="Old refit").count() == 0
    events = [m for m in live_server.api("/markers") if m["kind"] == "event"]
    assert {m["title"] for m in events} == {"Old refit", "New coffee beans"}
    page.get_by_role("button", name="Delete marker New coffee beans").click()
    expect(added).to_have_count(0, timeout=WAIT_MS)


def test_fleet_table_follows_the_filter_bar(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.base}/fleet?range=24h")
    rows = page.locator("#device-table tbody tr")
    expect(rows.first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("fleet-window")).to_contain_text("last 24 hours")
    window: list[dict[str, Any]] = live_server.api("/devices", **page_query(page))
    everything = {d["device"]: d["n"] for d in live_server.api("/devices")}
    assert sum(d["n"] for d in window) < sum(everything.values())  # not all-time
    for d in window:
        cells = page.locator(f"tr[data-device='{d['device']}'] td")
        expect(cells.nth(4)).to_have_text(f"{d['n']:,}")


def test_device_page_agrees_with_itself(page: Page, live_server: LiveServer) -> None:
    lossy = live_server.lossy_device
    page.goto(f"{live_server.base}/fleet/{lossy}")
    expect(page.get_by_test_id("missing")).to_have_text(
        f"{len(LOST_SEQS)} never arrived", timeout=WAIT_MS
    )
    expect(page.get_by_test_id("gaps-missing")).to_have_text(
        f"{len(LOST_SEQS)} missing", timeout=WAIT_MS
    )
    first = min(e["ts"] for e in live_server.events if e["device"] == lossy)
    detail = live_server.api(f"/devices/{lossy}")
    assert detail["first_seen"] == pytest.approx(first)
    shown = page.get_by_test_id("first-seen").inner_text()
    assert shown.startswith(page.evaluate(f"new Date({first} * 1000).toISOString().slice(0, 10)"))
    expect(page.locator("#telemetry")).to_contain_text("latest reading", timeout=WAIT_MS)
    expect(page.locator("#telemetry")).not_to_contain_text("not yet sent")


@pytest.mark.parametrize("width", [820, 1280])
def test_labels_say_what_they_cover(page: Page, live_server: LiveServer, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(f"{live_server.base}/?site=store-3")
    wait_for_overview(page)
    expect(page.locator("#headline .figure-label").first).to_have_text(
        re.compile("site store-3", re.I)
    )
    trend = page.get_by_test_id("trend")
    expect(trend).not_to_contain_text("testing", timeout=WAIT_MS)
    text = trend.inner_text()
    significant = trend.get_attribute("data-significant") == "true"
    assert ("no significant change" in text) != significant, text
    assert "rising" not in text and "falling" not in text  # words only a test may earn

    page.goto(f"{live_server.base}/?range=24h")
    wait_for_overview(page)
    expect(page.locator("#headline .figure-label").first).to_have_text(
        re.compile("fleet nps", re.I)
    )
    expect(page.get_by_test_id("heat-note")).to_be_visible()

    page.goto(f"{live_server.base}/fleet")
    expect(page.locator("#device-table")).to_be_visible(timeout=WAIT_MS)
    wrap = page.locator("#devices .table-wrap")
    overflowing = wrap.evaluate("w => w.scrollWidth > w.clientWidth + 1")
    if overflowing:
        expect(page.get_by_test_id("more-columns")).to_be_visible()
    if width == 820:
        assert overflowing, "the fleet table fits at 820 px: the cue test proves nothing"
        expect(page.get_by_test_id("more-columns")).to_be_visible()
        assert "scrolls" in (wrap.get_attribute("class") or "")

    page.goto(f"{live_server.base}/drivers")
    expect(page.locator("[data-feature=health] table")).to_be_visible(timeout=WAIT_MS)
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('td.verdict')].filter(td => {
             const wrap = td.closest('.table-wrap').getBoundingClientRect();
             const r = td.getBoundingClientRect();
             return r.right > wrap.right + 1 || td.scrollWidth > td.clientWidth + 1; }).length"""
    )
    if width == 1280:
        assert clipped == 0, "a verdict is cut off at 1280 px"
    ok = page.locator("[data-feature=rssi_band] tr[data-key=ok] td.verdict")
    if ok.count():
        expect(ok).not_to_contain_text("significantly higher")


def test_favicon_is_served(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.base}/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert href == "/ui/favicon.svg"
    r = page.request.get(f"{live_server.base}{href}")
    assert r.ok and r.headers["content-type"].startswith("image/svg+xml")
