"""Tokens (stored as SHA-256 hashes, never in clear) and dashboard login sessions."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Token(SQLModel, table=True):
    __tablename__ = "token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: float
    revoked: bool = False


class LoginSession(SQLModel, table=True):
    __tablename__ = "login_session"

    session_hash: str = Field(primary_key=True, max_length=64)
    token_id: int = Field(foreign_key="token.id", ondelete="CASCADE")
    name: str = Field(max_length=128)
    expires_at: float
