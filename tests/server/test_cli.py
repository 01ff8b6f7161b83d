"""`nps-edge token create` and `nps-edge server` through the real command."""

from __future__ import annotations

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from nps_edge.processes import ProcessError, wait_until
from server.app import create_app
from server.db.engine import SchemaNotCurrent, make_engine
from server.settings import Settings
from tests.server.factory import feedback, telemetry
from tests.server.live import served, stream_ids


def _token(bin_: str, db: str, role: str) -> str:
    out = subprocess.run(
        [bin_, "token", "create", "--db", db, "--role", role, "--name", f"{role}-1",
         "--site", "store-1"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def test_token_create_prints_only_the_token(nps_edge_bin: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'var' / 'x.db'}"
    out = _token(nps_edge_bin, db, "gateway")
    assert re.fullmatch(r"npsg_[A-Za-z0-9_-]{40,}\n", out)
    bad = subprocess.run(
        [nps_edge_bin, "token", "create", "--db", db, "--role", "root", "--name", "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and bad.stdout == "" and "role" in bad.stderr


def test_every_server_command_has_help(nps_edge_bin: str) -> None:
    for args in (
        ["server"], ["token", "create"], ["token", "list"], ["token", "revoke"],
        ["device", "add"], ["device", "list"], ["device", "revoke"], ["db", "upgrade"],
    ):  # fmt: skip
        out = subprocess.run(
            [nps_edge_bin, *args, "--help"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and "--db" in out.stdout, args


def test_the_app_refuses_an_unmigrated_database_until_db_upgrade(
    nps_edge_bin: str, tmp_path: Path
) -> None:
    """Migrations run once, by `nps-edge server` or `nps-edge db upgrade`; the app checks."""
    db = f"sqlite:///{tmp_path / 'nps.db'}"
    with pytest.raises(SchemaNotCurrent, match="nps-edge db upgrade"):
        create_app(Settings(db=db))
    for _ in range(2):  # rerunning it changes nothing
        done = subprocess.run(
            [nps_edge_bin, "db", "upgrade", "--db", db], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    assert create_app(Settings(db=db)).state.engine is not None


@pytest.mark.slow
def test_server_command_serves_ingest_and_nps(nps_edge_bin: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'nps.db'}"
    with served(nps_edge_bin, db, tmp_path / "server.log") as srv:
        r = httpx.post(
            f"{srv.base}/api/v1/ingest",
            json={"gateway": "gw-1", "events": [feedback(seq=1, score=10)]},
            headers={"Authorization": f"Bearer {srv.gateway}"},
        )
        assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
        nps = httpx.get(
            f"{srv.base}/api/v1/nps", headers={"Authorization": f"Bearer {srv.operator}"}
        ).json()
        assert (nps["n"], nps["nps"]) == (1, 100.0)


def _send_at_once(base: str, gw: str, batches: list[list[dict[str, Any]]]) -> list[dict[str, int]]:
    """Each batch from its own sender, all released at the same moment."""
    start = threading.Barrier(len(batches))

    def send(batch: list[dict[str, Any]]) -> dict[str, int]:
        headers = {"Authorization": f"Bearer {gw}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            start.wait()
            r = client.post("/api/v1/ingest", json={"gateway": "gw-1", "events": batch})
            assert r.status_code == 200, r.text
            return r.json()

    with ThreadPoolExecutor(len(batches)) as pool:
        return list(pool.map(send, batches))


@pytest.mark.slow
@pytest.mark.postgres
def test_same_batch_to_several_workers_at_once_is_stored_once(
    nps_edge_bin: str, postgres_url: str, tmp_path: Path
) -> None:
    batch = [feedback(seq=i, score=i % 11) for i in range(1, 301)]
    batch += [feedback("nps-bbb222", i, i % 7) for i in range(1, 201)]
    senders = 6
    with served(nps_edge_bin, postgres_url, tmp_path / "server.log", 3) as srv:
        answers = _send_at_once(srv.base, srv.gateway, [batch] * senders)
    assert sum(a["accepted"] for a in answers) == len(batch)
    assert sum(a["duplicates"] for a in answers) == len(batch) * (senders - 1)
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM feedback").one()
        shown = conn.exec_driver_sql("SELECT sum(shown) FROM rollup_fleet_day").scalar_one()
        received = conn.exec_driver_sql("SELECT sum(received) FROM device").scalar_one()
    engine.dispose()
    assert tuple(stored) == (len(batch), len(batch))
    assert shown == received == len(batch)


@pytest.mark.slow
@pytest.mark.postgres
def test_several_workers_open_one_threshold_alert_per_site_and_device(
    nps_edge_bin: str, postgres_url: str, tmp_path: Path
) -> None:
    """Six gateways of one site at once, each batch taking the site's NPS under its
    threshold and reporting the same device's battery low: one alert of each."""
    batches = [
        [feedback(f"nps-{g}{d:05d}", 1, score=0) for d in range(500)]
        + [telemetry("nps-bat001", 10 + g, battery_mv=3000)]
        for g in range(6)
    ]
    with served(nps_edge_bin, postgres_url, tmp_path / "server.log", 3) as srv:
        answers = _send_at_once(srv.base, srv.gateway, batches)
    assert [a["accepted"] for a in answers] == [501] * 6
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        opened = conn.exec_driver_sql(
            "SELECT kind, count(*) FROM alert WHERE kind <> 'detractor' GROUP BY kind"
        ).all()
    engine.dispose()
    assert sorted(opened) == [("battery", 1), ("site_nps", 1)]


@pytest.mark.slow
def test_the_live_stream_shows_what_every_worker_stores(nps_edge_bin: str, tmp_path: Path) -> None:
    """A dashboard's stream is held by one of two workers; the batches go to whichever
    worker accepts them (`Connection: close`). The stream shows every one."""
    db = f"sqlite:///{tmp_path / 'nps.db'}"
    sent = [feedback(f"nps-s{i:05d}", 1, score=9) for i in range(24)]
    with (
        served(nps_edge_bin, db, tmp_path / "server.log", 2) as srv,
        stream_ids(srv.base, srv.operator, len(sent)) as seen,
    ):
        for event in sent:  # one batch each, one connection each, in turn
            r = httpx.post(
                f"{srv.base}/api/v1/ingest",
                json={"gateway": "gw-1", "events": [event]},
                headers={"Authorization": f"Bearer {srv.gateway}"},
            )
            assert r.json()["accepted"] == 1
        try:
            wait_until(lambda: len(seen) >= len(sent), timeout=10, what="every event")
        except ProcessError:
            pass  # the assertion below says which are missing
    assert sorted(seen) == sorted(e["id"] for e in sent)
