"""How long the overview takes to be complete in Chromium, against its API calls alone.

    .venv/bin/python -m bench.dashboard_overview [--days 30] [--devices-per-site 5] [--runs 7]
    .venv/bin/python -m bench.dashboard_overview --answers 10M   # N answers, /?range=all
    .venv/bin/python -m bench.dashboard_overview --answers 10M --server-src DIR  # another tree

Starts `nps-edge server` on a temp SQLite file and posts the demo story through
`/api/v1/ingest`, or (`--answers`) on a cached database of N answers over a year made
in SQL by bench/overview_data.py (built once, then reused). It logs in with Debian's
Chromium and loads the overview `--runs` times, timing from navigation start until
every panel has its data and charts, the tested trend line and the chart markers
(performance.now() in the page). The reference, measured in the same run, is the
same API calls (caught from the page) made from Python in parallel (what the page
cannot go below); the ratio is what the dashboard itself adds (assets, modules,
charts). With `--answers` it also times each API call alone and lists what each
reads from the database (bench/sql_reads.py).
`--server-src DIR` runs the server from another source tree (e.g. `git archive` of
an older commit, with server/dashboard/vendor copied in) on the same data: the
before/after reference of a change.
"""

from __future__ import annotations

import argparse
import json
import os
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
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, sync_playwright
from sqlmodel import Session

from bench import overview_data, server_load, sql_reads
from nps_edge.broker import free_port
from nps_edge.story import Story, generate, scenario_events, site_names
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token
from tests.conftest import CHROMIUM_ARGS  # the flags the browser tests use

# Complete: every panel has its data, the trend chart and heat map are drawn, the
# trend line has its test's answer and the markers under the chart are listed.
READY = """() => {
  const panels = [...document.querySelectorAll('main section.panel')];
  const trend = document.querySelector('[data-testid=trend]');
  const markers = document.querySelector('[data-testid=marker-note]');
  const ready = panels.length >= 6 && panels.every(p => !p.hasAttribute('aria-busy'))
    && document.querySelector('#trend canvas') && document.querySelector('#heat table')
    && trend && !trend.textContent.includes('testing') && markers && markers.textContent;
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


def start_server(url: str, log: Path, src: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    """`nps-edge server` of this tree, or of the source tree `src` (same interpreter)."""
    if src is None:
        return server_load.start_server(url, 1, log)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = "import sys; from nps_edge.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "server", "--db", url, "--port", str(port)],
        cwd=src, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    return proc, server_load.healthy(proc, port, log)


def api_only(base: str, operator: str, paths: list[str]) -> float:
    """The overview's calls, in parallel as a browser makes them, without the browser."""
    headers = {"Authorization": f"Bearer {operator}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:

        def get(path: str) -> int:
            return client.get(path).status_code

        start = time.perf_counter()
        with ThreadPoolExecutor(6) as pool:  # Chromium's connections per host
            codes = list(pool.map(get, paths))
        elapsed = time.perf_counter() - start
    assert all(c in (200, 404) for c in codes), codes
    return elapsed * 1000


def each_call(base: str, operator: str, paths: list[str], repeat: int = 3) -> dict[str, float]:
    """Milliseconds of each call alone (median of `repeat`, after one warm-up)."""
    headers = {"Authorization": f"Bearer {operator}"}
    out = {}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for path in paths:
            client.get(path)
            ms = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                client.get(path).raise_for_status()
                ms.append((time.perf_counter() - t0) * 1000)
            out[path] = round(statistics.median(ms), 1)
    return out


def goto(page: Page, url: str, tries: int = 3) -> None:
    """Navigate, again when Chromium saw the machine's network change (other work on a
    shared machine adds and removes interfaces: net::ERR_NETWORK_CHANGED)."""
    for attempt in range(tries):
        try:
            page.goto(url)
            return
        except PlaywrightError as err:
            if "ERR_NETWORK_CHANGED" not in str(err) or attempt == tries - 1:
                raise


def time_overview(base: str, operator: str, path: str, runs: int) -> tuple[list, list, list]:
    """Milliseconds to a complete overview in Chromium, and to its API calls alone;
    and the API paths the page called (first run)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed: apt-get install -y chromium")
    page_ms: list[float] = []
    ref_ms: list[float] = []
    calls: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        goto(page, f"{base}/login")
        page.fill("#token", operator)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.wait_for_function(READY, timeout=120_000)  # its late calls are not the next page's
        for _ in range(runs):
            seen: list[str] = []

            def note(request: Request, seen: list[str] = seen) -> None:
                if "/api/v1/" in request.url and request.method == "GET":
                    seen.append(request.url.removeprefix(base))

            page.on("request", note)
            goto(page, f"{base}{path}")
            page_ms.append(page.wait_for_function(READY, timeout=120_000).json_value())
            page.remove_listener("request", note)
            calls = calls or [u for u in seen if "/stream" not in u]
            ref_ms.append(api_only(base, operator, calls))
        browser.close()
    return page_ms, ref_ms, calls


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30, help="story length")
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--devices-per-site", type=int, default=5)
    ap.add_argument(
        "--answers", type=overview_data.parse_count, default=0,
        help="instead of the story: N answers (10M, 1M, 200k), cached in ~/.cache/nps-edge",
    )  # fmt: skip
    ap.add_argument("--server-src", type=Path, help="run the server from this source tree")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.answers:
            url = f"sqlite:///{overview_data.database(args.answers)}"
        else:
            url = f"sqlite:///{tmp}/bench.db"
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
        server, base = start_server(url, Path(tmp) / "server.log", args.server_src)
        try:
            loaded = args.answers or seed_story(base, gateway, story)
            load_s = time.perf_counter() - t0
            # The story covers the default 30 days; the bulk year is shown whole.
            path = "/?range=all" if args.answers else "/"
            answered = httpx.get(
                f"{base}/api/v1/nps",
                params={} if args.answers else {"from": str(int(time.time() - 30 * 86400))},
                headers={"Authorization": f"Bearer {operator}"},
                timeout=120,
            ).json()["n"]
            page_ms, ref_ms, calls = time_overview(base, operator, path, args.runs)
            alone = each_call(base, operator, calls) if args.answers else {}
        finally:
            server.terminate()
            server.wait(30)
        read = sql_reads.reads(url, operator, calls) if args.answers and not args.server_src else []
    page_med, ref_med = statistics.median(page_ms), statistics.median(ref_ms)
    report: dict[str, Any] = {
        "data": f"{args.answers} answers" if args.answers else f"story {args.days} days",
        "server": str(args.server_src or "this tree"),
        "events_loaded": loaded,
        "answers_on_overview": answered,
        "load_s": round(load_s, 1),
        "overview_ms_median": round(page_med),
        "overview_ms_max": round(max(page_ms)),
        "api_only_ms_median": round(ref_med),
        "ratio_page_to_api": round(page_med / ref_med, 2),
        "runs": args.runs,
        "api_calls": len(calls),
    }
    if alone:
        report["call_ms"] = alone
    if read:
        report["call_rows_read"] = {c.path: c.rows for c in read}
        report["call_full_scans"] = {c.path: c.scans for c in read if c.scans}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
