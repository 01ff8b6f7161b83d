"""The operator dashboard: pages and assets served by the server itself (no CDN).

Every page is the same HTML shell (`static/index.html`); the browser-side
modules in `static/` pick the view from the path and load their data from
the API. A page asked for without a valid session cookie is redirected to
`/login?next=...` here, and the API refuses data without one, so neither a
page nor data is shown without a person's token (viewer, operator or admin;
what each may do is decided by the API). Charts come from chart.js, installed from
npm by the project's install step (`npm ci`, run by `make venv`), which copies its
one file into `vendor/` beside `static/` (git-ignored, shipped in the wheel as
package data; not in `static/`, which holds only our own modules). It is served
from there, so an installed server needs no repository beside it; a missing copy
gets a page saying how to fix it.
"""

from __future__ import annotations

import functools
import html
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from server.api.deps import COOKIE, SessionDep
from server.identity.tokens import find_session

STATIC = Path(__file__).resolve().parent / "static"
REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_JS = Path("chart.js") / "dist" / "chart.umd.min.js"  # inside node_modules
VENDORED_CHART_JS = STATIC.parent / "vendor" / CHART_JS.name  # the copy `make venv` puts here
PAGES = (
    "/", "/drivers", "/fleet", "/fleet/{device}", "/alerts", "/registry", "/releases", "/people",
)  # fmt: skip

# The shell runs only our own scripts; chart.js styles canvases inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
# What our asset names are made of; anything else (a NUL made open() raise) is a 404.
ASSET_PATH = re.compile(r"[A-Za-z0-9_.-]{1,64}(?:/[A-Za-z0-9_.-]{1,64}){0,7}", re.ASCII)


def node_modules() -> Path:
    """`NPS_EDGE_NODE_MODULES`, else `node_modules` at the repository root (where npm
    installs; the server serves the copy in `vendor/` unless the variable is set)."""
    configured = os.environ.get("NPS_EDGE_NODE_MODULES")
    return Path(configured) if configured else REPO_ROOT / "node_modules"


def chart_js_file() -> Path:
    """The chart library served: from `NPS_EDGE_NODE_MODULES` when set, else the copy
    in the package (`vendor/`)."""
    if os.environ.get("NPS_EDGE_NODE_MODULES"):
        return node_modules() / CHART_JS
    return VENDORED_CHART_JS


def _missing_assets_page(path: Path) -> HTMLResponse:
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>nps-edge: dashboard assets missing</title></head><body>
<h1>The dashboard's browser assets are not installed</h1>
<p>The server looked for <code>{html.escape(str(path))}</code> and did not find it.</p>
<p>Install them with <code>make venv</code> in the source checkout (it runs
<code>npm ci</code> and copies <code>{CHART_JS}</code> into
<code>{html.escape(str(VENDORED_CHART_JS.parent))}</code>), or point
<code>NPS_EDGE_NODE_MODULES</code> at a
<code>node_modules</code> folder that has <code>chart.js</code>. The API under
<code>/api/v1</code> works without them.</p></body></html>"""
    return HTMLResponse(body, status_code=503, headers={"Cache-Control": "no-store"})


@functools.cache
def shell_html() -> str:
    """index.html with a modulepreload link per module: one round of requests, not a chain."""
    links = "".join(
        f'  <link rel="modulepreload" href="/ui/{path.relative_to(STATIC).as_posix()}">\n'
        for path in sorted(STATIC.rglob("*.js"))
        if path.name != "app.js"
    )
    marker = "  <!-- modulepreload: the server lists every module here, so they load at once -->\n"
    return (STATIC / "index.html").read_text(encoding="utf-8").replace(marker, links)


def _shell() -> Response:
    chart = chart_js_file()
    if not chart.is_file():
        return _missing_assets_page(chart)
    return HTMLResponse(shell_html(), headers=SECURITY_HEADERS)


def _page(request: Request, session: SessionDep) -> Response:
    """A dashboard page: the shell for a logged-in person, else the way to log in."""
    sid = request.cookies.get(COOKIE)
    if not sid or find_session(session, sid=sid, now=time.time()) is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return _shell()


for _path in PAGES:
    router.add_api_route(_path, _page, methods=["GET"], response_class=HTMLResponse)


@router.get("/login", response_class=HTMLResponse)
def login_page() -> Response:
    return _shell()


@router.get("/ui/vendor/chart.js")
def chart_js() -> Response:
    chart = chart_js_file()
    if not chart.is_file():
        raise HTTPException(503, f"chart.js is not installed at {chart}: run `make venv`")
    return FileResponse(chart, media_type="text/javascript", headers=SECURITY_HEADERS)


@router.get("/ui/{path:path}")
def asset(path: str) -> Response:
    """Our own modules and styles; nothing outside `static/`. A path that could not
    name one (NUL, control bytes, `..`, too long) is refused before touching the disk."""
    if not ASSET_PATH.fullmatch(path) or ".." in path.split("/"):
        raise HTTPException(404, f"no dashboard asset {path[:80]!r}")
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file() or target.name == "index.html":
        raise HTTPException(404, f"no dashboard asset {path!r}")
    return FileResponse(target, headers=SECURITY_HEADERS)
