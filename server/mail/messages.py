"""The e-mails nps-edge sends, as `EmailMessage`s: pure, no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

WHAT = {
    "opened": "new case",
    "acknowledged": "acknowledged",
    "assigned": "assigned",
    "commented": "comment",
    "closed": "closed",
    "reopened": "reopened",
    "escalated": "overdue, escalated",
}


def _iso(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _message(to: Sequence[str], subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["To"] = ", ".join(to)
    # A header must be one line: titles come from device data.
    msg["Subject"] = " ".join(subject.split())[:200]
    msg["Message-ID"] = make_msgid(domain="nps-edge")
    msg.set_content(body)
    return msg


def case_change(
    to: Sequence[str], cases: Sequence[Mapping[str, Any]], event: str, by: str | None, base_url: str
) -> EmailMessage:
    """A change to one case, or to several at once (a bulk step), to one person."""
    what = WHAT.get(event, event)
    lines = [f"Change: {what}" + (f" by {by}" if by else ""), ""]
    for case in cases:
        lines += [
            f"Case {case['id']}: {case['title']}",
            f"  Status: {case['status']}   Owner: {case.get('assignee') or 'unassigned'}",
            f"  Site: {case.get('site') or '-'}   Device: {case.get('device') or '-'}"
            f"   Raised: {_iso(case.get('created_at'))}",
        ]
        if case.get("close_action"):
            lines.append(f"  Action taken: {case['close_action']}")
        if case.get("close_note"):
            lines.append(f"  Closing note: {case['close_note']}")
        lines.append(f"  {base_url.rstrip('/')}/alerts?case={case['id']}")
    subject = (
        f"[nps-edge] {what}: {cases[0]['title']}"
        if len(cases) == 1
        else f"[nps-edge] {len(cases)} cases {what}"
    )
    return _message(to, subject, "\n".join(lines))


def digest(
    to: Sequence[str],
    summary: Mapping[str, Any],
    cases: Sequence[Mapping[str, Any]],
    base_url: str,
    now: float,
) -> EmailMessage:
    """The daily digest: open and overdue counts, then the most urgent cases."""
    lines = [
        f"Cases on {_iso(now)[:10]}: {summary['open']} open, {summary['acknowledged']}"
        f" acknowledged, {summary['overdue']} overdue; {summary['closed_24h']} closed in 24 h.",
        "",
    ]
    for c in cases:
        flag = "OVERDUE " if c.get("overdue") else ""
        lines.append(f"- {flag}#{c['id']} {c['title']} ({c.get('assignee') or 'unassigned'})")
    if not cases:
        lines.append("No open cases.")
    lines += ["", f"{base_url.rstrip('/')}/alerts"]
    subject = f"[nps-edge] daily digest: {summary['open']} open, {summary['overdue']} overdue"
    return _message(to, subject, "\n".join(lines))


def link(to: str, purpose: str, url: str, role: str) -> EmailMessage:
    """An invitation or password reset link."""
    if purpose == "invite":
        subject = "[nps-edge] You are invited"
        body = (
            f"You are invited to the nps-edge dashboard as {role}.\n\nSet your password"
            f" within 7 days (the link works once):\n{url}\n"
        )
    else:
        subject = "[nps-edge] Reset your password"
        body = (
            f"Someone asked to reset the password of {to}.\n\nSet a new one within an hour"
            f" (the link works once):\n{url}\n\nIf it was not you, ignore this e-mail.\n"
        )
    return _message([to], subject, body)
