"""`GET /api/v1/stream`: server-sent events of new feedback and alerts (operator)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from server.api.deps import OperatorDep
from server.events import Bus

router = APIRouter(prefix="/api/v1", tags=["stream"])
KEEPALIVE_S = 15.0


async def _events(request: Request, bus: Bus, keepalive_s: float) -> AsyncIterator[str]:
    queue = bus.subscribe()
    try:
        yield ": connected\n\n"
        while not await request.is_disconnected():
            try:
                kind, data = await asyncio.wait_for(queue.get(), keepalive_s)
            except TimeoutError:
                yield ": keepalive\n\n"
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
async def stream(request: Request, caller: OperatorDep) -> StreamingResponse:
    bus: Bus = request.app.state.events
    return StreamingResponse(
        _events(request, bus, KEEPALIVE_S),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
