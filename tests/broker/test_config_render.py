"""The pure renderer: what goes into mosquitto.conf, passwd, acl and gateway.toml, and what
hostile registry rows or options cannot get in (a newline in a name would add ACL lines)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from broker.config import (
    BrokerConfigError,
    InvalidHash,
    InvalidName,
    InvalidPath,
    Login,
    NameClash,
    TlsFiles,
    gateway_address,
    render,
    render_gateway_toml,
)
from server.identity.registry import mosquitto_hash

ROOT = Path(__file__).resolve().parents[2]
OUT = Path("/etc/nps-edge/broker")
HASH = mosquitto_hash("pw", salt=b"0123456789ab")
GATEWAY = Login("gw-site-x", HASH)


def files(devices: list[Login], **kw: object) -> tuple[str, str, str]:
    args: dict = dict(site="site-x", out=OUT, port=1883, host="127.0.0.1", gateway=GATEWAY)
    args.update(kw)
    made = render(devices=devices, **args)
    return made.conf, made.passwd, made.acl


def directives(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, _, value = line.partition(" ")
            out[word] = value
    return out


def test_the_locked_down_lines() -> None:
    conf, passwd, acl = files([Login("dev-a", HASH), Login("dev-b", HASH)])
    d = directives(conf)
    assert d["listener"] == "1883 127.0.0.1"
    assert d["allow_anonymous"] == "false"
    assert d["password_file"] == f"{OUT}/passwd"
    assert d["acl_file"] == f"{OUT}/acl"
    assert d["use_username_as_clientid"] == "true"
    assert d["persistence_location"] == f"{OUT}/data/"
    assert "cafile" not in d and "user" not in d  # Mosquitto drops root to `mosquitto`
    assert passwd == f"gw-site-x:{HASH}\ndev-a:{HASH}\ndev-b:{HASH}\n"
    rules = [ln for ln in acl.splitlines() if ln and not ln.startswith("#")]
    assert rules == [
        "pattern write nps/v1/%u/feedback",
        "pattern write nps/v1/%u/telemetry",
        "pattern write nps/v1/%u/status",
        "pattern read nps/v1/%u/cmd",
        "user gw-site-x",
        "topic deny nps/v1/gw-site-x/#",
        "topic read nps/v1/+/feedback",
        "topic read nps/v1/+/telemetry",
        "topic read nps/v1/+/status",
        "topic write nps/v1/+/cmd",
    ]


def test_the_production_settings_of_the_shipped_example_are_kept() -> None:
    """docs/deploy/mosquitto.conf's queue, inflight, size and latency settings, same values."""
    shipped = directives((ROOT / "docs/deploy/mosquitto.conf").read_text())
    conf = directives(files([])[0])
    for word in (
        "persistence",
        "autosave_interval",
        "max_queued_messages",
        "max_queued_bytes",
        "max_inflight_messages",
        "message_size_limit",
        "set_tcp_nodelay",
        "persistent_client_expiration",
    ):
        assert conf[word] == shipped[word], word
    assert shipped["allow_anonymous"] == "false"  # the example fails closed too


def test_tls_listener() -> None:
    tls = TlsFiles(Path("/c/ca.crt"), Path("/c/server.crt"), Path("/c/server.key"))
    d = directives(files([], port=8883, host="0.0.0.0", tls=tls)[0])
    assert d["listener"] == "8883 0.0.0.0"
    assert d["cafile"] == "/c/ca.crt"
    assert (d["certfile"], d["keyfile"]) == ("/c/server.crt", "/c/server.key")
    assert d["tls_version"] == "tlsv1.2"


@pytest.mark.parametrize(
    "device, error",
    [
        (Login("evil\nuser gw-site-x", HASH), InvalidName),
        (Login("abc\n", HASH), InvalidName),  # `$` alone would let a trailing newline by
        (Login("dev-a:x", HASH), InvalidName),
        (Login("Dev-A", HASH), InvalidName),
        (Login("#", HASH), InvalidName),
        (Login("dev-a", HASH + "\ndev-b:" + HASH), InvalidHash),
        (Login("dev-a", "clear-password"), InvalidHash),
        (Login("dev-a", "$6$abc$def"), InvalidHash),
        (Login("dev-a", ""), InvalidHash),
        (Login("gw-site-x", HASH), NameClash),  # a device named like the gateway
    ],
)
def test_hostile_registry_rows_are_refused(device: Login, error: type[Exception]) -> None:
    with pytest.raises(error):
        files([Login("dev-ok", HASH), device])


def test_duplicate_logins_are_refused() -> None:
    with pytest.raises(NameClash):
        files([Login("dev-a", HASH), Login("dev-a", HASH)])


@pytest.mark.parametrize(
    "change, error",
    [
        ({"site": "Site X"}, InvalidName),
        ({"site": "x\n"}, InvalidName),
        ({"host": "0.0.0.0\nallow_anonymous true"}, InvalidName),
        ({"host": ""}, InvalidName),
        ({"port": 0}, InvalidName),
        ({"port": 70000}, InvalidName),
        ({"topic_root": "nps/#"}, InvalidName),
        ({"topic_root": "nps/v1\nuser x"}, InvalidName),
        ({"out": Path("/etc/my broker")}, InvalidPath),
        ({"out": Path("/etc/b\nallow_anonymous true")}, InvalidPath),
        ({"gateway": Login("gw-site-y", HASH)}, NameClash),
    ],
)
def test_hostile_options_are_refused(change: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        files([], **change)
    assert issubclass(error, BrokerConfigError)


def test_gateway_toml_round_trips_any_password() -> None:
    password = 'a"b\\c\nd\u00e9'
    text = render_gateway_toml(
        site="site-x", broker="127.0.0.1:8883", password=password, tls=True, ca=Path("/c/ca.crt")
    )
    assert tomllib.loads(text) == {
        "broker": "127.0.0.1:8883",
        "broker_username": "gw-site-x",
        "broker_password": password,
        "broker_tls": True,
        "broker_ca": "/c/ca.crt",
        "gateway_id": "gw-site-x",
    }
    plain = tomllib.loads(render_gateway_toml(site="s", broker="h:1", password="p", tls=False))
    assert plain["broker_tls"] is False and "broker_ca" not in plain


def test_gateway_address() -> None:
    assert gateway_address("0.0.0.0", 1883) == "127.0.0.1:1883"
    assert gateway_address("192.168.4.2", 8883) == "192.168.4.2:8883"
    assert gateway_address("::1", 8883) == "[::1]:8883"
