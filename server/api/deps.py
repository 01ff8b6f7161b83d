"""Dependencies shared by the routes: the session, the caller, the common filters."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from server.analytics import Filters
from server.settings import Settings
from server.tokens import find_session, find_token

COOKIE = "nps_session"
bearer = HTTPBearer(auto_error=False, description="A gateway or operator token")


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _by_token(session: Session, creds: HTTPAuthorizationCredentials | None, role: str) -> Caller:
    if creds is None:
        raise _unauthorized(f"missing token: send 'Authorization: Bearer <{role} token>'")
    tok = find_token(session, token=creds.credentials)
    if tok is None:
        raise _unauthorized("unknown or revoked token")
    if tok.role != role:
        raise _unauthorized(f"a {tok.role} token cannot be used here; this needs a {role} token")
    return Caller(tok.name, tok.role)


def gateway_caller(session: SessionDep, creds: Credentials) -> Caller:
    return _by_token(session, creds, "gateway")


def operator_caller(request: Request, session: SessionDep, creds: Credentials) -> Caller:
    sid = request.cookies.get(COOKIE)
    if creds is None and sid:
        row = find_session(session, sid=sid, now=time.time())
        if row is None:
            raise _unauthorized("session expired or logged out: log in again")
        return Caller(row.name, "operator")
    return _by_token(session, creds, "operator")


GatewayDep = Annotated[Caller, Depends(gateway_caller)]
OperatorDep = Annotated[Caller, Depends(operator_caller)]


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
) -> Filters:
    return Filters(
        lo=parse_time("from", from_), hi=parse_time("to", to),
        site=site, device=device, fw=fw, prompt=prompt, trigger=trigger,
    )  # fmt: skip


FiltersDep = Annotated[Filters, Depends(filters)]
