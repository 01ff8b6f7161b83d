"""`/api/v1/session`: dashboard login with a person's token, or with an account's
e-mail and password (server/people/), kept in an HttpOnly cookie.

Failed logins are limited per client address (server/api/login_limit.py); the
cookie is Secure whenever the browser reached us over HTTPS (server/api/origin.py).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, model_validator

from server.api.deps import COOKIE, SessionDep, SettingsDep, ViewerDep
from server.api.login_limit import LoginLimiter, limit_key, retry_after
from server.api.origin import client_address, request_scheme
from server.db.engine import write_session, writing
from server.identity.tokens import PEOPLE, close_session, find_token, open_session
from server.metrics import Metrics
from server.people.accounts import authenticate
from server.schemas import Message

router = APIRouter(prefix="/api/v1/session", tags=["session"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "not a person's token, or not logged in"},
}
LOGIN_ERRORS: dict[int | str, dict[str, Any]] = ERRORS | {
    403: {"model": Message, "description": "posted from another site's page (CSRF)"},
    429: {
        "model": Message,
        "description": "too many failed logins from this address: see Retry-After",
        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    },
}


class Login(BaseModel):
    """A token, or an e-mail and a password."""

    token: str | None = Field(default=None, min_length=1, max_length=256, examples=["npso_..."])
    email: str | None = Field(default=None, min_length=3, max_length=254,
                              examples=["maria@example.com"])  # fmt: skip
    password: str | None = Field(default=None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_way(self) -> Login:
        if (self.token is None) == (self.email is None or self.password is None):
            raise ValueError("send either a token, or an e-mail and a password")
        return self


class Who(BaseModel):
    """Who is logged in; the dashboard shows only what `role` may do, for `site` if set."""

    name: str = Field(examples=["alice"])
    role: Literal["viewer", "operator", "admin"] = Field(examples=["operator"])
    site: str | None = Field(description="the one site this person may see; null: all")


@router.post(
    "",
    response_model=Who,
    responses=LOGIN_ERRORS,
    summary="Log in: sets the nps_session cookie",
)
def login(
    body: Login, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> Who:
    limiter: LoginLimiter = request.app.state.login_limiter
    metrics: Metrics = request.app.state.metrics
    key = limit_key(client_address(request, settings))
    now = time.time()
    wait = limiter.reserve(key, now=now)  # counts this try as failed until it succeeds
    if wait > 0:
        metrics.logins_throttled.inc()
        raise HTTPException(
            429,
            f"too many failed logins from {key} ({limiter.max_failures} in"
            f" {limiter.window_s:g} s): try again in {retry_after(wait)} s",
            headers={"Retry-After": retry_after(wait)},
        )
    if body.token is not None:
        tok = find_token(session, token=body.token)
        if tok is None or tok.role not in PEOPLE:
            metrics.logins_failed.labels("unknown" if tok is None else "role").inc()
            raise HTTPException(401, "not a valid token of a person (viewer, operator or admin)")
    else:
        assert body.email is not None and body.password is not None
        tok = authenticate(session, email=body.email, password=body.password)
        if tok is None:
            metrics.logins_failed.labels("password").inc()
            raise HTTPException(401, "wrong e-mail or password, or the account is disabled")
    limiter.forgive(key, now=now)
    with write_session(request.app.state.engine) as writer:  # queued with other writers
        sid = open_session(writer, token=tok, ttl_s=settings.session_ttl_s, now=now)
    response.set_cookie(
        COOKIE, sid, max_age=settings.session_ttl_s, httponly=True, samesite="strict", path="/",
        secure=settings.cookie_secure or request_scheme(request, settings) == "https",
    )  # fmt: skip
    return Who(name=tok.name, role=tok.role, site=tok.site)  # type: ignore[arg-type]


@router.get("", response_model=Who, responses=ERRORS, summary="Who is logged in")
def whoami(caller: ViewerDep) -> Who:
    return Who(name=caller.name, role=caller.role, site=caller.site)  # type: ignore[arg-type]


class LoggedOut(BaseModel):
    ok: bool = True


@router.delete("", response_model=LoggedOut, summary="Log out: clears the cookie")
def logout(request: Request, response: Response, session: SessionDep) -> LoggedOut:
    sid = request.cookies.get(COOKIE)
    if sid:
        with writing(session):  # queued with other writers (server/db/engine.py)
            close_session(session, sid=sid)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return LoggedOut()
