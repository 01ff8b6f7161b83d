"""Release signing keys (Ed25519, RFC 8032): make one, load one, sign a bundle's manifest.

A private key file is one line, the base64 of the 32-byte seed, readable by its owner
only (0600). Devices hold only the public key (config `trust.release_pub`) and accept
a release only when manifest.sig is this key's signature over manifest.json's exact bytes
(firmware/device/ota.py). docs/field-guide.md says how to keep the file.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.tools.bundle import MANIFEST

SIGNATURE = "manifest.sig"
SEED_BYTES = 32


class SigningError(Exception):
    """A key file or signature could not be made or used; the message says what to fix."""


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def keygen(path: Path) -> Ed25519PrivateKey:
    """A new key written to `path` (created 0600; an existing file is never replaced)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningError(f"{path} exists: a signing key is never overwritten") from None
    except OSError as err:
        raise SigningError(f"cannot create {path}: {err.strerror}") from err
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(seed).decode() + "\n")
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    """The private key in `path`; refuses a file others can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SigningError(f"cannot read the signing key {path}: {err}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningError(f"{path} is readable by others: chmod 600 {path}")
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != SEED_BYTES:
        raise SigningError(f"{path} is not a key from `nps-edge firmware keygen`")
    return Ed25519PrivateKey.from_private_bytes(seed)


def parse_public(text: str, what: str = "public key") -> str:
    """A base64 Ed25519 public key as config `trust` holds it; SigningError if not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise SigningError(f"{what} must be base64 of 32 bytes (as keygen prints)") from None
    return base64.b64encode(raw).decode()


def sign_bundle(bundle: Path, key: Ed25519PrivateKey) -> Path:
    """Write bundle/manifest.sig: base64 signature over manifest.json's exact bytes."""
    try:
        manifest = (bundle / MANIFEST).read_bytes()
    except OSError as err:
        raise SigningError(f"no {MANIFEST} in {bundle} to sign") from err
    out = bundle / SIGNATURE
    out.write_text(base64.b64encode(key.sign(manifest)).decode() + "\n", encoding="ascii")
    return out


def verify_bundle(bundle: Path, public: str) -> bool:
    """True when bundle/manifest.sig is `public`'s signature over manifest.json."""
    try:
        manifest = (bundle / MANIFEST).read_bytes()
        sig = base64.b64decode((bundle / SIGNATURE).read_text(encoding="ascii").strip())
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(sig, manifest)
    except (OSError, ValueError, binascii.Error, InvalidSignature):
        return False
    return True
