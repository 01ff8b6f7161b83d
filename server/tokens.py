"""Gateway and operator tokens: random, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import select
from sqlmodel import Session

from server.models import LoginSession, Token
from server.sql import table_of

ROLES = ("gateway", "operator")
TOKEN = table_of(Token).c
PREFIX = {"gateway": "npsg_", "operator": "npso_"}


def digest(secret: str) -> str:
    """SHA-256 is enough for a 256-bit random token (no password stretching needed)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(session: Session, *, name: str, role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not 1 <= len(name) <= 128:
        raise ValueError("name must be 1 to 128 characters")
    token = PREFIX[role] + secrets.token_urlsafe(32)
    session.add(Token(name=name, role=role, token_hash=digest(token), created_at=time.time()))
    session.commit()
    return token


def find_token(session: Session, *, token: str) -> Token | None:
    row = session.execute(
        select(Token).where(TOKEN.token_hash == digest(token), TOKEN.revoked.is_(False))
    ).scalar_one_or_none()
    return row


def open_session(session: Session, *, token: Token, ttl_s: float, now: float) -> str:
    """A login session for the dashboard; the cookie holds a random id, the table its hash."""
    sid = secrets.token_urlsafe(32)
    assert token.id is not None
    session.add(
        LoginSession(
            session_hash=digest(sid), token_id=token.id, name=token.name, expires_at=now + ttl_s
        )
    )
    session.commit()
    return sid


def find_session(session: Session, *, sid: str, now: float) -> LoginSession | None:
    row = session.get(LoginSession, digest(sid))
    if row is None or row.expires_at < now:
        return None
    tok = session.get(Token, row.token_id)
    if tok is None or tok.revoked or tok.role != "operator":
        return None
    return row


def close_session(session: Session, *, sid: str) -> None:
    row = session.get(LoginSession, digest(sid))
    if row is not None:
        session.delete(row)
        session.commit()
