"""Sending one message over SMTP (RFC 5321) with the standard library; STARTTLS
(RFC 3207) when the settings ask for it."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from server.settings import Settings

TIMEOUT_S = 10.0


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.sender = settings.smtp_from
        self.starttls = settings.smtp_starttls

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def send(self, message: EmailMessage) -> None:
        """Send `message` (From filled in); raises OSError or smtplib.SMTPException."""
        if not self.host:
            return
        if "From" not in message:
            message["From"] = self.sender
        with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            smtp.send_message(message)
