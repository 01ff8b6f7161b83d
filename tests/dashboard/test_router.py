"""The dashboard's pages and assets in the server app: login gate, our modules, chart.js."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.api.deps import COOKIE
from server.app import create_app
from server.dashboard import CHART_JS, node_modules
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token, find_token, open_session
from server.settings import Settings
from tests.conftest import missing


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """The real app on a temp SQLite file (started once), and an operator's session id."""
    db = tmp_path_factory.mktemp("dashboard-router") / "x.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)  # the app does not migrate
    app = create_app(Settings(db=f"sqlite:///{db}"), engine=engine)
    with Session(app.state.engine) as session:
        token = find_token(session, token=create_token(session, name="ops", role="operator"))
        assert token is not None
        sid = open_session(session, token=token, ttl_s=600, now=time.time())
    with TestClient(app, follow_redirects=False) as client:
        yield client, sid


@pytest.fixture
def client(app_client: tuple[TestClient, str]) -> TestClient:
    """The app's client with a logged-in operator's cookie (reset for every test)."""
    client, sid = app_client
    client.cookies.clear()
    client.cookies.set(COOKIE, sid)
    return client


@pytest.fixture
def chart_installed() -> None:
    if not (node_modules() / CHART_JS).is_file():
        missing("node_modules/chart.js", "run `npm ci` at the repository root (make venv does)")


PAGES = ["/", "/drivers", "/fleet", "/fleet/nps-00a1b2", "/alerts", "/registry"]


@pytest.mark.parametrize("path", [*PAGES, "/login"])
def test_every_page_is_the_shell_with_a_strict_csp(
    client: TestClient, chart_installed: None, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/app.js">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_assets_are_served_and_nothing_outside_static(
    client: TestClient, chart_installed: None
) -> None:
    assert "export async function api" in client.get("/ui/api.js").text
    assert client.get("/ui/pages/overview.js").status_code == 200
    assert client.get("/ui/style.css").headers["content-type"].startswith("text/css")
    chart = client.get("/ui/vendor/chart.js")
    assert chart.status_code == 200 and "Chart" in chart.text[:5000]
    assert client.get("/ui/../__init__.py").status_code == 404
    assert client.get("/ui/%2e%2e/__init__.py").status_code == 404
    assert client.get("/ui/nope.js").status_code == 404


@pytest.mark.parametrize("path", PAGES)
def test_no_page_without_a_session(client: TestClient, path: str) -> None:
    client.cookies.clear()
    response = client.get(f"{path}?site=store-1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=" + f"{path}?site=store-1".replace(
        "/", "%2F"
    ).replace("?", "%3F").replace("=", "%3D")
    client.cookies.set(COOKIE, "forged-or-expired")
    assert client.get(path).status_code == 303


def test_missing_node_modules_gives_a_page_saying_how_to_fix_it(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPS_EDGE_NODE_MODULES", str(tmp_path / "node_modules"))
    page = client.get("/")
    assert page.status_code == 503
    assert "npm ci" in page.text and str(tmp_path) in page.text
    assert client.get("/ui/vendor/chart.js").status_code == 503


def test_every_module_the_shell_imports_exists(client: TestClient) -> None:
    """A broken import would leave a blank page: check each `import ... from "./x.js"`."""
    import re

    from server.dashboard import STATIC

    for module in STATIC.rglob("*.js"):
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports {target}"


def test_the_shell_preloads_every_module(client: TestClient, chart_installed: None) -> None:
    """Without a preload each import waits for the one before it (a request waterfall)."""
    from server.dashboard import STATIC

    shell = client.get("/").text
    for module in STATIC.rglob("*.js"):
        name = module.relative_to(STATIC).as_posix()
        if name != "app.js":
            assert f'<link rel="modulepreload" href="/ui/{name}">' in shell, name
