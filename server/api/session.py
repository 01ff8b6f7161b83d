"""`/api/v1/session`: dashboard login with an operator token, kept in an HttpOnly cookie."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from server.api.deps import COOKIE, OperatorDep, SessionDep, SettingsDep
from server.schemas import Message
from server.tokens import close_session, find_token, open_session

router = APIRouter(prefix="/api/v1/session", tags=["session"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "not an operator token, or not logged in"}
}


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=256, examples=["npso_..."])


@router.post("", responses=ERRORS, summary="Log in: sets the nps_session cookie")
def login(
    body: Login, response: Response, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    tok = find_token(session, token=body.token)
    if tok is None or tok.role != "operator":
        raise HTTPException(401, "not a valid operator token")
    sid = open_session(session, token=tok, ttl_s=settings.session_ttl_s, now=time.time())
    response.set_cookie(
        COOKIE, sid, max_age=settings.session_ttl_s, httponly=True, samesite="strict",
        secure=settings.cookie_secure, path="/",
    )  # fmt: skip
    return {"name": tok.name, "role": "operator"}


@router.get("", responses=ERRORS, summary="Who is logged in")
def whoami(caller: OperatorDep) -> dict[str, str]:
    return {"name": caller.name, "role": caller.role}


@router.delete("", summary="Log out: clears the cookie")
def logout(request: Request, response: Response, session: SessionDep) -> dict[str, bool]:
    sid = request.cookies.get(COOKIE)
    if sid:
        close_session(session, sid=sid)
    response.delete_cookie(COOKIE, path="/")
    return {"ok": True}
