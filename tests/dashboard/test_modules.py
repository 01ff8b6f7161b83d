"""The dashboard's pure browser modules run under Node: same rules as the Python side."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from contract.nps import category
from server.api import bands
from server.dashboard import STATIC
from server.ingest import health
from tests.conftest import missing


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js, which `npm ci` needs anyway."""
    if not shutil.which("node"):
        missing("Node.js", "apt-get install -y nodejs")
    return "node"


def run_module(node: str, script: str) -> Any:
    """Evaluate `script` (an ES module body that prints JSON) with the static dir's modules."""
    out = subprocess.run(
        [node, "--input-type=module", "-e", script],
        cwd=STATIC,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


def test_categories_and_figures_match_the_server(node: str) -> None:
    got = run_module(
        node,
        """import { category, nps, interval, percent } from "./format.js";
        console.log(JSON.stringify({
          cats: [...Array(11).keys()].map(category),
          nps: [nps(21.36), nps(-7.25), nps(0), nps(null), nps(0.04)],
          interval: interval([-13.9, 28.6]), percent: percent(0.629)}));""",
    )
    assert got["cats"] == [category(s) for s in range(11)]
    assert got["nps"] == ["+21.4", "\u22127.3", "0.0", "\u2014", "0.0"]
    assert got["interval"] == "\u221213.9 to +28.6"
    assert got["percent"] == "63%"


def test_time_ranges_round_down_and_filters_make_urls(node: str) -> None:
    now = 1_795_000_000 + 1234.5
    got = run_module(
        node,
        f"""import {{ apiQuery, search }} from "./filters.js";
        console.log(JSON.stringify({{
          d30: apiQuery({{range: "30d", site: "store-3"}}, {now}),
          h24: apiQuery({{range: "24h", trigger: "walkup"}}, {now}),
          all: apiQuery({{range: "all", fw: "1.5.0"}}, {now}),
          url: search({{range: "30d", site: "store-3"}}, {{sort: "-nps"}}),
          url7: search({{range: "7d"}})}}));""",
    )
    assert got["d30"] == {"from": str(int((now - 30 * 86400) // 3600 * 3600)), "site": "store-3"}
    assert got["h24"] == {"from": str(int((now - 86400) // 60 * 60)), "trigger": "walkup"}
    assert got["all"] == {"fw": "1.5.0"}
    assert got["url"] == "?site=store-3&sort=-nps"  # the default range stays out of the URL
    assert got["url7"] == "?range=7d"


def test_html_escapes_every_value(node: str) -> None:
    got = run_module(
        node,
        """import { html, raw } from "./format.js";
        const evil = '<img src=x onerror="alert(1)">';
        console.log(JSON.stringify({
          plain: html`<td>${evil}</td>`.text,
          list: html`<ul>${[1, 2].map((i) => html`<li>${i}&${evil}</li>`)}</ul>`.text,
          trusted: html`<p>${raw("<b>ok</b>")}</p>`.text}));""",
    )
    assert "<img" not in got["plain"] and "&#60;img" in got["plain"]
    assert got["list"].count("<li>") == 2 and "<img" not in got["list"]
    assert got["trusted"] == "<p><b>ok</b></p>"


def test_login_goes_back_only_to_a_path_on_this_site(node: str) -> None:
    """The open redirect of issue 12: `/login?next=/\\evil.example` went off-site."""
    hostile = [
        "/\\evil.example", "//evil.example", "\\\\evil.example", "/\\/evil.example",
        "https://evil.example/", "javascript:alert(1)", "/\t/evil.example", "/\n/evil.example",
        "/\u0000/evil.example", " //evil.example", "evil.example", "", None, "/login",
        "/login?next=//evil.example", "/\u0085/evil.example",
    ]  # fmt: skip
    kept = ["/", "/fleet?site=store-1", "/alerts#top", "/fleet/nps-a1b2c3", "/%2F%2Fevil.example"]
    got = run_module(
        node,
        f"""import {{ safeNext }} from "./redirect.js";
        const origin = "http://127.0.0.1:8080";
        console.log(JSON.stringify({{
          hostile: {json.dumps(hostile)}.map((n) => safeNext(n, origin)),
          kept: {json.dumps(kept)}.map((n) => safeNext(n, origin))}}));""",
    )
    assert got["hostile"] == ["/"] * len(hostile)
    assert got["kept"] == kept


def test_roles_match_the_server(node: str) -> None:
    """The dashboard hides exactly what the server refuses (server/api/deps.py)."""
    got = run_module(
        node,
        """import { mayAct, mayAdminister, describe } from "./roles.js";
        const roles = ["viewer", "operator", "admin", "gateway"];
        console.log(JSON.stringify({
          act: roles.map(mayAct), admin: roles.map(mayAdminister),
          who: describe({name: "olly", role: "operator", site: "store-1"})}));""",
    )
    assert got["act"] == [False, True, True, False]
    assert got["admin"] == [False, False, True, False]
    assert got["who"] == "olly (operator, site store-1)"


def test_health_words_follow_the_server_bands(node: str) -> None:
    """The server's thresholds (`GET /api/v1/bands`) fed to the dashboard's band functions
    give the server's words at and around every boundary (server/ingest/health.py)."""
    table = bands.table().model_dump()
    rssi = [None, 0, -59.5, -60, -60.5, -61, -74, -75, -75.5, -76, -120]
    battery = [None, 4200, 3701, 3700, 3699.5, 3699, 3401, 3400, 3399, 0]
    got = run_module(
        node,
        f"""import {{ rssiWord, batteryWord, rssiCell, batteryCell, bandsNote, stateNote }}
          from "./pages/health.js";
        const bands = {json.dumps(table)};
        const text = (v) => String(v);
        console.log(JSON.stringify({{
          rssi: {json.dumps(rssi)}.map((v) => rssiWord(v, bands)),
          battery: {json.dumps(battery)}.map((v) => batteryWord(v, bands)),
          without: [rssiWord(-50, null), batteryWord(3000, null), text(rssiCell(-80, null))],
          cells: [text(rssiCell(-80, bands)), text(rssiCell(-60, bands)),
                  text(batteryCell(3500, bands)), text(batteryCell(3000, bands)),
                  text(batteryCell(3800, bands)), text(rssiCell(null, bands))],
          notes: [bandsNote(bands.rssi), bandsNote(bands.battery_mv),
                  ...bands.health.map(stateNote)]}}));""",
    )
    assert got["rssi"] == [health.rssi_band(v) if v is not None else "" for v in rssi]
    assert got["battery"] == [health.battery_band(v) if v is not None else "" for v in battery]
    assert got["rssi"][2:10] == ["strong", "strong", "ok", "ok", "ok", "ok", "weak", "weak"]
    assert got["battery"][2:9] == ["good", "good", "low", "low", "low", "low", "critical"]
    assert got["without"] == ["", "", "-80 dBm"]  # no table: the number, no word
    assert got["cells"] == [
        '-80 dBm <span class="warn">(weak)</span>',
        '-60 dBm <span class="muted">(strong)</span>',
        '3,500 mV <span class="warn">(low)</span>',
        '3,000 mV <span class="warn">(critical)</span>',
        '3,800 mV <span class="muted">(good)</span>',
        "\u2014",
    ]
    assert got["notes"] == [
        "strong \u2265 \u221260 dBm, ok \u2265 \u221275, weak below",
        "good \u2265 3,700 mV, low \u2265 3,400, critical below",
        "faulty: \u2265 10 errors, \u2265 4 boots started, \u2265 120 min offline"
        " or a critical battery",
        "degraded: any error, \u2265 2 boots started, \u2265 10 min offline, weak Wi-Fi"
        " or a low battery",
    ]
