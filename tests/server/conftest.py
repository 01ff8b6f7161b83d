"""Server test fixtures: the same API tests on SQLite (temp file) and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from server.app import create_app
from server.db import make_engine
from server.settings import Settings
from server.tokens import create_token
from tests.server.factory import Api


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nps.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nps.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(db=db_url, site_nps_last_n=5, site_nps_threshold=-50.0)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.db)
    yield eng
    eng.dispose()


@pytest.fixture
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings, engine=engine)


@pytest.fixture
def tokens(app: FastAPI, engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {
            "gateway": create_token(session, name="gw-test", role="gateway"),
            "operator": create_token(session, name="alice", role="operator"),
        }


@pytest.fixture
def api(app: FastAPI, tokens: dict[str, str]) -> Iterator[Api]:
    with TestClient(app) as client:
        yield Api(client, tokens)
