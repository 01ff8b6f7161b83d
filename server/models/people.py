"""People: accounts that log in with an e-mail and a password, and the one-time links
(invitation, password reset) that reach them by e-mail."""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import Field, SQLModel


class LinkPurpose(StrEnum):
    INVITE = "invite"
    RESET = "reset"


class Person(SQLModel, table=True):
    """A person's account. Its role and site live on its own token row (`token_id`),
    so a session opened with a password is checked exactly like one opened with a
    token, and disabling the person revokes that token."""

    __tablename__ = "person"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    name: str = Field(max_length=128)
    password_hash: str | None = Field(default=None, max_length=255)  # None: invited, not joined
    token_id: int = Field(foreign_key="token.id", ondelete="CASCADE")
    notify: bool = False  # an e-mail per case change
    digest: bool = False  # the daily digest
    created_at: float
    disabled_at: float | None = None


class PersonLink(SQLModel, table=True):
    """An invitation or reset link: stored as the SHA-256 of its secret, used once, expiring."""

    __tablename__ = "person_link"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", ondelete="CASCADE", index=True)
    purpose: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: float
    expires_at: float
    used_at: float | None = None


class PersonPublic(SQLModel):
    id: int
    email: str
    name: str
    role: str
    site: str | None
    notify: bool
    digest: bool
    joined: bool
    created_at: float
    disabled_at: float | None
