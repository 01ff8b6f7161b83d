"""Dependencies shared by the routes: the session, the caller, the common filters."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from contract.protocol import DEVICE_ID_PATTERN, Role, Survey
from server.analytics.figures import Filters
from server.identity.tokens import PEOPLE, find_token, session_token, touch_token
from server.models import Token
from server.settings import Settings

COOKIE = "nps_session"
bearer = HTTPBearer(auto_error=False, description="A gateway, viewer, operator or admin token")


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, examples=["nps-a1b2c3"])]


@dataclass(frozen=True)
class Caller:
    """Who is calling: a token's name and role, and the site it is limited to (None: all)."""

    name: str
    role: str
    site: str | None = None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _touch(request: Request, session: Session, tok: Token) -> None:
    """Record the token's use (on its own connection), then end this session's read
    transaction: on SQLite a route that writes later would otherwise upgrade a
    snapshot older than that write, which fails at once with "database is locked"."""
    touch_token(request.app.state.engine, token=tok, now=time.time())
    session.commit()


def _by_token(
    request: Request, session: Session, creds: HTTPAuthorizationCredentials | None,
    roles: tuple[str, ...],
) -> Caller:  # fmt: skip
    if creds is None:
        raise _unauthorized(f"missing token: send 'Authorization: Bearer <{roles[0]} token>'")
    tok = find_token(session, token=creds.credentials)
    if tok is None:
        raise _unauthorized("unknown or revoked token")
    if tok.role not in roles:
        raise _unauthorized(
            f"a {tok.role} token cannot be used here; this needs a {' or '.join(roles)} token"
        )
    if tok.role == "gateway" and tok.site is None:
        raise _unauthorized(
            f"gateway token {tok.name!r} has no site (made before tokens were bound to sites):"
            " re-create it with 'nps-edge token create --role gateway --site SITE --name NAME'"
        )
    _touch(request, session, tok)
    return Caller(tok.name, tok.role, tok.site)


def _person(
    request: Request, session: Session, creds: HTTPAuthorizationCredentials | None,
    roles: tuple[str, ...],
) -> Caller:  # fmt: skip
    """A person by bearer token, or by the dashboard's session cookie when no token is sent."""
    sid = request.cookies.get(COOKIE)
    if creds is None and sid:
        tok = session_token(session, sid=sid, now=time.time())
        if tok is None:
            raise _unauthorized("session expired, logged out or revoked: log in again")
        _touch(request, session, tok)
        caller = Caller(tok.name, tok.role, tok.site)
    else:
        caller = _by_token(request, session, creds, PEOPLE)
    if caller.role not in roles:
        # Known, but not allowed: 403 (RFC 9110 section 15.5.4), not 401.
        raise HTTPException(403, f"a {caller.role} cannot do this; it needs {' or '.join(roles)}")
    return caller


def gateway_caller(request: Request, session: SessionDep, creds: Credentials) -> Caller:
    return _by_token(request, session, creds, ("gateway",))


def viewer_caller(request: Request, session: SessionDep, creds: Credentials) -> Caller:
    return _person(request, session, creds, ("viewer", "operator", "admin"))


def operator_caller(request: Request, session: SessionDep, creds: Credentials) -> Caller:
    return _person(request, session, creds, ("operator", "admin"))


def admin_caller(request: Request, session: SessionDep, creds: Credentials) -> Caller:
    return _person(request, session, creds, ("admin",))


GatewayDep = Annotated[Caller, Depends(gateway_caller)]
ViewerDep = Annotated[Caller, Depends(viewer_caller)]
OperatorDep = Annotated[Caller, Depends(operator_caller)]
AdminDep = Annotated[Caller, Depends(admin_caller)]


def parse_time(name: str, value: str | None) -> float | None:
    """ISO 8601 (UTC when no offset is given) or unix seconds."""
    if value is None or value == "":
        return None
    try:
        t = float(value)
    except ValueError:
        try:
            d = dt.datetime.fromisoformat(value)
        except ValueError:
            raise HTTPException(
                422, f"{name}: not ISO 8601 or unix seconds: {value[:40]!r}"
            ) from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        return d.timestamp()
    if t != t or abs(t) > 1e11:
        raise HTTPException(422, f"{name}: unix seconds out of range: {value[:40]!r}")
    return t


def filters(
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="start, inclusive: ISO 8601 or unix seconds",
            examples=["2026-11-01T00:00:00Z"],
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(description="end, exclusive: ISO 8601 or unix seconds", examples=["1795000000"]),
    ] = None,
    site: Annotated[str | None, Query(max_length=64, examples=["store-12"])] = None,
    device: Annotated[str | None, Query(max_length=64, examples=["nps-a1b2c3"])] = None,
    fw: Annotated[str | None, Query(max_length=64, examples=["1.0.0"])] = None,
    prompt: Annotated[str | None, Query(max_length=32, examples=["nps"])] = None,
    trigger: Annotated[
        str | None, Query(max_length=64, description="trigger kind", examples=["cycle_complete"])
    ] = None,
    survey: Annotated[
        Survey | None,
        Query(description="figures without it count `transactional` answers only"),
    ] = None,
    role: Annotated[Role | None, Query(description="who answered")] = None,
) -> Filters:
    return Filters(
        lo=parse_time("from", from_), hi=parse_time("to", to),
        site=site, device=device, fw=fw, prompt=prompt, trigger=trigger, survey=survey, role=role,
    )  # fmt: skip


FiltersDep = Annotated[Filters, Depends(filters)]
