"""The daily digest, one per person who asked for it, of the cases of the sites they see."""

from __future__ import annotations

from email.message import EmailMessage

from sqlmodel import Session

from server.alerts.report import digest_figures
from server.mail import messages
from server.people.accounts import subscribers
from server.settings import Settings


def digests(session: Session, *, settings: Settings, now: float) -> list[EmailMessage]:
    out = []
    target_s = settings.response_target_min * 60
    for email, site in subscribers(session, want="digest"):
        summary, cases = digest_figures(session, site=site, now=now, target_s=target_s)
        top = [c.model_dump() for c in cases]
        out.append(messages.digest([email], summary, top, settings.public_url, now))
    return out
