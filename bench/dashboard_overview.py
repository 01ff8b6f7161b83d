"""How long the overview takes to be complete in Chromium, against its API calls alone.

    .venv/bin/python -m bench.dashboard_overview [--days 30] [--devices-per-site 5] [--runs 7]
    .venv/bin/python -m bench.dashboard_overview --bulk 1000000     # N answers, /?range=all

Starts `nps-edge server` on a temp SQLite file, posts the demo story through
`/api/v1/ingest` (or bulk-loads N answers over a year as bench.server_load does),
logs in with Debian's Chromium and loads the overview `--runs` times,
timing from navigation start until every panel has its data and charts
(performance.now() in the page). The reference, measured in the same run, is
the same API calls made from Python in parallel (what the page cannot go
below); the ratio is what the dashboard itself adds (assets, modules, charts).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright
from sqlmodel import Session

from bench import server_load
from nps_edge.story import Story, generate, scenario_events, site_names
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token
from tests.conftest import CHROMIUM_ARGS  # the flags the browser tests use

READY = """() => {
  const panels = [...document.querySelectorAll('main section.panel')];
  const ready = panels.length >= 6 && panels.every(p => !p.hasAttribute('aria-busy'))
    && document.querySelector('#trend canvas') && document.querySelector('#heat table');
  return ready ? performance.now() : false;  // ms since this navigation started
}"""


def seed_story(base: str, gateway: dict[str, str], story: Story) -> int:
    """The demo story through the real ingest endpoint, each site's events with that
    site's gateway token (`gateway`: site -> token)."""
    events = sorted(
        (e for s in generate(story) for e in scenario_events(s)), key=lambda e: e["rx_ts"]
    )
    with httpx.Client(base_url=base, timeout=120) as client:
        for site, token in gateway.items():
            mine = [e for e in events if e["site"] == site]
            for i in range(0, len(mine), 1000):
                body = {"gateway": "gw-bench", "events": mine[i : i + 1000]}
                client.post(
                    "/api/v1/ingest", json=body, headers={"Authorization": f"Bearer {token}"}
                ).raise_for_status()
    return len(events)


def bulk(url: str, answers: int) -> int:
    """`answers` feedback rows over 1,000 devices and a year, loaded the way the server
    benchmark loads them (bulk insert, rollups built in SQL; see bench/server_load.py)."""
    engine = make_engine(url)
    upgrade(engine)
    fleet = server_load.Fleet(1000, 7)
    span = 365 * server_load.DAY
    start = server_load.YEAR_END - span
    loaded = server_load.bulk_load(engine, server_load.events(answers, fleet, 7, start, span))
    server_load.build_rollups(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return loaded


def api_only(base: str, operator: str, query: dict[str, str]) -> float:
    """The overview's calls, in parallel as a browser makes them, without the browser."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/session", {}),
        ("/filters", {}),
        ("/alerts", {"status": "open", "limit": 1}),
        ("/nps", {**query, "group_by": "day"}),
        ("/nps", {**query, "group_by": "trigger"}),
        ("/nps", {**query, "group_by": "site"}),
        ("/heatmap", query),
        ("/feedback", {**query, "limit": 12}),
    ]
    headers = {"Authorization": f"Bearer {operator}"}
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as client:

        def get(call: tuple[str, dict[str, Any]]) -> int:
            return client.get(call[0], params=call[1]).status_code

        start = time.perf_counter()
        with ThreadPoolExecutor(6) as pool:  # Chromium's connections per host
            codes = list(pool.map(get, calls))
        elapsed = time.perf_counter() - start
    assert all(c in (200, 404) for c in codes), codes
    return elapsed * 1000


def time_overview(base: str, operator: str, path: str, runs: int) -> tuple[list, list]:
    """Milliseconds to a complete overview in Chromium, and to its API calls alone."""
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed: apt-get install -y chromium")
    page_ms: list[float] = []
    ref_ms: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{base}/login")
        page.fill("#token", operator)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for _ in range(runs):
            page.goto(f"{base}{path}")
            page_ms.append(page.wait_for_function(READY, timeout=120_000).json_value())
            query = dict(httpx.QueryParams(page.locator("main").get_attribute("data-query")))
            ref_ms.append(api_only(base, operator, query))
        browser.close()
    return page_ms, ref_ms


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30, help="story length")
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--devices-per-site", type=int, default=5)
    ap.add_argument("--bulk", type=int, default=0, help="instead of the story: N answers")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        loaded = bulk(url, args.bulk) if args.bulk else 0
        engine = make_engine(url)
        upgrade(engine)
        with Session(engine) as session:
            operator = create_token(session, name="bench-op", role="operator")
            story = Story(
                end=time.time() - 60,
                days=args.days,
                sites=args.sites,
                devices_per_site=args.devices_per_site,
            )
            gateway = {  # a gateway token belongs to one site (issue 12)
                site: create_token(session, name="gw-bench", role="gateway", site=site)
                for site in site_names(story)
            }
        engine.dispose()
        server, base = server_load.start_server(url, 1, Path(tmp) / "server.log")
        try:
            if not args.bulk:
                loaded = seed_story(base, gateway, story)
            load_s = time.perf_counter() - t0
            # The story covers the default 30 days; the bulk year is shown whole.
            path = "/?range=all" if args.bulk else "/"
            answered = httpx.get(
                f"{base}/api/v1/nps",
                params={} if args.bulk else {"from": str(int(time.time() - 30 * 86400))},
                headers={"Authorization": f"Bearer {operator}"},
                timeout=120,
            ).json()["n"]
            page_ms, ref_ms = time_overview(base, operator, path, args.runs)
        finally:
            server.terminate()
            server.wait(30)
    page_med, ref_med = statistics.median(page_ms), statistics.median(ref_ms)
    print(
        json.dumps(
            {
                "data": f"bulk {args.bulk}" if args.bulk else f"story {args.days} days",
                "events_loaded": loaded,
                "answers_on_overview": answered,
                "load_s": round(load_s, 1),
                "overview_ms_median": round(page_med),
                "overview_ms_max": round(max(page_ms)),
                "api_only_ms_median": round(ref_med),
                "ratio_page_to_api": round(page_med / ref_med, 2),
                "runs": args.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
