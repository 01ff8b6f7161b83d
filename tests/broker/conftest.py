"""Fixtures of the site-broker tests (helpers in site.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.db.engine import make_engine, upgrade
from tests.broker.site import Site, needs_mosquitto


@pytest.fixture
def site_root() -> Iterator[Path]:
    """A folder the `mosquitto` user may enter (0711 under /tmp), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="nps-broker-test-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def site(site_root: Path) -> Iterator[Site]:
    """Site `site-x` with a migrated registry and devices dev-a and dev-b (broker not started)."""
    needs_mosquitto()
    db = f"sqlite:///{site_root / 'server.db'}"
    engine = make_engine(db)
    upgrade(engine)
    engine.dispose()
    s = Site(site_root, db=db)
    s.add("dev-a")
    s.add("dev-b")
    yield s
    s.close()
