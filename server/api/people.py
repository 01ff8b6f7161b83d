"""`/api/v1/people`: accounts. Admins invite, change and disable people (a site-limited
admin only within their site); operators read the list (the owner picker); anyone may
accept an invitation, ask for a reset link and use it (each link works once, expires,
and is stored hashed); asking for a reset says nothing about whether the account exists,
and counts against the address's login limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from server.api.deps import AdminDep, OperatorDep, SessionDep, SettingsDep
from server.api.login_limit import LoginLimiter, limit_key, retry_after
from server.api.origin import client_address
from server.api.scope import check_site
from server.db.engine import writing
from server.mail import messages
from server.mail.outbox import Outbox
from server.metrics import Metrics
from server.models import Person
from server.models.people import LinkPurpose, PersonPublic
from server.people.accounts import (
    BadLink,
    PersonError,
    change_person,
    find_person,
    invite,
    list_people,
    public,
    reset_link,
    use_link,
)
from server.schemas import Message
from server.settings import Settings

router = APIRouter(prefix="/api/v1/people", tags=["people"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "an unknown link"},
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site does not allow this"},
    404: {"model": Message, "description": "no such person"},
    409: {"model": Message, "description": "the e-mail already has an account"},
    410: {"model": Message, "description": "the link was used or has expired"},
    422: {"model": Message, "description": "a bad parameter or body"},
    429: {"model": Message, "description": "too many tries from this address"},
}
Email = Annotated[str, Field(min_length=3, max_length=254, examples=["maria@example.com"])]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
Secret = Annotated[str, Field(min_length=1, max_length=256)]
Role = Annotated[str, Field(pattern="^(viewer|operator|admin)$", examples=["operator"])]
Site = Annotated[str | None, Field(default=None, max_length=64, examples=["store-3"])]


class Invite(BaseModel):
    email: Email
    role: Role
    site: Site = None


class Invited(BaseModel):
    person: PersonPublic
    link: str = Field(description="the invitation link, also e-mailed when SMTP is set up")
    mailed: bool


class Change(BaseModel):
    role: Role | None = None
    site: Site = None
    all_sites: bool = Field(default=False, description="lift the site limit")
    disabled: bool | None = None
    notify: bool | None = None
    digest: bool | None = None


class SetPassword(BaseModel):
    token: Secret
    password: Password


class ResetRequest(BaseModel):
    email: Email


def _refuse(metrics: Metrics, err: PersonError) -> HTTPException:
    reason = type(err).__name__
    metrics.account_refusals.labels(reason=reason).inc()
    # SpentLink: the link was real once (410 Gone); BadLink: never was.
    status = {"Taken": 409, "UnknownPerson": 404, "SpentLink": 410, "BadLink": 400}
    return HTTPException(status.get(reason, 422), str(err))


def _link(settings: Settings, purpose: LinkPurpose, secret: str) -> str:
    """The link to the login page; the secret rides in the fragment, which browsers
    never send to a server (no access log, no Referer holds it)."""
    return f"{settings.public_url.rstrip('/')}/login#{purpose}={secret}"


def _mail(request: Request, email: str, purpose: LinkPurpose, link: str, role: str) -> bool:
    outbox: Outbox = request.app.state.mail
    outbox.put(messages.link(email, purpose, link, role))
    return outbox.mailer.enabled


@router.get(
    "",
    response_model=list[PersonPublic],
    responses=ERRORS,
    summary="People (operators: the live ones, to pick an owner)",
)
def people(session: SessionDep, caller: OperatorDep) -> Any:
    found = list_people(session, live_only=caller.role != "admin")
    return [p for p in found if caller.site is None or p.site in (None, caller.site)]


@router.post("", response_model=Invited, responses=ERRORS, summary="Invite a person by e-mail")
def invite_person(
    body: Invite, request: Request, session: SessionDep, caller: AdminDep, settings: SettingsDep
) -> Invited:
    check_site(caller, body.site, f"a person for {body.site or 'every site'}")
    try:
        with writing(session):
            person, secret = invite(
                session, email=body.email, role=body.role, site=body.site, now=time.time()
            )
    except PersonError as err:
        raise _refuse(request.app.state.metrics, err) from None
    link = _link(settings, LinkPurpose.INVITE, secret)
    mailed = _mail(request, person.email, LinkPurpose.INVITE, link, body.role)
    return Invited(person=public(session, [person])[0], link=link, mailed=mailed)


@router.patch(
    "/{person_id}",
    response_model=PersonPublic,
    responses=ERRORS,
    summary="Change a person's role, site, e-mails, or disable them",
)
def change(
    person_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: Change,
    request: Request,
    session: SessionDep,
    caller: AdminDep,
) -> Any:
    person = session.get(Person, person_id)
    if person is None:
        raise HTTPException(404, f"no person {person_id}")
    current = public(session, [person])[0]
    check_site(caller, current.site, f"{person.email} (site {current.site or 'all'})")
    if caller.site is not None and (body.all_sites or body.site not in (None, caller.site)):
        raise HTTPException(403, f"{caller.name} is limited to site {caller.site}")
    if person.email == caller.name and (body.disabled or (body.role or "admin") != "admin"):
        raise HTTPException(409, "an admin cannot disable or demote themselves")
    return _change(
        request,
        session,
        person.email,
        role=body.role,
        site=body.site,
        all_sites=body.all_sites,
        disabled=body.disabled,
        notify=body.notify,
        digest_=body.digest,
    )


def _change(request: Request, session: Session, email: str, **change: Any) -> PersonPublic:
    if find_person(session, email=email) is None:
        raise HTTPException(404, f"{email[:80]} has no account (a token has no e-mail settings)")
    try:
        with writing(session):
            person = change_person(session, email=email, **change)
    except PersonError as err:
        raise _refuse(request.app.state.metrics, err) from None
    return public(session, [person])[0]


def _throttle(request: Request, settings: Settings) -> Callable[[], None]:
    """Each try counts against the address like a failed login (server/api/login_limit.py);
    what it returns takes the try back (a link that worked)."""
    limiter: LoginLimiter = request.app.state.login_limiter
    key = limit_key(client_address(request, settings))
    now = time.time()
    wait = limiter.reserve(key, now=now)
    if wait > 0:
        request.app.state.metrics.logins_throttled.inc()
        raise HTTPException(
            429,
            f"too many tries from {key}: try again in {retry_after(wait)} s",
            headers={"Retry-After": retry_after(wait)},
        )
    return lambda: limiter.forgive(key, now=now)


def _use(
    request: Request, session: Session, settings: Settings, body: SetPassword, purpose: LinkPurpose
) -> Message:
    forgive = _throttle(request, settings)
    try:
        with writing(session):
            person = use_link(
                session, secret=body.token, purpose=purpose, password=body.password, now=time.time()
            )
    except (BadLink, PersonError) as err:
        raise _refuse(request.app.state.metrics, err) from None
    forgive()
    return Message(detail=f"password set for {person.email}: sign in with it")


@router.post(
    "/accept",
    response_model=Message,
    responses=ERRORS,
    summary="Accept an invitation: set a password (public; the link is the key)",
)
def accept(
    body: SetPassword, request: Request, session: SessionDep, settings: SettingsDep
) -> Message:
    return _use(request, session, settings, body, LinkPurpose.INVITE)


@router.post(
    "/reset",
    response_model=Message,
    responses=ERRORS,
    summary="Set a new password with a reset link (public; the link is the key)",
)
def reset(
    body: SetPassword, request: Request, session: SessionDep, settings: SettingsDep
) -> Message:
    return _use(request, session, settings, body, LinkPurpose.RESET)


@router.post(
    "/reset-request",
    response_model=Message,
    status_code=202,
    responses=ERRORS,
    summary="E-mail a reset link (public; the same answer whether or not the account exists)",
)
def reset_request(
    body: ResetRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> Message:
    _throttle(request, settings)
    with writing(session):
        found = reset_link(session, email=body.email, now=time.time())
    if found is not None:
        person, secret = found
        role = public(session, [person])[0].role
        _mail(
            request,
            person.email,
            LinkPurpose.RESET,
            _link(settings, LinkPurpose.RESET, secret),
            role,
        )
    return Message(detail="if that address has an account, a reset link is on its way")
