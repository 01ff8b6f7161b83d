"""The gateway's relay and file cache against the real server app (in process): the
server's pickup and release routes and the gateway's parts speak the same wire."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlmodel import Session

from gateway.commands import Relay
from gateway.files import Cache, server_fetch
from gateway.policy import Presence
from gateway.store import Store
from server.app import create_app
from server.db.engine import make_engine, upgrade
from server.fleet import keys, rollout
from server.fleet.releases import create
from server.identity.tokens import create_token
from server.settings import Settings
from tests.server.factory import feedback
from tests.server.fleet_kit import bundle

RELEASE_KEY = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, Settings]]:
    """The server on SQLite with device nps-aaa111 at store-1; an operator's and the
    store-1 gateway's clients."""
    settings = Settings(db=f"sqlite:///{tmp_path / 'nps.db'}",
                        command_key=str(tmp_path / "command.key"))  # fmt: skip
    engine = make_engine(settings.db)
    upgrade(engine)
    with Session(engine) as s:
        gw = create_token(s, name="gw-1", role="gateway", site="store-1")
        op = create_token(s, name="ops", role="operator")
    app = create_app(settings, engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {gw}"}) as gateway:
        operator = TestClient(app, headers={"Authorization": f"Bearer {op}"})
        r = gateway.post("/api/v1/ingest", json={"gateway": "gw-1", "events": [feedback()]})
        assert r.status_code == 200
        with Session(engine) as s:
            create(s, bundle=bundle(tmp_path / "b", RELEASE_KEY),
                   release_pub=keys.public_b64(RELEASE_KEY))  # fmt: skip
            s.commit()
        yield gateway, operator, settings
    engine.dispose()


def test_relay_and_cache_against_the_server(
    world: tuple[TestClient, TestClient, Settings], tmp_path: Path
) -> None:
    gateway, operator, settings = world
    assert (
        operator.put(
            "/api/v1/devices/nps-aaa111/config", json={"set": {"timeouts": {"prompt_s": 25}}}
        ).status_code
        == 200
    )
    engine = make_engine(settings.db)
    assert settings.command_key is not None
    with Session(engine) as s:
        rollout.start(
            s,
            key=keys.load(Path(settings.command_key)),
            version="1.5.0",
            target=rollout.Target(devices=("nps-aaa111",)),
            step_answers=5,
            by="t",
        )
        s.commit()
    engine.dispose()

    store_path = tmp_path / "gw.db"
    store = Store(store_path)
    store.put([Presence("nps-aaa111", True, "1.0.0", 1, 100.0, cfg=0, cmd=0)])
    sent: list[tuple[str, bytes]] = []

    def publish(topic: str, payload: bytes) -> bool:
        sent.append((topic, payload))
        return True

    relay = Relay(store_path, gateway, publish,
                  CollectorRegistry(), root="nps/v1", fw_url="http://10.1.2.3:8070")  # fmt: skip
    assert relay.fetch() == 2
    assert relay.deliver() == 2
    assert settings.command_key is not None
    pub_b64 = keys.public_b64(keys.load(Path(settings.command_key)))
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64))
    cmds = []
    for topic, payload in sent:
        assert topic == "nps/v1/nps-aaa111/cmd" and len(payload) <= 2048
        message = json.loads(payload)
        pub.verify(base64.b64decode(message["s"]), message["c"].encode())
        cmds.append(json.loads(message["c"]))
    assert [(c["n"], c["kind"]) for c in cmds] == [(1, "config"), (2, "update")]
    url = cmds[1]["release"]["url"]
    assert url == "http://10.1.2.3:8070/fw/1.5.0/"

    # The device fetches through the gateway's cache, which fetches from the server.
    cache = Cache(tmp_path / "cache", server_fetch(gateway))
    manifest = cache.file("1.5.0", "manifest.json")
    assert manifest is not None
    assert (
        hashlib.sha256(manifest.read_bytes()).hexdigest() == cmds[1]["release"]["manifest_sha256"]
    )
    main = cache.file("1.5.0", "main.py")
    assert main is not None and main.read_bytes() == b"print('hi')\n"
    assert cache.file("1.5.0", "../nps.db") is None

    # The device reports both applied: the relay drops them.
    store.put([Presence("nps-aaa111", True, "1.5.0", 2, 200.0, cfg=1, cmd=2, update="applied")])
    relay.deliver()
    assert relay.pending() == []
    relay.close()
    store.close()
