"""E-mail through a real SMTP server (aiosmtpd): a case's changes to the people who want
them and may see its site, the daily digest (`nps-edge mail digest`), and `nps-edge user`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner, Result

from nps_edge.cli import app
from server.alerts.watch import escalate_once
from server.app import create_app
from server.db.engine import make_engine
from server.identity.tokens import create_token
from server.people.accounts import add_person, change_person
from server.realtime.bus import Bus
from server.settings import Settings
from tests.server.factory import feedback
from tests.server.smtp import SmtpSink, body

ORIGIN = {"Origin": "http://testserver"}
PASSWORD = "a long enough password"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def subscribe(engine: Engine, email: str, site: str | None, *, digest: bool = False) -> None:
    with Session(engine) as s:
        add_person(s, email=email, role="viewer", site=site, password=PASSWORD)
        change_person(s, email=email, notify=not digest, digest_=digest)


def test_case_changes_are_mailed_to_who_wants_them_and_may_see_the_site(
    db_url: str, engine: Engine, smtp: SmtpSink
) -> None:
    settings = Settings(db=db_url, smtp_host="127.0.0.1", smtp_port=smtp.port)
    subscribe(engine, "all@example.com", None)
    subscribe(engine, "one@example.com", "store-1")
    subscribe(engine, "two@example.com", "store-2")
    with Session(engine) as s:
        gw = create_token(s, name="gw-1", role="gateway", site="store-1")
        op = create_token(s, name="op", role="operator")
    with TestClient(create_app(settings, engine=engine)) as c:
        c.post(
            "/api/v1/ingest",
            json={"gateway": "gw-1", "events": [feedback(seq=1, score=1)]},
            headers={"Authorization": f"Bearer {gw}"},
        )
        smtp.wait_for(2)  # the new case: to all@ and one@
        [case] = c.get("/api/v1/alerts", headers={"Authorization": f"Bearer {op}"}).json()["items"]
        r = c.post(
            f"/api/v1/alerts/{case['id']}/close",
            json={"note": "called back", "action": "staff briefed"},
            headers={"Authorization": f"Bearer {op}"} | ORIGIN,
        )
        assert r.status_code == 200
        smtp.wait_for(4)
    assert (
        sorted(m["To"] for m in smtp.messages) == ["all@example.com"] * 2 + ["one@example.com"] * 2
    )
    closed = [m for m in smtp.to("one@example.com") if "closed" in m["Subject"]]
    assert len(closed) == 1
    text = body(closed[0])
    assert "Change: closed by op" in text and "Action taken: staff briefed" in text
    assert "Closing note: called back" in text


@pytest.mark.slow
def test_digest_and_user_commands(
    nps_edge_bin: str, tmp_path: Path, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first admin and the digest through the real command; the rest in-process."""
    db = f"sqlite:///{tmp_path / 'nps.db'}"
    env = {
        "NPS_EDGE_DB": db,
        "NPS_EDGE_SMTP_HOST": "127.0.0.1",
        "NPS_EDGE_SMTP_PORT": str(smtp.port),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str, stdin: str = "") -> Result:
        return runner.invoke(app, list(args), input=stdin)

    first = subprocess.run(
        [nps_edge_bin, "user", "add", "--email", "boss@example.com"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | env,
    )
    assert first.returncode == 0, first.stderr  # no terminal: a password is made, printed
    assert "(admin)" in first.stderr and len(first.stdout.strip()) >= 20
    second = run(
        "user",
        "add",
        "--email",
        "v@example.com",
        "--site",
        "store-1",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert second.exit_code == 0 and second.stdout == "", second.output
    assert "(viewer, site store-1)" in second.stderr
    short = run("user", "add", "--email", "s@example.com", "--password-stdin", stdin="short\n")
    assert short.exit_code == 2 and "at least 10" in short.stderr
    bad = run("user", "add", "--email", "not an e-mail", "--password-stdin", stdin=PASSWORD)
    assert bad.exit_code == 2 and "not an e-mail address" in bad.stderr
    taken = run("user", "add", "--email", "BOSS@example.com", "--password-stdin", stdin=PASSWORD)
    assert taken.exit_code == 2 and "already has an account" in taken.stderr
    listed = [json.loads(line) for line in run("user", "list", "--json").stdout.splitlines()]
    assert [(p["email"], p["role"], p["site"]) for p in listed] == [
        ("boss@example.com", "admin", None),
        ("v@example.com", "viewer", "store-1"),
    ]
    assert run("user", "disable", "--email", "v@example.com").exit_code == 0
    assert run("user", "disable", "--email", "nobody@example.com").exit_code == 2
    # The digest goes to the live people who asked for it (not to the disabled one).
    eng = make_engine(db)
    with Session(eng) as s:
        change_person(s, email="boss@example.com", digest_=True)
        change_person(s, email="v@example.com", digest_=True)
    eng.dispose()
    sent = subprocess.run(
        [nps_edge_bin, "mail", "digest"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | env,
    )
    assert sent.returncode == 0 and "sent 1 of 1 digests" in sent.stderr, sent.stderr
    [mail] = smtp.wait_for(1)
    assert mail["To"] == "boss@example.com" and "daily digest: 0 open, 0 overdue" in mail["Subject"]
    monkeypatch.delenv("NPS_EDGE_SMTP_HOST")
    off = run("mail", "digest")
    assert off.exit_code == 2 and "no SMTP server" in off.stderr


def test_an_overdue_case_is_escalated_once_by_mail(
    db_url: str, engine: Engine, smtp: SmtpSink
) -> None:
    settings = Settings(db=db_url, smtp_host="127.0.0.1", smtp_port=smtp.port)
    subscribe(engine, "lead@example.com", None)
    with Session(engine) as s:
        gw = create_token(s, name="gw-1", role="gateway", site="store-1")
    app = create_app(settings, engine=engine)
    with TestClient(app) as c:
        c.post(
            "/api/v1/ingest",
            json={"gateway": "gw-1", "events": [feedback(seq=1, score=1)]},
            headers={"Authorization": f"Bearer {gw}"},
        )  # answered at T0: long overdue
        smtp.wait_for(1)
        notifier = app.state.notifier
        assert escalate_once(engine, Bus(), notifier, settings) == 1
        assert escalate_once(engine, Bus(), notifier, settings) == 0
        [_, escalated] = smtp.wait_for(2)
    assert "overdue, escalated" in escalated["Subject"]
    assert "Change: overdue, escalated" in body(escalated)
