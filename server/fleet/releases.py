"""Releases: a signed firmware bundle checked file by file and stored whole, so that the
gateways can fetch exactly the bytes the release key signed (docs/server.md, "Releases")."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from server.db.sql import table_of
from server.fleet import keys
from server.fleet.commands import VERSION
from server.models import Release, ReleaseFile

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
VERSION_RE = re.compile(VERSION)
# A file's path in a bundle: relative, POSIX, segments of [A-Za-z0-9_.-] not starting with a dot.
SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
PATH_RE = re.compile(rf"^(?:{SEGMENT}/){{0,4}}{SEGMENT}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES = 512
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


class ReleaseError(ValueError):
    """A bundle that cannot be released; the message says which check failed."""


@dataclass(frozen=True)
class Entry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    board: str
    files: tuple[Entry, ...]


def parse_manifest(raw: bytes) -> Manifest:
    """The fields a release needs from `nps-edge firmware build`'s manifest.json."""
    try:
        body = json.loads(raw)
        version, board = body["firmware"], body["board"]
        files = tuple(Entry(f["path"], f["sha256"], f["size"]) for f in body["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise ReleaseError(f"{MANIFEST} is not a bundle manifest: {err}") from None
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ReleaseError(f"{MANIFEST}: firmware version {str(version)[:40]!r} is not a version")
    if not isinstance(board, str) or not 0 < len(board) <= 64:
        raise ReleaseError(f"{MANIFEST}: board must be a name")
    if not 0 < len(files) <= MAX_FILES:
        raise ReleaseError(f"{MANIFEST}: lists {len(files)} files (1 to {MAX_FILES})")
    for f in files:
        if not isinstance(f.path, str) or not PATH_RE.match(f.path) or ".." in f.path:
            raise ReleaseError(f"{MANIFEST}: file path {str(f.path)[:80]!r} is not allowed")
        if not isinstance(f.sha256, str) or not SHA256_RE.match(f.sha256):
            raise ReleaseError(f"{MANIFEST}: {f.path}: sha256 must be 64 hex digits")
        if type(f.size) is not int or not 0 <= f.size <= MAX_BUNDLE_BYTES:
            raise ReleaseError(f"{MANIFEST}: {f.path}: bad size")
        if f.path in (MANIFEST, SIGNATURE):
            raise ReleaseError(f"{MANIFEST}: lists {f.path} itself")
    return Manifest(version, board, files)


def create(
    session: Session, *, bundle: Path, release_pub: str, now: float | None = None
) -> Release:
    """Check the bundle (signature over manifest.json by the release key, then every file's
    size and SHA-256) and store it; ReleaseError on the first check that fails."""
    try:
        raw = (bundle / MANIFEST).read_bytes()
        signature = (bundle / SIGNATURE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ReleaseError(
            f"{bundle} needs {MANIFEST} and {SIGNATURE} (`nps-edge firmware build --sign-key`):"
            f" {err}"
        ) from None
    try:
        pub = keys.public_key(release_pub)
    except keys.KeyFileError as err:
        raise ReleaseError(f"release public key: {err}") from None
    if not keys.verifies(pub, raw, signature):
        raise ReleaseError(f"{SIGNATURE} is not the release key's signature of {MANIFEST}")
    manifest = parse_manifest(raw)
    if session.get(Release, manifest.version) is not None:
        raise ReleaseError(f"release {manifest.version} exists already")
    contents: list[ReleaseFile] = []
    total = 0
    for f in manifest.files:
        try:
            data = (bundle / f.path).read_bytes()
        except OSError as err:
            raise ReleaseError(f"{f.path}: cannot read it from the bundle: {err}") from None
        if len(data) != f.size or hashlib.sha256(data).hexdigest() != f.sha256:
            raise ReleaseError(f"{f.path}: not the file {MANIFEST} lists (size or SHA-256)")
        total += len(data)
        if total > MAX_BUNDLE_BYTES:
            raise ReleaseError(f"the bundle passes {MAX_BUNDLE_BYTES} bytes")
        contents.append(
            ReleaseFile(version=manifest.version, path=f.path, sha256=f.sha256, size=f.size,
                        content=data)
        )  # fmt: skip
    release = Release(
        version=manifest.version, board=manifest.board, manifest=raw, signature=signature,
        manifest_sha256=hashlib.sha256(raw).hexdigest(), files=len(contents), size=total,
        created_at=time.time() if now is None else now,
    )  # fmt: skip
    session.add(release)
    session.flush()
    session.add_all(contents)
    return release


def file_bytes(session: Session, *, version: str, path: str) -> bytes | None:
    """A stored file of a release (manifest.json and manifest.sig included); None: not one."""
    release = session.get(Release, version)
    if release is None:
        return None
    if path == MANIFEST:
        return release.manifest
    if path == SIGNATURE:
        return (release.signature + "\n").encode("ascii")
    R = table_of(ReleaseFile).c
    return session.execute(
        select(R.content).where(R.version == version, R.path == path)
    ).scalar_one_or_none()


def update_body(release: Release) -> dict[str, Any]:
    """An update command's body before its URL is known (`command_queue.pickup` adds it)."""
    return {"release": {"version": release.version, "manifest_sha256": release.manifest_sha256}}
