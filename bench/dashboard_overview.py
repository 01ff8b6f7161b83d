"""How long the overview takes to be complete in Chromium, against its API calls alone.

    .venv/bin/python -m bench.dashboard_overview [--days 30] [--devices-per-site 5] [--runs 7]

Starts `nps-edge server` on a temp SQLite file, posts the demo story through
`/api/v1/ingest`, logs in with Debian's Chromium and loads `/` `--runs` times,
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
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from nps_edge.broker import free_port
from nps_edge.story import Story, generate, scenario_events
from tests.conftest import CHROMIUM_ARGS  # the flags the browser tests use

ROOT = Path(__file__).resolve().parent.parent
READY = """() => {
  const panels = [...document.querySelectorAll('main section.panel')];
  const ready = panels.length >= 6 && panels.every(p => !p.hasAttribute('aria-busy'))
    && document.querySelector('#trend canvas') && document.querySelector('#heat table');
  return ready ? performance.now() : false;  // ms since this navigation started
}"""


def nps_edge(*args: str) -> str:
    exe = Path(sys.executable).parent / "nps-edge"
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def seed(base: str, gateway: str, story: Story) -> int:
    events = sorted(
        (e for s in generate(story) for e in scenario_events(s)), key=lambda e: e["rx_ts"]
    )
    with httpx.Client(base_url=base, timeout=120) as client:
        for i in range(0, len(events), 1000):
            body = {"gateway": "gw-bench", "events": events[i : i + 1000]}
            client.post(
                "/api/v1/ingest", json=body, headers={"Authorization": f"Bearer {gateway}"}
            ).raise_for_status()
    return len(events)


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--devices-per-site", type=int, default=5)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        operator = nps_edge("token", "create", "--db", db, "--role", "operator", "--name", "b")
        gateway = nps_edge("token", "create", "--db", db, "--role", "gateway", "--name", "gw")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        exe = str(Path(sys.executable).parent / "nps-edge")
        with open(Path(tmp) / "server.log", "wb") as log:
            server = subprocess.Popen(
                [exe, "server", "--db", db, "--port", str(port)], stdout=log, stderr=log
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/api/v1/nps", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        sys.exit("the server did not start")
                    time.sleep(0.2)
            story = Story(
                end=time.time() - 60,
                days=args.days,
                sites=args.sites,
                devices_per_site=args.devices_per_site,
            )
            t0 = time.perf_counter()
            events = seed(base, gateway, story)
            ingest_s = time.perf_counter() - t0
            answered = httpx.get(
                f"{base}/api/v1/nps", headers={"Authorization": f"Bearer {operator}"}
            ).json()["n"]
            page_ms, ref_ms = [], []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                page.goto(f"{base}/login")
                page.fill("#token", operator)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                page.wait_for_function(READY, timeout=60_000)
                for _ in range(args.runs):
                    page.goto(f"{base}/")
                    page_ms.append(page.wait_for_function(READY, timeout=60_000).json_value())
                    query = dict(
                        httpx.QueryParams(page.locator("main").get_attribute("data-query"))
                    )
                    ref_ms.append(api_only(base, operator, query))
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    page_med, ref_med = statistics.median(page_ms), statistics.median(ref_ms)
    print(
        json.dumps(
            {
                "events": events,
                "answered": answered,
                "ingest_s": round(ingest_s, 1),
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
