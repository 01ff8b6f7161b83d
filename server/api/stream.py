"""`GET /api/v1/stream`: server-sent events of new feedback and alerts (viewer; a
site-limited person gets only that site's)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from server.api.deps import COOKIE, ViewerDep
from server.identity.tokens import find_token, session_token
from server.realtime.bus import Bus

router = APIRouter(prefix="/api/v1", tags=["stream"])
KEEPALIVE_S = 15.0


def holder_live(request: Request) -> bool:
    """Whether the token or dashboard session that opened the stream is still live."""
    auth = request.headers.get("authorization", "")
    with Session(request.app.state.engine) as session:
        if auth.lower().startswith("bearer "):
            return find_token(session, token=auth[7:].strip()) is not None
        sid = request.cookies.get(COOKIE)
        return sid is not None and session_token(session, sid=sid, now=time.time()) is not None


async def _events(
    request: Request, bus: Bus, keepalive_s: float, site: str | None
) -> AsyncIterator[str]:
    """The stream; at each keepalive it checks its holder again, so revoking the token
    or logging out ends an open stream within `keepalive_s`."""
    queue = bus.subscribe()
    try:
        yield ": connected\n\n"
        while not await request.is_disconnected():
            try:
                kind, data = await asyncio.wait_for(queue.get(), keepalive_s)
            except TimeoutError:
                if not await asyncio.to_thread(holder_live, request):
                    yield "event: revoked\ndata: {}\n\n"
                    return
                yield ": keepalive\n\n"
                continue
            if site is not None and data.get("site") != site:
                continue
            yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
    finally:
        bus.unsubscribe(queue)


@router.get(
    "/stream",
    summary="Server-sent events: `feedback` and `alert`",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(request: Request, caller: ViewerDep) -> StreamingResponse:
    bus: Bus = request.app.state.events
    return StreamingResponse(
        _events(request, bus, KEEPALIVE_S, caller.site),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
