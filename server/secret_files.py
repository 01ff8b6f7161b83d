"""Secrets the server keeps in files of their own (the fleet's command key, the phone links'
voice secret): where they live by default, and how they are made once, safely."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url


def beside_database(db_url: str, name: str) -> Path:
    """`name` beside the SQLite database file, else (PostgreSQL, in memory) in the cwd."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).resolve().parent / name
    return Path.cwd() / name


def create_once(path: Path, text: str) -> None:
    """Write `text` to `path` (0600) unless it exists. Made whole in a temporary file and
    linked into place, so workers starting at once all end with the one file that got there
    first, never a half-written one."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker made it first: theirs stands
    finally:
        tmp.unlink(missing_ok=True)
