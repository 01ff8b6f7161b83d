"""Tokens (stored as SHA-256 hashes, never in clear), dashboard login sessions, login failures."""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class Token(SQLModel, table=True):
    """A gateway's or a person's token; `site` binds a gateway (and may limit a person)."""

    __tablename__ = "token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: float
    # `revoked` is kept (and set together with `revoked_at`) so v1 readers still work.
    revoked: bool = False
    site: str | None = Field(default=None, max_length=64)
    last_used_at: float | None = None
    revoked_at: float | None = None


class TokenPublic(SQLModel):
    """A token as `token list` shows it: never the secret or its hash."""

    name: str
    role: str
    site: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class LoginSession(SQLModel, table=True):
    __tablename__ = "login_session"

    session_hash: str = Field(primary_key=True, max_length=64)
    token_id: int = Field(foreign_key="token.id", ondelete="CASCADE")
    name: str = Field(max_length=128)
    expires_at: float


class LoginFailure(SQLModel, table=True):
    """One failed login (key: what the rate limit counts by, e.g. the client address)."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=128)
    at: float
