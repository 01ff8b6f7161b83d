"""The device registry, and its `$7$` hashes as the real Mosquitto 2.0 reads them."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session

from nps_edge.broker import free_port, mosquitto_binary, terminate, wait_for_port
from server.db.engine import make_engine, upgrade
from server.identity.registry import (
    BadDeviceId,
    BadSite,
    DeviceExists,
    UnknownDevice,
    add_device,
    list_devices,
    mosquitto_hash,
    revoke_device,
)
from tests.conftest import missing


def test_hash_has_mosquittos_shape_and_is_salted() -> None:
    one = mosquitto_hash("secret", salt=b"0123456789ab")
    assert one == mosquitto_hash("secret", salt=b"0123456789ab")
    tag, iterations, salt, digest = one.split("$")[1:]
    assert (tag, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64 bytes of SHA-512 in base64
    assert mosquitto_hash("secret") != mosquitto_hash("secret")  # a fresh salt each time


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'nps.db'}")
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


def test_add_list_revoke(session: Session) -> None:
    row, password = add_device(session, site="store-1")
    assert row.device.startswith("nps-") and len(row.device) == 10
    assert row.username == row.device and row.site == "store-1"
    assert password not in row.password_hash and row.password_hash.startswith("$7$101$")
    other, _ = add_device(session, site="store-2", device_id="nps-b00002")
    assert [d.device for d in list_devices(session)] == sorted([row.device, other.device])
    assert [d.device for d in list_devices(session, site="store-2")] == ["nps-b00002"]
    revoked = revoke_device(session, device_id="nps-b00002")
    assert revoked.revoked_at is not None
    assert revoke_device(session, device_id="nps-b00002").revoked_at == revoked.revoked_at


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"site": "Store 1"}, BadSite),
        ({"site": "s", "device_id": "NPS-1"}, BadDeviceId),
        ({"site": "s", "device_id": "ab"}, BadDeviceId),
        ({"site": "s", "device_id": "abc\n"}, BadDeviceId),  # "$" matches before a newline
        ({"site": "x\n"}, BadSite),
        ({"site": "s", "device_id": "nps-a00001"}, DeviceExists),
    ],
)
def test_bad_input_has_a_named_error(
    session: Session, kwargs: dict[str, str], error: type[Exception]
) -> None:
    add_device(session, site="s", device_id="nps-a00001")
    with pytest.raises(error):
        add_device(session, **kwargs)


def test_revoking_an_unknown_device_is_a_named_error(session: Session) -> None:
    with pytest.raises(UnknownDevice):
        revoke_device(session, device_id="nps-none00")


def _connack(port: int, username: str, password: str) -> int:
    """Connect with paho and return the broker's CONNACK code (MQTT 3.1.1 section 3.2.2.3)."""
    got: list[int] = []
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        got.append(int(reason.value))  # type: ignore[attr-defined]
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK within 10 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_mosquitto_accepts_the_hash(tmp_path: Path, session: Session) -> None:
    binary = mosquitto_binary()
    if binary is None:
        missing("mosquitto", "apt-get install mosquitto")
    row, password = add_device(session, site="store-1", device_id="nps-c00001")
    (tmp_path / "passwd").write_text(f"{row.username}:{row.password_hash}\n")
    port = free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {tmp_path / 'passwd'}",
        f"log_dest file {tmp_path / 'mosquitto.log'}",
    ]
    if os.geteuid() == 0:
        # Started as root Mosquitto drops to user `mosquitto` before reading the
        # password file, which could not read a private temp folder: stay root here.
        lines.append("user root")
    (tmp_path / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, proc=proc)
        assert _connack(port, "nps-c00001", password) == 0  # accepted
        assert _connack(port, "nps-c00001", password + "x") in (4, 5, 134, 135)  # refused
        assert _connack(port, "nps-other0", password) in (4, 5, 134, 135)
    finally:
        terminate(proc, 10)
