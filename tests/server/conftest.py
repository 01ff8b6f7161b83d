"""Server test fixtures: the same API tests on SQLite (temp file) and on PostgreSQL."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect
from sqlmodel import Session

from server.app import create_app
from server.db.engine import make_engine, upgrade
from server.identity.tokens import create_token
from server.settings import Settings
from tests.conftest import POSTGRES_URL, missing
from tests.server.factory import Api


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "nps.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_shared() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; each test starts it empty."""
    import psycopg

    admin = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"nps_srv_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        missing("PostgreSQL", f"start it on 127.0.0.1:5432 or set NPS_EDGE_TEST_POSTGRES ({err})")
    url = f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def emptied(url: str) -> str:
    """`url`'s database with every table emptied (migrated tables kept)."""
    engine = make_engine(url)
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as conn:  # DELETE: much faster than TRUNCATE on tiny tables
        for table in tables:
            conn.exec_driver_sql(f'DELETE FROM "{table}"')
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite (a temp file) and on PostgreSQL (an emptied database)."""
    if request.param == "sqlite":
        path = tmp_path / "nps.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return emptied(request.getfixturevalue("postgres_shared"))


@pytest.fixture
def migrated_sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite file, `nps.db` in the test's temp dir: the app does not migrate."""
    path = tmp_path / "nps.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nps.db'}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        db=db_url, site_nps_last_n=5, site_nps_threshold=-50.0,
        command_key=str(tmp_path / "command.key"),  # not the working directory's (PostgreSQL)
    )  # fmt: skip


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
    """A gateway token (gateway `gw-1` of site `store-1`, the factory's defaults), an operator's."""
    with Session(engine) as session:
        return {
            "gateway": create_token(session, name="gw-1", role="gateway", site="store-1"),
            "operator": create_token(session, name="alice", role="operator"),
        }


@pytest.fixture
def people(engine: Engine) -> dict[str, str]:
    """A token of each role, fleet-wide, plus an operator of store-1 and a viewer of store-2."""
    with Session(engine) as s:
        return {
            "viewer": create_token(s, name="vera", role="viewer"),
            "operator": create_token(s, name="otto", role="operator"),
            "admin": create_token(s, name="ada", role="admin"),
            "op-store-1": create_token(s, name="olly", role="operator", site="store-1"),
            "viewer-store-2": create_token(s, name="val", role="viewer", site="store-2"),
        }


@pytest.fixture
def api(app: FastAPI, engine: Engine, tokens: dict[str, str]) -> Iterator[Api]:
    def mint(gateway: str, site: str) -> str:
        with Session(engine) as session:
            return create_token(session, name=gateway, role="gateway", site=site)

    with TestClient(app) as client:
        yield Api(client, tokens, mint)
