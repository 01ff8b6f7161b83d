"""People's accounts, stored: add, invite, log in, reset, change, disable (keyword-only).

A person's role and site are those of a token row made for them (named by their
e-mail, its secret thrown away): the dashboard session, the role checks and the
site limit then work the same for a password login as for a token login, and
disabling a person revokes that token, which ends their sessions at once.
"""

from __future__ import annotations

import re
import secrets
import time

from sqlalchemy import select, update
from sqlmodel import Session

from server.db.sql import table_of
from server.identity.tokens import PEOPLE, SITE_RE, digest
from server.models import Person, PersonLink, Token
from server.models.people import LinkPurpose, PersonPublic
from server.people.passwords import hash_password, problem, verify

P = table_of(Person).c
L = table_of(PersonLink).c
T = table_of(Token).c
# Deliberately plain (RFC 5321 allows more, and a mail server is the real check):
# no spaces, no control characters, one @, a dot in the domain.
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
INVITE_TTL_S = 7 * 24 * 3600.0
RESET_TTL_S = 3600.0


class PersonError(ValueError):
    """Base of the account errors: bad input the caller can correct."""


class BadEmail(PersonError):
    pass


class BadPassword(PersonError):
    pass


class BadRole(PersonError):
    pass


class Taken(PersonError):
    pass


class UnknownPerson(PersonError):
    pass


class BadLink(PersonError):
    """An invitation or reset link that is unknown or of another kind."""


class SpentLink(BadLink):
    """A link already used, or expired: it was real once (410 Gone)."""


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise BadEmail(f"not an e-mail address: {email[:80]!r}")
    return email


def _check_role(role: str, site: str | None) -> None:
    if role not in PEOPLE:
        raise BadRole(f"role must be one of {', '.join(PEOPLE)}, got {role[:20]!r}")
    if site is not None and not SITE_RE.match(site):
        raise BadRole(f"site {site[:70]!r} is not a site name")


def _check_password(password: str) -> None:
    reason = problem(password)
    if reason is not None:
        raise BadPassword(reason)


def find_person(session: Session, *, email: str) -> Person | None:
    try:
        email = normal_email(email)
    except BadEmail:
        return None
    return session.execute(select(Person).where(P.email == email)).scalar_one_or_none()


def add_person(
    session: Session,
    *,
    email: str,
    role: str,
    site: str | None = None,
    name: str | None = None,
    password: str | None = None,
    now: float | None = None,
) -> Person:
    """A new account; without a password it cannot log in until invited and joined."""
    email = normal_email(email)
    _check_role(role, site)
    if password is not None:
        _check_password(password)
    if find_person(session, email=email) is not None:
        raise Taken(f"{email} already has an account")
    now = time.time() if now is None else now
    token = Token(
        name=email,
        role=role,
        site=site,
        created_at=now,
        token_hash=digest(secrets.token_urlsafe(32)),
    )
    session.add(token)
    session.flush()
    assert token.id is not None
    person = Person(
        email=email,
        name=(name or email.split("@")[0])[:128],
        token_id=token.id,
        password_hash=None if password is None else hash_password(password),
        created_at=now,
    )
    session.add(person)
    session.commit()
    return person


def make_link(
    session: Session, *, person: Person, purpose: LinkPurpose, ttl_s: float, now: float
) -> str:
    """A one-time link secret for `person`; only its SHA-256 is stored. Earlier unused
    links of the same purpose die with it (the newest e-mail is the one that works)."""
    assert person.id is not None
    session.execute(
        update(PersonLink)
        .where(L.person_id == person.id, L.purpose == purpose, L.used_at.is_(None))
        .values(used_at=now)
    )
    secret = secrets.token_urlsafe(32)
    session.add(
        PersonLink(
            person_id=person.id,
            purpose=purpose,
            token_hash=digest(secret),
            created_at=now,
            expires_at=now + ttl_s,
        )
    )
    session.commit()
    return secret


def invite(
    session: Session, *, email: str, role: str, site: str | None = None, now: float
) -> tuple[Person, str]:
    """An account without a password and its invitation link secret."""
    person = add_person(session, email=email, role=role, site=site, now=now)
    return person, make_link(
        session, person=person, purpose=LinkPurpose.INVITE, ttl_s=INVITE_TTL_S, now=now
    )


def reset_link(session: Session, *, email: str, now: float) -> tuple[Person, str] | None:
    """A reset link for a live, joined account; None otherwise (the caller says nothing)."""
    person = find_person(session, email=email)
    if person is None or person.disabled_at is not None or person.password_hash is None:
        return None
    return person, make_link(
        session, person=person, purpose=LinkPurpose.RESET, ttl_s=RESET_TTL_S, now=now
    )


def use_link(
    session: Session, *, secret: str, purpose: LinkPurpose, password: str, now: float
) -> Person:
    """Set the password through a link, which is used up; BadLink if it is unknown,
    used, expired, of the other purpose, or its person is disabled."""
    _check_password(password)
    link = session.execute(
        select(PersonLink).where(L.token_hash == digest(secret)).with_for_update()
    ).scalar_one_or_none()
    if link is None or link.purpose != purpose:
        raise BadLink(f"this {purpose} link is not valid")
    if link.used_at is not None:
        raise SpentLink(f"this {purpose} link was already used")
    if link.expires_at <= now:
        raise SpentLink(f"this {purpose} link has expired: ask for a new one")
    person = session.get(Person, link.person_id)
    if person is None or person.disabled_at is not None:
        raise BadLink("this account is disabled")
    link.used_at = now
    person.password_hash = hash_password(password)
    session.add_all([link, person])
    session.commit()
    return person


def authenticate(session: Session, *, email: str, password: str) -> Token | None:
    """The live token behind a person's password login, or None (unknown e-mail, wrong
    password, not joined, disabled): one answer for all, in about the same time."""
    person = find_person(session, email=email)
    stored = None if person is None else person.password_hash
    if not verify(stored, password[:1024]) or person is None or person.disabled_at is not None:
        return None
    token = session.get(Token, person.token_id)
    if token is None or token.revoked_at is not None:
        return None
    return token


def public(session: Session, people: list[Person]) -> list[PersonPublic]:
    tokens = {
        t.id: t
        for t in session.execute(
            select(Token).where(T.id.in_([p.token_id for p in people]))
        ).scalars()
    }
    return [
        PersonPublic(
            id=p.id or 0,
            email=p.email,
            name=p.name,
            role=tokens[p.token_id].role,
            site=tokens[p.token_id].site,
            notify=p.notify,
            digest=p.digest,
            joined=p.password_hash is not None,
            created_at=p.created_at,
            disabled_at=p.disabled_at,
        )
        for p in people
    ]


def list_people(session: Session, *, live_only: bool = False) -> list[PersonPublic]:
    stmt = select(Person).order_by(P.email)
    if live_only:
        stmt = stmt.where(P.disabled_at.is_(None))
    return public(session, list(session.execute(stmt).scalars()))


def change_person(
    session: Session,
    *,
    email: str,
    role: str | None = None,
    site: str | None = None,
    all_sites: bool = False,
    notify: bool | None = None,
    digest_: bool | None = None,
    disabled: bool | None = None,
    now: float | None = None,
) -> Person:
    """Change an account; `all_sites` lifts a site limit. Disabling revokes its token."""
    person = find_person(session, email=email)
    if person is None:
        raise UnknownPerson(f"no account for {email[:80]!r}")
    token = session.get(Token, person.token_id)
    assert token is not None
    _check_role(role or token.role, site)
    now = time.time() if now is None else now
    if role is not None:
        token.role = role
    if site is not None or all_sites:
        token.site = site
    if notify is not None:
        person.notify = notify
    if digest_ is not None:
        person.digest = digest_
    if disabled is True and person.disabled_at is None:
        person.disabled_at = token.revoked_at = now
        token.revoked = True
    elif disabled is False and person.disabled_at is not None:
        person.disabled_at = token.revoked_at = None
        token.revoked = False
    session.add_all([person, token])
    session.commit()
    return person


def subscribers(session: Session, *, want: str) -> list[tuple[str, str | None]]:
    """(e-mail, site limit) of the live, joined people who asked for `want` ("notify":
    every case change, or "digest")."""
    column = P.notify if want == "notify" else P.digest
    rows = session.execute(
        select(P.email, T.site)
        .join(Token, T.id == P.token_id)
        .where(column.is_(True), P.disabled_at.is_(None), P.password_hash.is_not(None))
        .order_by(P.email)
    ).all()
    return [(email, site) for email, site in rows]


def recipients(session: Session, *, site: str | None, want: str) -> list[str]:
    """E-mails of the `subscribers` who may see `site`."""
    return [e for e, limit in subscribers(session, want=want) if limit is None or limit == site]
