"""The phone link's keys (PROGRAMME.md "The voice from a phone"): pure, but for the secret file.

    voice secret (32 random bytes, a file created 0600)
      -> device key = HMAC-SHA256(secret, b"voice:" + device)         provisioned as `voice.key`
      -> code       = base64url(HMAC-SHA256(key, b"{device}:{seq}")[:8])  made offline by the device
      -> link       = {base_url}/v/{device}/{seq}/{code}

The code is 64 bits: guessing one for a given answer takes ~2^63 tries, and the phone
page allows `voice_max_requests` per client address per window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from server.secret_files import beside_database, create_once

SECRET_BYTES = 32
CODE_BYTES = 8
CODE_CHARS = 11  # base64url of 8 bytes without padding
SECRET_FILE = "nps-edge-voice.secret"


class BadVoiceSecret(ValueError):
    """The voice secret file exists but does not hold a secret of ours."""


def secret_path(configured: str | None, db_url: str) -> Path:
    """The `voice_secret` setting, else beside the SQLite database file, else in the cwd."""
    return Path(configured) if configured else beside_database(db_url, SECRET_FILE)


def load_secret(path: Path) -> bytes:
    """The secret in `path`, created (0600, hex) if there is none, once for all workers
    (`secret_files.create_once`)."""
    create_once(path, secrets.token_hex(SECRET_BYTES) + "\n")
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (UnicodeDecodeError, ValueError) as err:
        raise BadVoiceSecret(f"{path}: not a hex voice secret ({err})") from None
    if len(secret) < SECRET_BYTES:
        raise BadVoiceSecret(f"{path}: a voice secret has at least {SECRET_BYTES} bytes")
    return secret


def device_key(secret: bytes, device: str) -> bytes:
    return hmac.new(secret, b"voice:" + device.encode(), hashlib.sha256).digest()


def device_key_b64(secret: bytes, device: str) -> str:
    """The key as provisioned into the device's config `voice.key` (standard base64)."""
    return base64.b64encode(device_key(secret, device)).decode("ascii")


def link_code(key: bytes, device: str, seq: int) -> str:
    mac = hmac.new(key, f"{device}:{seq}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:CODE_BYTES]).rstrip(b"=").decode("ascii")


def verifies(key: bytes, device: str, seq: int, code: str) -> bool:
    """Whether `code` is the link code of (device, seq), compared in constant time."""
    return hmac.compare_digest(link_code(key, device, seq).encode(), code.encode("utf-8"))


def link(base_url: str, key: bytes, device: str, seq: int) -> str:
    return f"{base_url.rstrip('/')}/v/{device}/{seq}/{link_code(key, device, seq)}"
