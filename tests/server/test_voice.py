"""The phone page (/v/{device}/{seq}/{code}): the link made the PROGRAMME.md way
verifies, the comment joins its answer, alert and export, and the attacks are refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nps_edge.cli import app as cli_app
from server.settings import Settings
from server.voice import keys
from tests.server.factory import Api, feedback

DEVICE, OTHER = "nps-aaa111", "nps-bbb222"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        db=db_url, site_nps_last_n=5, site_nps_threshold=-50.0,
        voice_secret=str(tmp_path / "voice.secret"), voice_max_requests=12,
    )  # fmt: skip


def key_of(settings: Settings, device: str) -> bytes:
    """The device key as a device holds it (provisioned base64), decoded."""
    assert settings.voice_secret is not None
    secret = keys.load_secret(Path(settings.voice_secret))
    return base64.b64decode(keys.device_key_b64(secret, device))


def code_of(key: bytes, device: str, seq: int) -> str:
    """PROGRAMME.md's code, computed here without the server's code."""
    mac = hmac.new(key, f"{device}:{seq}".encode(), hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def link(settings: Settings, device: str = DEVICE, seq: int = 1) -> str:
    return f"/v/{device}/{seq}/{code_of(key_of(settings, device), device, seq)}"


def say(api: Api, path: str, comment: str = "Staff were rude", **extra: str) -> int:
    r = api.client.post(path, data={"comment": comment, **extra})
    return r.status_code


def test_a_link_made_as_the_device_does_verifies_and_the_comment_joins_everything(
    api: Api, settings: Settings
) -> None:
    now = time.time()
    api.ingest([feedback(DEVICE, 1, 2, ts=now - 60, reason="staff")])
    page = api.client.get(link(settings))
    assert page.status_code == 200
    assert 'name="comment"' in page.text and "<script" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "same-origin"
    assert (
        say(api, link(settings), "Staff were rude and I waited 20 minutes", contact="a@b.c") == 200
    )

    [item] = api.get("/api/v1/feedback")["items"]
    assert (item["comment"], item["contact"]) == (
        "Staff were rude and I waited 20 minutes",
        "a@b.c",
    )
    [alert] = api.get("/api/v1/alerts")["items"]
    [note] = alert["comments"]
    assert note["author"] == "customer (phone)" and "waited 20 minutes" in note["text"]
    export = api.client.get(
        "/api/v1/export", headers={"Authorization": f"Bearer {api.tokens['operator']}"}
    ).text
    assert "comment,contact" in export.splitlines()[0] and "waited 20 minutes" in export
    themes = {t["theme"]: t for t in api.get("/api/v1/themes")["themes"]}
    assert themes["staff"]["n"] == 1 and themes["staff"]["comments"] == 1
    assert themes["waiting"]["n"] == 1 and themes["staff"]["sentiment_label"] == "negative"


def test_a_comment_before_its_answer_is_held_then_joined_when_it_lands(
    api: Api, settings: Settings
) -> None:
    assert say(api, link(settings, seq=5), "The machine was broken") == 200
    assert api.get("/api/v1/alerts")["items"] == []
    api.ingest([feedback(DEVICE, 5, 1, ts=time.time() - 30)])
    [item] = api.get("/api/v1/feedback")["items"]
    assert item["comment"] == "The machine was broken"
    [alert] = api.get("/api/v1/alerts")["items"]
    assert [c["text"] for c in alert["comments"]] == ["The machine was broken"]
    metrics = api.client.get("/metrics").text
    assert 'nps_edge_voice_comments_total{result="joined"} 1.0' in metrics


def test_a_held_comment_whose_answer_lands_too_old_is_dropped(api: Api, settings: Settings) -> None:
    assert say(api, link(settings, seq=7), "late") == 200
    api.ingest([feedback(DEVICE, 7, 1, ts=time.time() - settings.voice_ttl_s - 3600)])
    assert api.get("/api/v1/feedback")["items"][0]["comment"] is None
    assert 'nps_edge_voice_comments_total{result="dropped"} 1.0' in api.client.get("/metrics").text


def test_wrong_code_is_404(api: Api, settings: Settings) -> None:
    good = link(settings)
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert api.client.get(wrong).status_code == 404
    assert say(api, wrong) == 404
    assert api.client.get(f"/v/{DEVICE}/1/short").status_code == 404
    assert 'nps_edge_voice_refused_total{reason="bad_code"} 3.0' in api.client.get("/metrics").text


def test_another_devices_code_is_404(api: Api, settings: Settings) -> None:
    api.ingest([feedback(DEVICE, 1, 2, ts=time.time()), feedback(OTHER, 1, 2, ts=time.time())])
    theirs = code_of(key_of(settings, OTHER), OTHER, 1)
    assert say(api, f"/v/{DEVICE}/1/{theirs}") == 404
    assert say(api, f"/v/{OTHER}/2/{theirs}") == 404  # another answer of the same device


def test_replay_second_post_is_409(api: Api, settings: Settings) -> None:
    api.ingest([feedback(DEVICE, 1, 2, ts=time.time())])
    assert say(api, link(settings), "first") == 200
    assert say(api, link(settings), "second") == 409
    assert api.client.get(link(settings)).status_code == 409
    [alert] = api.get("/api/v1/alerts")["items"]
    assert [c["text"] for c in alert["comments"]] == ["first"]


def test_expired_link_is_410(api: Api, settings: Settings) -> None:
    api.ingest([feedback(DEVICE, 1, 2, ts=time.time() - settings.voice_ttl_s - 3600)])
    assert api.client.get(link(settings)).status_code == 410
    assert say(api, link(settings)) == 410
    assert api.get("/api/v1/feedback")["items"][0]["comment"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"comment=a%00b", 422),  # NUL
        (b"comment=a%01b", 422),  # control character
        (b"comment=%ED%A0%80", 400),  # a UTF-8-encoded lone surrogate
        (b"comment=%FF%FE", 400),  # not UTF-8
        ("comment=caf\u00e9".encode(), 400),  # raw non-ASCII in a urlencoded body
        (b"comment=a&comment=b", 400),  # a field twice
        (b"comment=++", 422),  # empty once stripped
        (b"contact=x", 422),  # no comment
    ],
)
def test_hostile_bytes_are_refused_and_nothing_is_stored(
    api: Api, settings: Settings, body: bytes, status: int
) -> None:
    api.ingest([feedback(DEVICE, 1, 2, ts=time.time())])
    r = api.client.post(
        link(settings), content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert r.status_code == status
    assert api.get("/api/v1/feedback")["items"][0]["comment"] is None
    assert say(api, link(settings), "now a good one") == 200  # the link still works once


def test_oversize_comment_contact_and_body_are_refused(api: Api, settings: Settings) -> None:
    assert say(api, link(settings), "x" * 1001) == 422
    assert say(api, link(settings), "ok", contact="y" * 201) == 422
    r = api.client.post(link(settings), content=b"comment=" + b"z" * 20_000)
    assert r.status_code == 413
    assert say(api, link(settings), "x" * 1000, contact="y" * 200) == 200


def test_a_flood_from_one_address_is_throttled(api: Api, settings: Settings) -> None:
    wrong = f"/v/{DEVICE}/1/AAAAAAAAAAA"
    statuses = [api.client.get(wrong).status_code for _ in range(settings.voice_max_requests)]
    assert set(statuses) == {404}
    r = api.client.get(link(settings))  # even a good link waits now
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert 'nps_edge_voice_refused_total{reason="throttled"} 1.0' in api.client.get("/metrics").text


def test_a_post_from_another_sites_page_is_refused(api: Api, settings: Settings) -> None:
    r = api.client.post(link(settings), data={"comment": "x"}, headers={"Origin": "https://evil"})
    assert r.status_code == 403


def test_voice_key_command_prints_the_key_the_server_verifies(
    settings: Settings, app: FastAPI
) -> None:
    run = CliRunner().invoke(
        cli_app, ["device", "voice-key", "--db", settings.db, "--id", DEVICE],
        env={"NPS_EDGE_VOICE_SECRET": settings.voice_secret or ""},
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    key = base64.b64decode(run.stdout.strip())
    assert len(key) == 32 and key == key_of(settings, DEVICE)
    assert oct(Path(settings.voice_secret or "").stat().st_mode & 0o777) == "0o600"
    with TestClient(app) as client:
        assert client.get(f"/v/{DEVICE}/3/{code_of(key, DEVICE, 3)}").status_code == 200
    bad = CliRunner().invoke(cli_app, ["device", "voice-key", "--id", "Bad Id"])
    assert bad.exit_code == 2


def test_a_live_item_has_no_comment_yet() -> None:
    """The stream shows a row as ingest stored it: its phone comment comes later (found
    by the multi-worker stream test: the new fields made every live item a KeyError)."""
    from server.realtime.bus import ITEM_FIELDS, feedback_item

    row = {k: "x" for k in ITEM_FIELDS if k not in ("ts", "comment", "contact")} | {"t": 1.0}
    item = feedback_item(row)
    assert (item["ts"], item["comment"], item["contact"]) == (1.0, None, None)
