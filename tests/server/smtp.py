"""A real SMTP server for the tests: aiosmtpd on a free port, keeping what it receives."""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from nps_edge.processes import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """`with SmtpSink() as smtp:` a server at smtp.port; `smtp.messages` as received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()

    def wait_for(self, n: int) -> list[Message]:
        wait_until(lambda: len(self.messages) >= n, what=f"{n} e-mails", interval=0.01)
        return self.messages

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]

    def wait_to(self, address: str, n: int = 1) -> list[Message]:
        """The messages to `address`, once there are `n` (bounded wait)."""
        wait_until(
            lambda: len(self.to(address)) >= n, what=f"{n} e-mails to {address}", interval=0.01
        )
        return self.to(address)


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()
