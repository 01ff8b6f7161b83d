"""Ed25519 keys (RFC 8032): the server's command key, and checking a release's signature.

Key file format (docs/protocol.md, "Keys"): one line, base64 of the 32-byte private seed,
mode 0600. The public key travels as base64 of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from server.secret_files import beside_database, create_once
from server.settings import Settings

KEY_FILE = "command.key"
SEED_BYTES = 32


class KeyFileError(ValueError):
    """A key file or public key that cannot be used; the message says which and why."""


def default_path(db_url: str) -> Path:
    """`command.key` beside the SQLite database file, else in the working directory."""
    return beside_database(db_url, KEY_FILE)


def command_key_path(settings: Settings) -> Path:
    """The `command_key` setting, else `default_path`."""
    return Path(settings.command_key) if settings.command_key else default_path(settings.db)


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The key in `path`, made (0600, never overwritten) when the file does not exist;
    workers starting at once all end with the one key (`secret_files.create_once`)."""
    if not path.exists():
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        create_once(path, base64.b64encode(seed).decode() + "\n")
    return load(path)


def load(path: Path) -> Ed25519PrivateKey:
    try:
        text = path.read_text(encoding="ascii").strip()
        seed = base64.b64decode(text, validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error) as err:
        raise KeyFileError(f"cannot read the key file {path}: {err}") from None
    if len(seed) != SEED_BYTES:
        raise KeyFileError(f"{path} holds {len(seed)} bytes, not a {SEED_BYTES}-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign_b64(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode()


def public_key(b64: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except binascii.Error:
        raise KeyFileError("the public key is not base64") from None
    if len(raw) != SEED_BYTES:
        raise KeyFileError(f"the public key is {len(raw)} bytes, an Ed25519 key is {SEED_BYTES}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verifies(pub: Ed25519PublicKey, data: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` (base64, surrounding whitespace allowed) signs `data`."""
    try:
        pub.verify(base64.b64decode(signature_b64.strip(), validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
