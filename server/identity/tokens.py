"""Tokens for gateways and people: random, shown once, stored as SHA-256 hashes.

Roles (contract, December 2026): `gateway` (ingest and presence, bound to one
site), and for people `viewer` (read), `operator` (read, work alerts) and
`admin` (everything, the device registry); a person's token may be limited to
one site. Revocation takes effect on the next request: `find_token` refuses a
revoked token, and a dashboard session dies with its token.

Exceptions: `TokenError` (a `ValueError`) is the base of `BadRole`, `BadName`,
`BadSite` and `UnknownToken`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from sqlalchemy import Engine, bindparam, or_, select, update
from sqlmodel import Session

from contract.protocol import SITE_PATTERN
from server.db.engine import write_session
from server.db.sql import table_of
from server.models import LoginSession, Token

ROLES = ("gateway", "viewer", "operator", "admin")
PEOPLE = ("viewer", "operator", "admin")
TOKEN = table_of(Token).c
PREFIX = {"gateway": "npsg_", "viewer": "npsv_", "operator": "npso_", "admin": "npsa_"}
SITE_RE = re.compile(SITE_PATTERN)
# last_used_at is written at most once a minute per token: ingest runs many
# requests a second per gateway, and a write per request would add a write
# transaction (on SQLite, a turn on the database's one write lock) to each.
LAST_USED_GRAIN_S = 60.0


class TokenError(ValueError):
    """Base of the token errors: bad input the caller can correct."""


class BadRole(TokenError):
    pass


class BadName(TokenError):
    pass


class BadSite(TokenError):
    pass


class UnknownToken(TokenError):
    pass


def digest(secret: str) -> str:
    """SHA-256 is enough for a 256-bit random token (no password stretching needed)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(session: Session, *, name: str, role: str, site: str | None = None) -> str:
    """A new token; `site` is required for a gateway and limits a person to that site."""
    if role not in ROLES:
        raise BadRole(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not 1 <= len(name) <= 128:
        raise BadName("name must be 1 to 128 characters")
    if site is None and role == "gateway":
        raise BadSite("a gateway token needs --site: a gateway speaks for one site")
    if site is not None and not SITE_RE.match(site):
        raise BadSite(f"site {site[:70]!r} does not match {SITE_PATTERN}")
    token = PREFIX[role] + secrets.token_urlsafe(32)
    session.add(
        Token(name=name, role=role, site=site, token_hash=digest(token), created_at=time.time())
    )
    session.commit()
    return token


def find_token(session: Session, *, token: str) -> Token | None:
    """The live token with this secret, or None (unknown or revoked)."""
    row = session.execute(_LIVE, {"hash": digest(token)}).scalar_one_or_none()
    return row


# Every request asks: built once (docs/benchmarks.md, Run 13).
_LIVE = select(Token).where(TOKEN.token_hash == bindparam("hash"), TOKEN.revoked_at.is_(None))


def touch_token(engine: Engine, *, token: Token, now: float) -> None:
    """Record the token's use, at most once per LAST_USED_GRAIN_S (the guard is in SQL too,
    so concurrent requests write once)."""
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_GRAIN_S:
        return
    with write_session(engine) as session:
        session.execute(
            update(Token)
            .where(
                TOKEN.id == token.id,
                or_(TOKEN.last_used_at.is_(None), TOKEN.last_used_at <= now - LAST_USED_GRAIN_S),
            )
            .values(last_used_at=now)
        )
        session.commit()


def list_tokens(session: Session) -> list[Token]:
    """All tokens, revoked ones too, oldest first."""
    return list(session.execute(select(Token).order_by(TOKEN.created_at, TOKEN.id)).scalars())


def revoke_token(session: Session, *, name: str) -> list[Token]:
    """Revoke every live token named `name` (a re-created token shares its name with the old)."""
    rows = list(
        session.execute(
            select(Token).where(TOKEN.name == name, TOKEN.revoked_at.is_(None))
        ).scalars()
    )
    if not rows:
        raise UnknownToken(f"no live token named {name[:130]!r}")
    now = time.time()
    for row in rows:
        row.revoked_at = now
        row.revoked = True
        session.add(row)
    session.commit()
    return rows


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


def session_token(session: Session, *, sid: str, now: float) -> Token | None:
    """The live person's token behind a dashboard session, or None (expired, revoked)."""
    row = session.get(LoginSession, digest(sid))
    if row is None or row.expires_at < now:
        return None
    tok = session.get(Token, row.token_id)
    if tok is None or tok.revoked_at is not None or tok.role not in PEOPLE:
        return None
    return tok


def find_session(session: Session, *, sid: str, now: float) -> LoginSession | None:
    """The live session row (see `session_token` for who is behind it)."""
    if session_token(session, sid=sid, now=now) is None:
        return None
    return session.get(LoginSession, digest(sid))


def close_session(session: Session, *, sid: str) -> None:
    row = session.get(LoginSession, digest(sid))
    if row is not None:
        session.delete(row)
        session.commit()
