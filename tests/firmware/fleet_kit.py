"""Test scaffolding for signed commands and updates: keys, signed cmd payloads, release
bundles built from a changed copy of the firmware, and a small Range-capable HTTP server
standing in for the gateway's firmware file server (built separately, server side)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.sim.device import MPY_FLAGS
from firmware.tools import bundle, signing
from nps_edge.broker import Broker

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def key_from(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"%d" % seed).digest())


def pub(key: Ed25519PrivateKey) -> str:
    return signing.public_b64(key)


def signed(key: Ed25519PrivateKey, command: dict[str, Any]) -> str:
    """The cmd payload: {"c": command JSON, "s": base64 signature over it}."""
    text = json.dumps(command)
    return json.dumps({"c": text, "s": base64.b64encode(key.sign(text.encode())).decode()})


def publish(broker: Broker, topic: str, payload: str) -> None:
    """One QoS 1 PUBLISH from paho, waited for until the broker took it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-cmd")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def build_release(
    out: Path, version: str, key: Ed25519PrivateKey, *, crash: bool = False
) -> dict[str, str]:
    """A signed bundle of firmware/device with FW_VERSION = version (crash: app.py raises
    at import, a firmware that never gets healthy). Returns the release's manifest hash."""
    source = out.parent / f"src-{out.name}"
    shutil.copytree(bundle.DEVICE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "version.py").write_text(f'FW_VERSION = "{version}"\n')
    if crash:
        app = source / "app.py"
        app.write_text('raise RuntimeError("broken build")\n' + app.read_text())
    bundle.build(
        out,
        compiler=bundle.MpyCross(),
        board="unix_sim",
        arch=MPY_FLAGS[0].split("=")[1],
        device_dir=source,
    )
    signing.sign_bundle(out, key)
    return {"manifest_sha256": hashlib.sha256((out / bundle.MANIFEST).read_bytes()).hexdigest()}


class FileServer:
    """GET /fw/<version>/<path> from root/<version>/<path>, with single-range Range (206)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802  (http.server's name)
                server.requests.append((self.path, self.headers.get("Range")))
                rel = self.path.removeprefix("/fw/")
                path = (server.root / rel).resolve()
                if ".." in rel or not path.is_file() or server.root not in path.parents:
                    self.send_error(404)
                    return
                data = path.read_bytes()
                match = _RANGE.match(self.headers.get("Range") or "")
                if match is None:
                    self.send_response(200)
                    body = data
                else:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else len(data) - 1
                    end = min(end, len(data) - 1)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    body = data[start : end + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, version: str) -> str:
        return f"http://127.0.0.1:{self.port}/fw/{version}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def file_server(root: Path) -> Iterator[FileServer]:
    server = FileServer(root)
    try:
        yield server
    finally:
        server.close()


def statuses(sub: Any, device: str) -> list[dict[str, Any]]:
    """Every status payload the subscriber saw for device, oldest first."""
    return [
        json.loads(payload)
        for topic, payload, _ in list(sub.messages)
        if topic == f"nps/v1/{device}/status"
    ]
