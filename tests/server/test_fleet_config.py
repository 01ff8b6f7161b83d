"""Issue 14, server side of settings over the air: desired vs reported config, signed
commands, the gateway's pickup (its own site only), and who may do what."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from server.fleet import keys
from server.fleet.commands import MAX_CMD_BYTES
from server.identity.tokens import create_token
from server.settings import Settings
from tests.server.factory import T0, Api, feedback
from tests.server.fleet_kit import open_cmd


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(db=db_url, command_key=str(tmp_path / "command.key"))


def _pub(settings: Settings) -> str:
    assert settings.command_key is not None
    return keys.public_b64(keys.load(Path(settings.command_key)))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(api: Api, engine: Engine, role: str, name: str, site: str | None = None) -> str:
    with Session(engine) as session:
        return create_token(session, name=name, role=role, site=site)


def _presence(api: Api, device: str, rx_ts: float, **fields: object) -> None:
    r = api.client.post(
        "/api/v1/presence",
        json={"gateway": "gw-1", "updates": [
            {"device": device, "online": True, "fw": "1.0.0", "boot": 1, "rx_ts": rx_ts} | fields
        ]},
        headers=_auth(api.tokens["gateway"]),
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def test_config_change_is_signed_picked_up_and_drift_clears_on_report(
    api: Api, settings: Settings
) -> None:
    api.ingest([feedback("nps-aaa111", 1)])
    before = api.get("/api/v1/devices/nps-aaa111/config")
    assert before["desired"]["cfg"] == 0 and before["drift"] is False
    r = api.client.put(
        "/api/v1/devices/nps-aaa111/config",
        json={"set": {"prompt": {"text": "Would you recommend us?"}, "timeouts": {"prompt_s": 20}}},
        headers=_auth(api.tokens["operator"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["n"] == 1 and r.json()["cfg"] == 1
    view = api.get("/api/v1/devices/nps-aaa111/config")
    assert view["drift"] is True and view["pending"] == 1
    assert view["desired"]["settings"]["prompt"]["text"] == "Would you recommend us?"

    got = api.client.get("/api/v1/gateway/commands", headers=_auth(api.tokens["gateway"]))
    assert got.status_code == 200, got.text
    [command] = got.json()["commands"]
    cmd = open_cmd(command["payload"], _pub(settings))
    assert cmd["device"] == "nps-aaa111" and cmd["n"] == 1 and cmd["kind"] == "config"
    assert cmd["cfg"] == 1 and cmd["set"]["timeouts"] == {"prompt_s": 20}
    assert len(command["payload"].encode()) <= MAX_CMD_BYTES

    # A second change: n and cfg increase, the whole desired config travels again.
    api.client.put(
        "/api/v1/devices/nps-aaa111/config", json={"set": {"reasons": ["slow", "price"]}},
        headers=_auth(api.tokens["operator"]),
    )  # fmt: skip
    got = api.client.get(
        "/api/v1/gateway/commands", params={"after": command["id"]},
        headers=_auth(api.tokens["gateway"]),
    ).json()["commands"]  # fmt: skip
    cmd2 = open_cmd(got[0]["payload"], _pub(settings))
    assert (cmd2["n"], cmd2["cfg"]) == (2, 2)
    assert cmd2["set"]["prompt"]["text"] == "Would you recommend us?"

    # The device reports it runs cfg 2 and accepted n 2: no drift, nothing pending or sent.
    _presence(api, "nps-aaa111", T0 + 10, cfg=2, cmd=2, cmd_error=None, update=None)
    view = api.get("/api/v1/devices/nps-aaa111/config")
    assert view["drift"] is False and view["pending"] == 0
    assert view["reported"] == {
        "cfg": 2, "cmd": 2, "cmd_error": None, "update": None, "at": T0 + 10
    }  # fmt: skip
    again = api.client.get("/api/v1/gateway/commands", headers=_auth(api.tokens["gateway"]))
    assert again.json()["commands"] == []
    # An older status arriving late does not roll the report back.
    _presence(api, "nps-aaa111", T0 + 5, cfg=1, cmd=1)
    assert api.get("/api/v1/devices/nps-aaa111/config")["reported"]["cfg"] == 2


def test_reboot_command(api: Api, settings: Settings) -> None:
    api.ingest([feedback("nps-aaa111", 1)])
    r = api.client.post("/api/v1/devices/nps-aaa111/reboot", headers=_auth(api.tokens["operator"]))
    assert r.status_code == 200 and r.json()["kind"] == "reboot"
    [c] = api.client.get("/api/v1/gateway/commands", headers=_auth(api.tokens["gateway"])).json()[
        "commands"
    ]
    cmd = open_cmd(c["payload"], _pub(settings))
    assert cmd["kind"] == "reboot" and isinstance(cmd["exp"], int)


@pytest.mark.parametrize(
    "change",
    [
        {"broker": {"host": "evil.example"}},  # not settable: the device's own connection
        {"timeouts": {"prompt_s": 0}},
        {"timeouts": {"prompt_s": True}},
        {"prompt": {"text": ""}},
        {"reasons": ["ok", "Not A Code"]},
        {"sampling": 5},
        {"prompt": {"text": "x" * 121}},
        {"survey": {"blob": "x" * 3000}},  # the signed message would pass 2,048 bytes
    ],
)
def test_a_bad_setting_is_refused_and_queues_nothing(api: Api, change: dict[str, object]) -> None:
    api.ingest([feedback("nps-aaa111", 1)])
    r = api.client.put(
        "/api/v1/devices/nps-aaa111/config", json={"set": change},
        headers=_auth(api.tokens["operator"]),
    )  # fmt: skip
    assert r.status_code == 422, r.text
    view = api.get("/api/v1/devices/nps-aaa111/config")
    assert view["desired"]["cfg"] == 0 and view["pending"] == 0


def test_roles_and_sites(api: Api, engine: Engine) -> None:
    api.ingest([feedback("nps-aaa111", 1)])
    api.ingest([feedback("nps-bbb222", 1, site="store-2")], gateway="gw-2", site="store-2")
    viewer = _token(api, engine, "viewer", "vic")
    limited = _token(api, engine, "operator", "olga", site="store-2")
    body = {"set": {"timeouts": {"prompt_s": 20}}}
    url = "/api/v1/devices/nps-aaa111/config"
    assert api.client.get(url, headers=_auth(viewer)).status_code == 200
    assert api.client.put(url, json=body, headers=_auth(viewer)).status_code == 403
    assert (
        api.client.post(url.replace("config", "reboot"), headers=_auth(viewer)).status_code == 403
    )
    assert api.client.put(url, json=body).status_code == 401
    assert api.client.put(url, json=body, headers=_auth("nope")).status_code == 401
    # A person limited to store-2 cannot read or change store-1's device.
    assert api.client.get(url, headers=_auth(limited)).status_code == 403
    assert api.client.put(url, json=body, headers=_auth(limited)).status_code == 403
    ok = api.client.put("/api/v1/devices/nps-bbb222/config", json=body, headers=_auth(limited))
    assert ok.status_code == 200
    # A gateway token is not a person's, and a person's is not a gateway's.
    assert api.client.put(url, json=body, headers=_auth(api.tokens["gateway"])).status_code == 401
    assert api.client.get("/api/v1/gateway/commands", headers=_auth(viewer)).status_code == 401
    # Unknown device, hostile id.
    assert (
        api.client.get("/api/v1/devices/nps-nobody/config", headers=_auth(viewer)).status_code
        == 404
    )
    assert api.client.get(
        "/api/v1/devices/..%2F..%2Fetc/config", headers=_auth(viewer)
    ).status_code in (404, 422)


def test_a_gateway_sees_only_its_own_sites_commands(api: Api) -> None:
    api.ingest([feedback("nps-aaa111", 1)])
    api.ingest([feedback("nps-bbb222", 1, site="store-2")], gateway="gw-2", site="store-2")
    for device in ("nps-aaa111", "nps-bbb222"):
        api.client.post(f"/api/v1/devices/{device}/reboot", headers=_auth(api.tokens["operator"]))
    mine = api.client.get("/api/v1/gateway/commands", headers=_auth(api.tokens["gateway"]))
    theirs = api.client.get(
        "/api/v1/gateway/commands", headers=_auth(api.gateway_token("gw-2", "store-2"))
    )
    assert [c["device"] for c in mine.json()["commands"]] == ["nps-aaa111"]
    assert [c["device"] for c in theirs.json()["commands"]] == ["nps-bbb222"]
    # Hostile parameters: 422, never 500.
    for params in ({"after": -1}, {"after": "x"}, {"fw_url": "file:///etc/passwd"},
                   {"fw_url": "http://h:1/../x"}, {"after": 2**70}):  # fmt: skip
        r = api.client.get(
            "/api/v1/gateway/commands", params=params, headers=_auth(api.tokens["gateway"])
        )
        assert r.status_code == 422, (params, r.text)


def test_site_default_goes_to_each_device_of_the_site(api: Api, settings: Settings) -> None:
    api.ingest([feedback("nps-aaa111", 1), feedback("nps-aaa222", 1)])
    r = api.client.put(
        "/api/v1/sites/store-1/config", json={"set": {"telemetry_interval_s": 300}},
        headers=_auth(api.tokens["operator"]),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert sorted(q["device"] for q in r.json()) == ["nps-aaa111", "nps-aaa222"]
    view = api.get("/api/v1/devices/nps-aaa222/config")
    assert view["desired"]["settings"] == {"telemetry_interval_s": 300}


def test_the_command_key_file(tmp_path: Path) -> None:
    path = tmp_path / "command.key"
    key = keys.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.public_b64(keys.load_or_create(path)) == keys.public_b64(key)  # never replaced
    assert list(tmp_path.iterdir()) == [path]
    path.write_text("not base64!\n")
    with pytest.raises(keys.KeyFileError, match="cannot read"):
        keys.load(path)
    path.write_text("AAAA\n")
    with pytest.raises(keys.KeyFileError, match="32-byte"):
        keys.load(path)
    assert keys.default_path("sqlite:////srv/nps/nps.db") == Path("/srv/nps/command.key")
