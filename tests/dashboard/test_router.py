"""The dashboard router alone: pages, our assets, chart.js from node_modules, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.dashboard import CHART_JS, node_modules, router
from tests.conftest import missing


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


@pytest.fixture
def chart_installed() -> None:
    if not (node_modules() / CHART_JS).is_file():
        missing("node_modules/chart.js", "run `npm ci` at the repository root (make venv does)")


@pytest.mark.parametrize(
    "path", ["/", "/drivers", "/fleet", "/fleet/nps-00a1b2", "/alerts", "/login"]
)
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
