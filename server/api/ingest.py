"""`POST /api/v1/ingest` (contract) and `POST /api/v1/presence` (extension): gateway token."""

from __future__ import annotations

import re
import threading
from itertools import accumulate
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from contract.protocol import (
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    IngestRequest,
    IngestResult,
    PresenceRequest,
    describe,
)
from server.api.deps import Caller, GatewayDep
from server.db.sql import json_value
from server.devices import PresenceResult, record_presence
from server.ingest.batch import ingest_batch
from server.ingest.validation import NARROWED
from server.metrics import Metrics
from server.schemas import Message
from server.voice.store import voice_joins

router = APIRouter(prefix="/api/v1", tags=["gateway"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad, revoked or missing gateway token"},
    403: {"model": Message, "description": "the body's gateway is not the token's name"},
    413: {"model": Message, "description": "body over 2 MiB or more than 1000 events"},
    422: {"model": Message, "description": "a body that is not this shape"},
}


def json_body(schema: str) -> dict[str, Any]:
    """OpenAPI for a body the route reads itself (the schema is added by the app factory)."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


async def read_json(request: Request) -> Any:
    """The body as JSON, refusing more than MAX_BODY_BYTES before reading (or while) it,
    and nesting deeper than MAX_DEPTH before parsing it."""
    refused = _metrics(request).requests_refused
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        refused.labels(status="413").inc()
        raise HTTPException(413, f"body is {declared} bytes; at most {MAX_BODY_BYTES} (2 MiB)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            refused.labels(status="413").inc()
            raise HTTPException(413, f"body is over {MAX_BODY_BYTES} bytes (2 MiB)")
    depth = nesting_depth(bytes(body))
    if depth > MAX_DEPTH:
        refused.labels(status="422").inc()
        raise HTTPException(422, f"body nests deeper than {MAX_DEPTH} levels")
    try:  # NaN and Infinity are read too (json_value): the events stay judged alone
        return json_value(body)
    except ValueError as err:  # also UnicodeDecodeError, and ints past 4300 digits
        refused.labels(status="422").inc()
        raise HTTPException(422, f"body is not JSON: {str(err)[:200]}") from None


# A contract body nests 4 deep (body, events, event, ctx); past 1,000 the json
# module's decoder (and encoder, for dead letters) raise RecursionError.
MAX_DEPTH = 32
_CHUNK = 4096  # brackets counted at a time: a deep body stops at its first chunk
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))
_STEP = [0] * 256
for _c in b"[{":
    _STEP[_c] = 1
for _c in b"]}":
    _STEP[_c] = -1


def nesting_depth(body: bytes, *, limit: int = MAX_DEPTH) -> int:
    """How deep `body` nests as JSON, without parsing it (brackets outside strings);
    past `limit`, some depth beyond it (the count stops early).

    Exact for valid JSON; invalid JSON counts at least as deep as a parser gets
    before failing. Measured: 1.1 ms for a 1,000-event batch (370 kB, about 2% of
    its ingest), 5 ms for 2 MiB of brackets (stops at the first chunk past the limit).
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)  # escapes appear only inside strings
    # Quotes now only open and close strings: every other piece is outside one.
    brackets = b"".join(body.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):
        chunk = brackets[start : start + _CHUNK]
        levels = list(accumulate(map(_STEP.__getitem__, chunk), initial=depth))
        depth, deepest = levels[-1], max(deepest, max(levels))
        if deepest > limit:
            break
    return deepest


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _shape(model: type[Any], raw: Any, metrics: Metrics) -> Any:
    """`raw` as `model`, or as the server's narrower model where storage needs one
    (which counts what it rebuilds in `metrics`: `server.ingest.validation`)."""
    try:
        return NARROWED.get(model, model).model_validate(raw, context={"metrics": metrics})
    except ValidationError as err:
        metrics.requests_refused.labels(status="422").inc()
        raise HTTPException(422, f"body is not {model.__name__}: {describe(err)}") from None


def _same_gateway(caller: Caller, gateway: str, metrics: Metrics) -> None:
    """A gateway speaks only under its own token's name (issue 12)."""
    if gateway != caller.name:
        metrics.requests_refused.labels(status="403").inc()
        raise HTTPException(
            403,
            f"body names gateway {gateway[:64]!r}, but this token belongs to gateway"
            f" {caller.name!r}: send the token's name, or use that gateway's token",
        )


def _ingest_in_turn(slots: threading.BoundedSemaphore, engine: Any, **kw: Any) -> Any:
    """ingest_batch once one of the worker's ingest slots is free (server.app.INGEST_SLOTS)."""
    with slots:
        return ingest_batch(engine, **kw)


@router.post(
    "/ingest",
    response_model=IngestResult,
    responses=ERRORS,
    summary="Store a batch of events from a gateway",
    openapi_extra=json_body("IngestRequest"),
)
async def ingest(request: Request, response: Response, caller: GatewayDep) -> IngestResult:
    """Each event is judged alone: good ones are stored once (resent ones come back as
    duplicates), bad ones come back in `rejected` with the reason."""
    metrics = _metrics(request)
    raw = await read_json(request)
    if isinstance(raw, dict) and isinstance(raw.get("events"), list):
        if len(raw["events"]) > MAX_BATCH_EVENTS:
            metrics.requests_refused.labels(status="413").inc()
            raise HTTPException(
                413, f"{len(raw['events'])} events; at most {MAX_BATCH_EVENTS} per batch"
            )
    body = _shape(IngestRequest, raw, metrics)
    _same_gateway(caller, body.gateway, metrics)
    app = request.app
    with metrics.ingest_seconds.time():
        out = await run_in_threadpool(
            _ingest_in_turn, app.state.ingest_slots, app.state.ingest_engine, gateway=body.gateway,
            events=body.events, settings=app.state.settings, site=caller.site, metrics=metrics,
        )  # fmt: skip
    app.state.events.published(out.feedback, out.alerts)
    if out.feedback:  # phone comments that came before their answer (server/voice/store.py)
        await run_in_threadpool(voice_joins, app, {row["id"] for row in out.feedback})
    # The gateway's next batch comes on a new connection, which goes to whichever
    # server worker accepts first: a kept-alive connection would tie each gateway
    # to one worker however busy it is (measured with 4 gateways on 2 workers:
    # CPU split 3.4 s / 3.5 s instead of 5.6 s / 2.0 s, 12.3k -> 17.8k events/s).
    response.headers["Connection"] = "close"
    return IngestResult(accepted=out.accepted, duplicates=out.duplicates, rejected=out.rejections())


@router.post(
    "/presence",
    response_model=PresenceResult,
    responses=ERRORS,
    summary="Device presence from the retained status topic and the last will",
    openapi_extra=json_body("PresenceRequest"),
)
async def presence(request: Request, caller: GatewayDep) -> PresenceResult:
    """Updates for devices of another site are ignored, each with its reason."""
    metrics = _metrics(request)
    raw = await read_json(request)
    body = _shape(PresenceRequest, raw, metrics)
    _same_gateway(caller, body.gateway, metrics)
    return await run_in_threadpool(
        record_presence, request.app.state.engine, request=body, site=caller.site, metrics=metrics
    )
