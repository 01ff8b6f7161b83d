"""A comment from a phone (server/voice/): joined to its answer by the event id."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

COMMENT_CHARS = 1000
CONTACT_CHARS = 200


class VoiceComment(SQLModel, table=True):
    """One per answer (the primary key makes the link work once). `held` while its
    feedback event has not arrived yet; joined (alert comment added) when it does."""

    __tablename__ = "voice_comment"
    __table_args__ = (Index("ix_voice_comment_held", "held"),)

    event_id: str = Field(primary_key=True, max_length=96)
    device: str = Field(max_length=64)
    seq: int = Field(sa_type=BigInteger)
    text: str = Field(max_length=COMMENT_CHARS)
    contact: str | None = Field(default=None, max_length=CONTACT_CHARS)
    sentiment: float = Field(description="VADER compound score, -1 (negative) .. 1 (positive)")
    received_at: float
    held: bool = True
    alert_id: int | None = None
