"""A real `nps-edge server` process seeded with the demo story, for the browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from nps_edge.broker import free_port
from nps_edge.story import Story, generate, scenario_events, site_names
from tests.conftest import CHROMIUM_ARGS, ROOT, host_network, missing

BATCH = 1000
LOST_SEQS = range(200, 204)
# A smaller fleet than the demo's, two weeks, telemetry every 45-90 min: about
# 9,400 events, enough for every page to tell the story, quick to ingest.
TEST_STORY = dict(days=14, sites=4, devices_per_site=3, telemetry_minutes=(45.0, 90.0), seed=7)


@dataclass
class LiveServer:
    base: str
    operator_token: str
    gateway_tokens: dict[str, str]  # site -> the token of its gateway `gw-<site>`
    story: Story
    events: list[dict[str, Any]]
    log: Path
    lossy_device: str
    next_seq: dict[str, int] = field(default_factory=dict)

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.base}/api/v1{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.operator_token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def ingest(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Each site's events through that site's gateway (a gateway token has one site)."""
        total: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": []}
        for site in sorted({e["site"] for e in events}):
            response = httpx.post(
                f"{self.base}/api/v1/ingest",
                json={"gateway": f"gw-{site}", "events": [e for e in events if e["site"] == site]},
                headers={"Authorization": f"Bearer {self.gateway_tokens[site]}"},
                timeout=60,
            )
            response.raise_for_status()
            result = response.json()
            assert not result["rejected"], result["rejected"][:3]
            total["accepted"] += result["accepted"]
            total["duplicates"] += result["duplicates"]
        return total


def _tokens(bin_: str, db: str, *wanted: tuple[str, ...]) -> list[str]:
    """`nps-edge token create` for each (role, name) or (role, name, site), run side by
    side on a migrated db."""
    procs = [
        subprocess.Popen(
            [bin_, "token", "create", "--db", db, "--role", role, "--name", name]
            + (["--site", site[0]] if site else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role, name, *site in wanted
    ]
    tokens = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        tokens.append(out.strip())
    return tokens


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nps-edge server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(f"{base}/api/v1/nps", timeout=1)  # any answer: it is listening
            return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"nps-edge server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def running_server(
    nps_edge_bin: str, tmp: Path, **settings: str
) -> Iterator[tuple[str, str, Path]]:
    """`nps-edge server` on a free port with a temp SQLite database: (base URL, db, log).
    `settings` become `NPS_EDGE_<NAME>` variables."""
    db = f"sqlite:///{tmp}/x.db"
    port = free_port()
    log = tmp / "server.log"
    env = {**os.environ, "NPS_EDGE_NODE_MODULES": str(ROOT / "node_modules")}
    env.update({f"NPS_EDGE_{k.upper()}": v for k, v in settings.items()})
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [nps_edge_bin, "server", "--db", db, "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, log)  # the server migrated the database before listening
        yield base, db, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class SeededStory:
    """The story ingested once per session: a stopped server's folder to copy."""

    folder: Path
    operator_token: str
    gateway_tokens: dict[str, str]
    story: Story
    events: list[dict[str, Any]]
    lossy_device: str
    next_seq: dict[str, int]


@pytest.fixture(scope="session")
def seeded_story(nps_edge_bin: str, tmp_path_factory: pytest.TempPathFactory) -> SeededStory:
    """The test story through the real ingest API once (about 9,400 events): each module's
    `live_server` then starts on a copy of this database instead of ingesting it again."""
    tmp = tmp_path_factory.mktemp("dashboard-seed")
    with running_server(nps_edge_bin, tmp) as (base, db, log):
        story = Story(end=time.time() - 60, **TEST_STORY)  # type: ignore[arg-type]
        sites = site_names(story)
        operator, *gateways = _tokens(
            nps_edge_bin, db, ("operator", "ops"), *(("gateway", f"gw-{s}", s) for s in sites)
        )
        scenarios = generate(story)
        events = [e for s in scenarios for e in scenario_events(s)]
        # One device lost a few events on the way: the fleet page must show the gap.
        lost = {f"{scenarios[0]['device']}:{seq}" for seq in LOST_SEQS}
        events = [e for e in events if e["id"] not in lost]
        events.sort(key=lambda e: e["rx_ts"])  # as a gateway would forward them
        loader = LiveServer(
            base, operator, dict(zip(sites, gateways, strict=True)), story, events, log,
            scenarios[0]["device"],
        )  # fmt: skip
        for i in range(0, len(events), BATCH):
            loader.ingest(events[i : i + BATCH])
    next_seq: dict[str, int] = {}
    for e in events:
        next_seq[e["device"]] = max(next_seq.get(e["device"], 0), e["seq"] + 1)
    log.unlink()
    return SeededStory(
        tmp, operator, loader.gateway_tokens, story, events, loader.lossy_device, next_seq
    )


@pytest.fixture(scope="module")
def live_server(
    nps_edge_bin: str, seeded_story: SeededStory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server of this module's own on a copy of the seeded database (the database with
    its files beside it), so what one module writes never reaches another."""
    tmp = tmp_path_factory.mktemp("dashboard-server")
    shutil.copytree(seeded_story.folder, tmp, dirs_exist_ok=True)
    with running_server(nps_edge_bin, tmp) as (base, _db, log):
        seed = seeded_story
        yield LiveServer(
            base, seed.operator_token, seed.gateway_tokens, seed.story, seed.events, log,
            seed.lossy_device, dict(seed.next_seq),
        )  # fmt: skip


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module", autouse=True)
def steady_network(request: pytest.FixtureRequest) -> Iterator[None]:
    """A browser module runs while no other test changes the host's addresses."""
    if request.node.get_closest_marker("browser") is None:
        yield
        return
    with host_network(changing=False):
        yield


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_path: str) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots/ with NPS_EDGE_SCREENSHOTS=1 (the committed ones come from that)."""
    if os.environ.get("NPS_EDGE_SCREENSHOTS") == "1":
        return ROOT / "docs" / "screenshots"
    return tmp_path_factory.mktemp("screenshots")


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def axe_findings(page: Page) -> list[str]:
    """axe-core's serious and critical WCAG A/AA and best-practice findings on the page
    (the page's context needs `bypass_csp=True`: axe is injected as a script)."""
    if not AXE.is_file():
        missing("node_modules/axe-core", "run `npm ci` at the repository root (make venv does)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {
            runOnly: ['wcag2a', 'wcag2aa', 'best-practice'], resultTypes: ['violations']});
          return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.id} (${v.impact}): ${v.nodes.length} × ${v.nodes[0].target.join(' ')}`);
        }"""
    )
    return list(result)


@contextmanager
def watched(page: Page, *, console: bool = False) -> Iterator[Page]:
    """`page`, closed at the end, failing the test on an uncaught script error and, with
    `console`, on a console error too (a failed request, a 404 or a 500, shows as one)."""
    errors: list[str] = []
    trail = _Trail(page)
    page.on("pageerror", lambda err: errors.append(str(err)))
    if console:
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    TRAILS.append(trail)
    try:
        yield page
    finally:
        TRAILS.remove(trail)
        page.close()
    assert not errors, f"errors in the page: {errors}\n{trail.report()}"


TRAILS: list[_Trail] = []  # the watched pages open now, for a failed test's report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed browser test's report says what each watched page was still waiting for."""
    report = yield
    if report.failed and call.when == "call":
        for i, trail in enumerate(TRAILS):
            report.sections.append((f"watched page {i + 1}", trail.report()))
    return report


class _Trail:
    """What a page asked the network for and said on its console, for a failure's report:
    a page that stops loading shows which request it waits on."""

    def __init__(self, page: Page) -> None:
        self.start = time.monotonic()
        self.pending: dict[Any, tuple[float, str]] = {}
        self.failed: list[str] = []
        self.console: list[str] = []
        page.on("request", self._request)
        page.on("requestfinished", self._finished)
        page.on("requestfailed", self._failed)
        page.on("console", lambda m: self.console.append(f"{self._at()} {m.type}: {m.text}"))

    def _at(self) -> str:
        return f"{time.monotonic() - self.start:7.2f}s"

    def _request(self, request: Any) -> None:
        self.pending[request] = (time.monotonic(), f"{request.method} {request.url}")

    def _finished(self, request: Any) -> None:
        self.pending.pop(request, None)

    def _failed(self, request: Any) -> None:
        self.pending.pop(request, None)
        self.failed.append(f"{self._at()} {request.method} {request.url}: {request.failure}")

    def report(self) -> str:
        now = time.monotonic()
        waiting = [f"  {now - t:6.2f}s {what}" for t, what in self.pending.values()]
        lines = ["requests still waiting:", *(waiting or ["  none"]), "requests failed:"]
        lines += [f"  {f}" for f in self.failed[-20:]] or ["  none"]
        lines += ["console:", *([f"  {c}" for c in self.console[-20:]] or ["  none"])]
        return "\n".join(lines)
