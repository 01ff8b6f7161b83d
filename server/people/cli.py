"""`nps-edge user add|list|disable` (accounts, for the first admin and for scripts) and
`nps-edge mail digest` (the daily digest, from cron or a systemd timer)."""

from __future__ import annotations

import secrets
import sys
import time
from typing import Annotated

import typer

from server.cli import DbOption, JsonOption, _database, _listing, _when
from server.settings import Settings

EmailOption = Annotated[str, typer.Option(help="the person's e-mail", envvar="NPS_EDGE_EMAIL")]


def _password(stdin: bool) -> tuple[str, bool]:
    """(password, made here): read from stdin (scripts), asked on a terminal, else made."""
    if stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if sys.stdin.isatty():
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True), False
    return secrets.token_urlsafe(18), True


def user_add(
    email: EmailOption,
    role: Annotated[
        str | None,
        typer.Option(help="viewer, operator or admin (default: admin for the first account)"),
    ] = None,
    site: Annotated[str | None, typer.Option(help="limit the person to this site")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin's first line")
    ] = False,
    db: DbOption = None,
) -> None:
    """Add an account with a password. Without --password-stdin and without a terminal,
    a password is made and printed on stdout (the only time it is shown)."""
    from server.people.accounts import add_person, list_people

    password, made = _password(password_stdin)
    with _database("user add", db) as session:
        if role is None:
            role = "admin" if not list_people(session) else "viewer"
        person = add_person(session, email=email, role=role, site=site, password=password)
    typer.echo(f"added {person.email} ({role}{f', site {site}' if site else ''})", err=True)
    if made:
        typer.echo(password)


def user_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every account: e-mail, role, site, joined, e-mails wanted, disabled."""
    from server.people.accounts import list_people

    with _database("user list", db) as session:
        rows = list_people(session)
    _listing(
        rows, as_json, ["EMAIL", "ROLE", "SITE", "JOINED", "MAIL", "DISABLED"],
        lambda p: [p.email, p.role, p.site or "*", "yes" if p.joined else "invited",
                   ",".join(w for w, on in (("changes", p.notify), ("digest", p.digest)) if on)
                   or "-", _when(p.disabled_at)],
    )  # fmt: skip


def user_disable(email: EmailOption, db: DbOption = None) -> None:
    """Disable an account: its sessions end at once, its links stop working."""
    from server.people.accounts import change_person

    with _database("user disable", db) as session:
        person = change_person(session, email=email, disabled=True)
    typer.echo(f"disabled {person.email}", err=True)


def mail_digest(db: DbOption = None) -> None:
    """E-mail the daily digest to each person who asked for it (their sites' cases)."""
    from server.mail.outbox import Outbox
    from server.mail.smtp import SmtpMailer
    from server.metrics import Metrics
    from server.people.digest import digests

    settings = Settings(db=db) if db else Settings()
    mailer = SmtpMailer(settings)
    if not mailer.enabled:
        typer.echo("nps-edge mail digest: no SMTP server (set NPS_EDGE_SMTP_HOST)", err=True)
        raise typer.Exit(2)
    outbox = Outbox(mailer, Metrics())
    with _database("mail digest", db) as session:
        messages = digests(session, settings=settings, now=time.time())
    sent = sum(outbox.send(m) for m in messages)
    typer.echo(f"sent {sent} of {len(messages)} digests", err=True)
    if sent < len(messages):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    user = typer.Typer(help="People's accounts (e-mail and password).", no_args_is_help=True)
    user.command("add", help="Add an account; the first one is an admin.")(user_add)
    user.command("list", help="List accounts.")(user_list)
    user.command("disable", help="Disable an account; its sessions end at once.")(user_disable)
    app.add_typer(user, name="user")
    mail = typer.Typer(help="E-mail: the daily digest.", no_args_is_help=True)
    mail.command("digest", help="E-mail the daily digest to the people who want it.")(mail_digest)
    app.add_typer(mail, name="mail")
