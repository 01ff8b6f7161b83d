"""Telling a case's changes beyond the dashboard: every change (opened, acknowledged,
assigned, commented, closed, escalated) to the webhooks, and by e-mail to the people
who asked for it (`Person.notify`) and may see the case's site."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from server.mail import messages
from server.mail.outbox import Outbox
from server.people.accounts import recipients
from server.settings import Settings


class CaseNotifier:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        webhook: Callable[[Mapping[str, Any]], None],
        outbox: Outbox,
    ) -> None:
        self.engine = engine
        self.base_url = settings.public_url
        self.webhook = webhook
        self.outbox = outbox

    def opened(self, alert: Mapping[str, Any]) -> None:
        """A new case (the bus's webhook hook, after its commit)."""
        self.changed([alert], "opened", None)

    def changed(self, cases: Sequence[Mapping[str, Any]], event: str, by: str | None) -> None:
        for case in cases:
            self.webhook({**case, "event": event, "by": by})
        if cases:
            self.outbox.put(lambda: self._mails(list(cases), event, by))

    def _mails(
        self, cases: list[Mapping[str, Any]], event: str, by: str | None
    ) -> list[EmailMessage]:
        """One e-mail per person who wants it, with the cases of the sites they see."""
        wanted: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        with Session(self.engine) as session:
            by_site: dict[str | None, list[str]] = {}
            for case in cases:
                site = case.get("site")
                if site not in by_site:
                    by_site[site] = recipients(session, site=site, want="notify")
                for email in by_site[site]:
                    if email != by:  # nobody is told what they did themselves
                        wanted[email].append(case)
        return [
            messages.case_change([email], mine, event, by, self.base_url)
            for email, mine in sorted(wanted.items())
        ]
