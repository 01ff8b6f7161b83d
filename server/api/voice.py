"""`/v/{device}/{seq}/{code}`: the phone page a device's QR code links to (no login).

Anyone with the link can reach it; the code (64 bits of an HMAC made with the
device's voice key, server/voice/keys.py) is what makes it this answer's. Every
request counts against a per-address limit first; a wrong code, a used link (409)
and an expired one (410) are told apart only once the code verifies. Pages are
HTML for a person on a phone; the statuses say what happened.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from contract.protocol import DEVICE_ID_PATTERN
from server.analytics.themes import sentiment
from server.api.login_limit import LoginLimiter, limit_key, retry_after
from server.api.origin import client_address
from server.metrics import Metrics
from server.settings import Settings
from server.voice import keys, page
from server.voice.store import LinkState, record, state

router = APIRouter(include_in_schema=False)
DEVICE = re.compile(DEVICE_ID_PATTERN)
SEQ = re.compile(r"[0-9]{1,18}")  # the contract's seq fits a BIGINT
CODE = re.compile(rf"[A-Za-z0-9_-]{{{keys.CODE_CHARS}}}")
LIMIT_PREFIX = "voice:"  # its rows share the login limiter's table, apart by key


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status, headers=page.HEADERS | (headers or {}))


class Refused(Exception):
    def __init__(self, response: HTMLResponse) -> None:
        self.response = response


# Why a request is refused -> (status, title, what the person reads).
REFUSALS = {
    "throttled": (429, "Please wait", "Too many requests from your network; try again soon."),
    "bad_code": (404, "Link not valid",
                 "This link is not valid. Please scan the code on the device again."),
    "used": (409, "Already received", "We already have a comment for this answer. Thank you!"),
    "expired": (410, "Link expired",
                "This link has expired. Thank you for your answer all the same."),
    "too_large": (413, "Too long", f"The form is larger than {page.MAX_BODY} bytes."),
}  # fmt: skip


def _refuse(metrics: Metrics, reason: str, headers: dict[str, str] | None = None) -> Refused:
    metrics.voice_refused.labels(reason=reason).inc()
    status, title, text = REFUSALS[reason]
    return Refused(_html(page.message_page(title, text), status, headers))


def _secret(request: Request) -> bytes:
    """The voice secret, read (or created) on the first phone request of this worker."""
    s: Settings = request.app.state.settings
    if getattr(request.app.state, "voice_secret", None) is None:
        request.app.state.voice_secret = keys.load_secret(keys.secret_path(s.voice_secret, s.db))
    secret: bytes = request.app.state.voice_secret
    return secret


def _admit(request: Request, device: str, seq: str, code: str) -> int:
    """The link's seq once the address is under its limit and the code verifies."""
    metrics: Metrics = request.app.state.metrics
    limiter: LoginLimiter = request.app.state.voice_limiter
    key = LIMIT_PREFIX + limit_key(client_address(request, request.app.state.settings))
    wait = limiter.reserve(key, now=time.time())
    if wait > 0:
        raise _refuse(metrics, "throttled", {"Retry-After": retry_after(wait)})
    ok = DEVICE.fullmatch(device) and SEQ.fullmatch(seq) and CODE.fullmatch(code)
    key_of = keys.device_key(_secret(request), device) if ok else b""
    if not ok or not keys.verifies(key_of, device, int(seq), code):
        raise _refuse(metrics, "bad_code")
    return int(seq)


def _check_state(request: Request, found: LinkState) -> None:
    metrics: Metrics = request.app.state.metrics
    if found is LinkState.USED:
        raise _refuse(metrics, "used")
    if found is LinkState.EXPIRED:
        raise _refuse(metrics, "expired")


def _look(request: Request, device: str, seq: str, code: str) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    n = _admit(request, device, seq, code)
    with Session(request.app.state.engine) as session:
        found = state(session, device=device, seq=n, now=time.time(), ttl_s=settings.voice_ttl_s)
    _check_state(request, found)
    return _html(page.form_page(request.url.path))


def _send(request: Request, device: str, seq: str, code: str, body: bytes) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    metrics: Metrics = request.app.state.metrics
    n = _admit(request, device, seq, code)
    try:
        sent = page.parse_form(body)
    except page.BadForm as err:
        metrics.voice_refused.labels(reason=err.reason).inc()
        return _html(page.form_page(request.url.path, error=str(err)), err.status)
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        found, row = record(
            session, device=device, seq=n, text=sent.comment, contact=sent.contact,
            sentiment=sentiment(sent.comment), now=time.time(), ttl_s=settings.voice_ttl_s,
        )  # fmt: skip
    _check_state(request, found)
    metrics.voice_comments.labels(result="held" if row is None or row.held else "stored").inc()
    return _html(page.message_page("Thank you", "Your comment has been sent to the team."))


async def _body(request: Request) -> bytes | None:
    """The request body, or None past `page.MAX_BODY` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > page.MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _answer(fn: Any, request: Request, *args: Any) -> HTMLResponse:
    try:
        response: HTMLResponse = await run_in_threadpool(fn, request, *args)
    except Refused as refused:
        return refused.response
    return response


@router.get("/v/{device}/{seq}/{code}", response_class=HTMLResponse)
async def phone_page(request: Request, device: str, seq: str, code: str) -> HTMLResponse:
    return await _answer(_look, request, device, seq, code)


@router.post("/v/{device}/{seq}/{code}", response_class=HTMLResponse)
async def phone_comment(request: Request, device: str, seq: str, code: str) -> HTMLResponse:
    body = await _body(request)
    if body is None:
        metrics: Metrics = request.app.state.metrics
        return _refuse(metrics, "too_large").response
    return await _answer(_send, request, device, seq, code, body)
