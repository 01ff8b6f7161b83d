"""Helpers for the fleet tests: a signed release bundle, the command key, the cmd checker."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.fleet import keys


def bundle(
    out: Path,
    key: Ed25519PrivateKey,
    *,
    version: str = "1.5.0",
    files: dict[str, bytes] | None = None,
) -> Path:
    """A bundle as `nps-edge firmware build --sign-key` writes it: files, manifest, signature."""
    files = files or {"main.py": b"print('hi')\n", "lib/app.mpy": bytes(range(256)) * 40}
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for path, data in files.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
        entries.append(
            {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        )
    manifest = {
        "format": 1, "firmware": version, "board": "esp32_oled_encoder", "arch": "xtensawin",
        "built_at": "2026-12-06T00:00:00Z", "mpy_cross": "1.24", "flags": [], "files": entries,
    }  # fmt: skip
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (out / "manifest.json").write_bytes(raw)
    (out / "manifest.sig").write_text(base64.b64encode(key.sign(raw)).decode() + "\n")
    return out


def pub_b64(key: Ed25519PrivateKey) -> str:
    return keys.public_b64(key)


def open_cmd(payload: str, pub_b64_text: str) -> dict[str, Any]:
    """What a device does first: check the signature over `c`, then parse `c`."""
    message = json.loads(payload)
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64_text))
    pub.verify(base64.b64decode(message["s"]), message["c"].encode("utf-8"))  # raises if forged
    cmd: dict[str, Any] = json.loads(message["c"])
    return cmd
