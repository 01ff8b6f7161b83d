"""Issue 14, releases and staged rollout: `release create` checks the signature and every
hash, gateways fetch only their site's release files, a rollout widens step by step and
its NPS canary halts it when the cohort's scores drop (planted data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from sqlmodel import Session
from typer.testing import CliRunner

from nps_edge.cli import app as cli
from server.fleet import keys, rollout
from server.fleet.releases import ReleaseError, create
from server.models import Alert, Rollout
from server.settings import Settings
from tests.server.factory import T0, Api, feedback, telemetry
from tests.server.fleet_kit import bundle, open_cmd

RELEASE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RELEASE_PUB = keys.public_b64(RELEASE_KEY)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(db=db_url, command_key=str(tmp_path / "command.key"))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _command_key(settings: Settings) -> Ed25519PrivateKey:
    assert settings.command_key is not None
    return keys.load_or_create(Path(settings.command_key))


def _release_rolling(
    engine: Engine, key: Any, tmp_path: Path, target: rollout.Target, step_answers: int,
    now: float | None = None,
) -> None:  # fmt: skip
    """Release 1.5.0 stored and its rollout started on `target`."""
    with Session(engine) as session:
        create(session, bundle=bundle(tmp_path / "b", RELEASE_KEY), release_pub=RELEASE_PUB)
        rollout.start(
            session, key=key, version="1.5.0", target=target, step_answers=step_answers,
            by="t", now=now,
        )  # fmt: skip
        session.commit()


def _fleet(api: Api, n: int = 20, site: str = "store-1") -> list[str]:
    devices = [f"nps-{site[-1]}{i:05d}" for i in range(n)]
    api.ingest(
        [feedback(d, 1, ts=T0 - 7200, site=site) for d in devices],
        site=site,
        gateway=f"gw-{site[-1]}",
    )
    return devices


def test_release_create_checks_signature_and_every_file(engine: Engine, tmp_path: Path) -> None:
    good = bundle(tmp_path / "good", RELEASE_KEY)
    with Session(engine) as session:
        with pytest.raises(ReleaseError, match="signature"):
            create(session, bundle=good, release_pub=keys.public_b64(Ed25519PrivateKey.generate()))
        tampered = bundle(tmp_path / "tampered", RELEASE_KEY, version="1.5.1")
        (tampered / "main.py").write_bytes(b"print('owned')\n")
        with pytest.raises(ReleaseError, match="main.py"):
            create(session, bundle=tampered, release_pub=RELEASE_PUB)
        forged = bundle(tmp_path / "forged", RELEASE_KEY, version="1.5.2")
        (forged / "manifest.json").write_bytes((forged / "manifest.json").read_bytes() + b" ")
        with pytest.raises(ReleaseError, match="signature"):
            create(session, bundle=forged, release_pub=RELEASE_PUB)
        hostile = bundle(
            tmp_path / "hostile", RELEASE_KEY, version="1.5.3", files={"../escape.py": b"x"}
        )
        with pytest.raises(ReleaseError, match="not allowed"):
            create(session, bundle=hostile, release_pub=RELEASE_PUB)
        release = create(session, bundle=good, release_pub=RELEASE_PUB)
        session.commit()
        assert (release.version, release.files) == ("1.5.0", 2)
        with pytest.raises(ReleaseError, match="exists"):
            create(session, bundle=good, release_pub=RELEASE_PUB)


def test_cli_key_create_and_rollout(
    api: Api, settings: Settings, tmp_path: Path, db_url: str
) -> None:
    devices = _fleet(api, 4)
    runner = CliRunner()
    key_args = ["--db", db_url, "--command-key", str(settings.command_key)]
    pub = runner.invoke(cli, ["fleet", "key", *key_args])
    assert pub.exit_code == 0, pub.output
    assert pub.stdout.strip() == keys.public_b64(_command_key(settings))
    bad = runner.invoke(
        cli,
        [
            "release",
            "create",
            "--db",
            db_url,
            "--bundle",
            str(bundle(tmp_path / "b", RELEASE_KEY)),
            "--release-pub",
            keys.public_b64(Ed25519PrivateKey.generate()),
        ],
    )
    assert bad.exit_code == 2 and "signature" in bad.stderr
    made = runner.invoke(
        cli,
        [
            "release",
            "create",
            "--db",
            db_url,
            "--bundle",
            str(tmp_path / "b"),
            "--release-pub",
            RELEASE_PUB,
        ],
    )
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["version"] == "1.5.0"
    out = runner.invoke(
        cli,
        [
            "release",
            "rollout",
            "--version",
            "1.5.0",
            "--devices",
            ",".join(devices[:2]),
            "--step-answers",
            "5",
            *key_args,
        ],
    )
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["steps"] == [1, 2]
    again = runner.invoke(cli, ["release", "rollout", "--version", "1.5.0", *key_args])
    assert again.exit_code == 2 and "one rollout at a time" in again.stderr
    listed = api.get("/api/v1/releases")
    assert listed[0]["state"] == "rolling" and len(listed[0]["rollouts"][0]["cohort"]) == 1


def test_gateway_fetches_files_of_its_sites_release_only(
    api: Api, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    devices = _fleet(api, 2)
    other = _fleet(api, 2, site="store-2")
    with Session(engine) as session:
        create(session, bundle=bundle(tmp_path / "b", RELEASE_KEY), release_pub=RELEASE_PUB)
        session.commit()
    gw1, gw2 = _auth(api.tokens["gateway"]), _auth(api.gateway_token("gw-2", "store-2"))
    url = "/api/v1/gateway/releases/1.5.0/main.py"
    assert api.client.get(url, headers=gw1).status_code == 404  # no device told to install it
    with Session(engine) as session:
        rollout.start(
            session,
            key=_command_key(settings),
            version="1.5.0",
            target=rollout.Target(devices=(devices[0],)),
            step_answers=5,
            by="t",
        )
        session.commit()
    got = api.client.get(url, headers=gw1)
    assert got.status_code == 200 and got.content == b"print('hi')\n"
    manifest = api.client.get("/api/v1/gateway/releases/1.5.0/manifest.json", headers=gw1)
    sig = api.client.get("/api/v1/gateway/releases/1.5.0/manifest.sig", headers=gw1)
    pub = keys.public_key(RELEASE_PUB)
    assert keys.verifies(pub, manifest.content, sig.text)
    # Another site's gateway, people's tokens, hostile paths.
    assert other and api.client.get(url, headers=gw2).status_code == 404
    assert api.client.get(url, headers=_auth(api.tokens["operator"])).status_code == 401
    assert api.client.get(url).status_code == 401
    for path in (
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "lib%2F..%2Fmain.py",
        ".hidden",
        "lib/",
        "nothere.py",
        "%00",
        "a" * 300,
    ):
        r = api.client.get(f"/api/v1/gateway/releases/1.5.0/{path}", headers=gw1)
        assert r.status_code in (400, 404, 422), (path, r.status_code)
    for version in ("..", "1.5.0%2F..", "x" * 40):
        r = api.client.get(f"/api/v1/gateway/releases/{version}/main.py", headers=gw1)
        assert r.status_code in (404, 422), (version, r.status_code)

    # The update command points at this gateway's file server and names the manifest's hash.
    cmds = api.client.get(
        "/api/v1/gateway/commands", params={"fw_url": "http://10.0.0.2:8070"}, headers=gw1
    ).json()["commands"]
    cmd = open_cmd(cmds[0]["payload"], keys.public_b64(_command_key(settings)))
    assert cmd["kind"] == "update" and cmd["device"] == devices[0]
    assert cmd["release"]["url"] == "http://10.0.0.2:8070/fw/1.5.0/"
    import hashlib

    assert cmd["release"]["manifest_sha256"] == hashlib.sha256(manifest.content).hexdigest()


def test_update_waits_for_the_gateways_address(
    api: Api, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    devices = _fleet(api, 1)
    api.client.post(f"/api/v1/devices/{devices[0]}/reboot", headers=_auth(api.tokens["operator"]))
    _release_rolling(engine, _command_key(settings), tmp_path, rollout.Target(), 5)
    gw = _auth(api.tokens["gateway"])
    first = api.client.get("/api/v1/gateway/commands", headers=gw).json()["commands"]
    assert [c["n"] for c in first] == [1]  # the reboot; the update needs fw_url
    later = api.client.get(
        "/api/v1/gateway/commands",
        params={"after": first[0]["id"], "fw_url": "http://gw:8070"},
        headers=gw,
    ).json()["commands"]
    assert [c["n"] for c in later] == [2]
    # Halted before its gateway fetched the update: withheld.
    with Session(engine) as session:
        rollout.halt(session, version="1.5.0", reason="by hand", rolled_back=False, now=T0)
        session.commit()
    again = api.client.get(
        "/api/v1/gateway/commands", params={"fw_url": "http://gw:8070"}, headers=gw
    ).json()["commands"]
    assert [c["n"] for c in again] == [1]


def _plant(api: Api, devices: list[str], *, fw: str, scores: list[int], t0: float) -> None:
    """Answers from `devices` on firmware `fw`, scores in turn, one a minute from `t0`."""
    events = []
    for i, score in enumerate(scores):
        device = devices[i % len(devices)]
        events.append(feedback(device, 100 + i, score=score, ts=t0 + 60 * i, fw=fw))
    for d in devices:
        events.append(telemetry(d, 99, ts=t0, fw=fw) | {"fw": fw})
    api.ingest(events)


@pytest.mark.parametrize("drop", [True, False])
def test_canary_halts_a_cohort_whose_scores_drop_and_lets_another_widen(
    api: Api, engine: Engine, settings: Settings, tmp_path: Path, drop: bool
) -> None:
    devices = _fleet(api, 20)
    key = _command_key(settings)
    with Session(engine) as session:
        create(session, bundle=bundle(tmp_path / "b", RELEASE_KEY), release_pub=RELEASE_PUB)
        r = rollout.start(
            session,
            key=key,
            version="1.5.0",
            target=rollout.Target(percent=50),
            step_answers=30,
            by="t",
            now=T0,
        )
        session.commit()
        assert r.steps == [1, 5, 10]
        cohort = r.target["order"][:1]
    control = [d for d in devices if d not in cohort]
    # Control on 1.0.0 over the same hours: mostly promoters. Cohort on 1.5.0: detractors
    # when it drops, the control's mix when it does not.
    mix = [10, 9, 9, 10, 7, 9, 10, 3, 9, 10]
    _plant(api, control, fw="1.0.0", scores=mix * 8, t0=T0 + 60)
    _plant(
        api, cohort, fw="1.5.0", scores=([2, 0, 5, 9, 1, 3] * 6) if drop else mix * 4, t0=T0 + 60
    )
    with Session(engine) as session:
        opened = rollout.tick(session, key=key, now=T0 + 6 * 3600)
        session.commit()
    listed = api.get("/api/v1/releases")
    [out] = listed[0]["rollouts"]
    canary = out["canary"]
    assert canary["cohort"]["nps"]["n"] >= 30 and canary["control"]["nps"]["n"] == 80
    assert canary["diff_ci95"][0] <= canary["diff"] <= canary["diff_ci95"][1]
    assert canary["cohort"]["health"]["devices"] == 1
    with Session(engine) as session:
        alerts = [a for a in session.execute(select(Alert)).scalars() if a.kind == "canary"]
    if drop:
        assert out["state"] == "halted" and "NPS" in out["reason"]
        assert canary["halt"] is True and canary["p"] < 0.05
        assert len(opened) == 1 and [a.kind for a in alerts] == ["canary"]
        assert len(out["cohort"]) == 1  # not widened
    else:
        assert out["state"] == "rolling" and out["step"] == 1
        assert len(out["cohort"]) == 5 and not opened and not alerts
    # The canary alert shows in the alert list like any other.
    if drop:
        assert api.get("/api/v1/alerts", kind="canary")["items"][0]["kind"] == "canary"


def test_rollout_finishes_after_its_last_step(
    api: Api, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    devices = _fleet(api, 2)
    key = _command_key(settings)
    _release_rolling(engine, key, tmp_path, rollout.Target(devices=(devices[0],)), 3, T0)
    _plant(api, devices[:1], fw="1.5.0", scores=[9, 9, 10], t0=T0 + 60)
    with Session(engine) as session:
        rollout.tick(session, key=key, now=T0 + 3600)
        session.commit()
        state = session.execute(select(Rollout.state)).scalar_one()  # type: ignore[call-overload]
    assert state == "done"


def test_plan_ladder() -> None:
    assert rollout.plan(20, 50) == [1, 5, 10]
    assert rollout.plan(1, 100) == [1]
    assert rollout.plan(200, 100) == [10, 50, 100, 200]
    assert rollout.plan(3, 10) == [1]
    assert rollout.order(["a", "b", "c"], "1.5.0") == rollout.order(["c", "b", "a"], "1.5.0")


def test_releases_route_is_for_operators(api: Api, engine: Engine) -> None:
    from server.identity.tokens import create_token

    with Session(engine) as session:
        viewer = create_token(session, name="vic", role="viewer")
        limited = create_token(session, name="olga", role="operator", site="store-1")
    assert api.client.get("/api/v1/releases", headers=_auth(viewer)).status_code == 403
    assert api.client.get("/api/v1/releases", headers=_auth(limited)).status_code == 403
    assert (
        api.client.get("/api/v1/releases", headers=_auth(api.tokens["gateway"])).status_code == 401
    )


def test_the_periodic_check_halts_and_tells(
    api: Api, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """`watch.check_once` (what RolloutWatch runs): nothing to do touches no key file."""
    from server.fleet.watch import check_once
    from server.realtime.bus import Bus

    told: list[Any] = []
    bus = Bus(webhook=told.append)
    assert settings.command_key is not None
    assert check_once(engine, bus, settings) == 0
    assert not Path(settings.command_key).exists()
    devices = _fleet(api, 4)
    key = _command_key(settings)
    _release_rolling(engine, key, tmp_path, rollout.Target(devices=(devices[0],)), 500, T0)
    _plant(api, devices[:1], fw="1.5.0", scores=[0, 1, 2] * 10, t0=T0 + 60)
    _plant(api, devices[1:], fw="1.0.0", scores=[10, 9] * 15, t0=T0 + 60)
    assert check_once(engine, bus, settings, now=T0 + 3600) == 1
    assert [a["kind"] for a in told] == ["canary"]
