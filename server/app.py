"""The application factory: `create_app(settings)` builds everything; nothing at import time."""

from __future__ import annotations

import gc
import logging
import threading
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from contract.protocol import IngestRequest, PresenceRequest
from server.alerts.notify import CaseNotifier
from server.alerts.watch import OfflineWatch
from server.alerts.webhooks import WebhookSender
from server.api import (
    alerts,
    bands,
    devices,
    drivers,
    feedback,
    fleet,
    ingest,
    markers,
    nps,
    ops,
    people,
    programme,
    registry,
    rejections,
    releases,
    session,
    stream,
    themes,
    voice,
)
from server.api.login_limit import TableLimiter
from server.api.origin import OriginCheck
from server.dashboard import router as dashboard_router
from server.db import engine as db
from server.db.partitions import PartitionUpkeep
from server.fleet.watch import RolloutWatch
from server.ingest.validation import NulInText
from server.mail.outbox import Outbox
from server.mail.smtp import SmtpMailer
from server.metrics import Metrics
from server.realtime.bus import Bus
from server.realtime.pg_relay import PgRelay
from server.realtime.relay import Relay, StreamRelay
from server.settings import Settings

log = logging.getLogger("nps_edge.server")


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body" or len(e["loc"]) == 1)
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _install_errors(app: FastAPI, metrics: Metrics) -> None:
    refused = metrics.requests_refused

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(
            {"detail": detail}, exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, 422)

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> JSONResponse:
        """Busy or unreachable database: a temporary condition, so 503 (gateways retry)."""
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return JSONResponse(
            {"detail": "database unavailable, retry later"}, 503, headers={"Retry-After": "1"}
        )

    async def malformed(request: Request, exc: Exception) -> JSONResponse:
        """A request the parsers choked on is the sender's fault: 400 with the reason.
        Raised anywhere else, the same exceptions are our bug and stay a 500."""
        if not raised_parsing(exc):
            return await crashed(request, exc)
        refused.labels(status="400").inc()
        log.warning("malformed %s %s: %s", request.method, request.url.path, type(exc).__name__)
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        return JSONResponse({"detail": f"malformed request ({reason})"}, 400)

    for kind in (RecursionError, ValueError, OverflowError):
        app.add_exception_handler(kind, malformed)

    @app.exception_handler(NulInText)
    async def nul(request: Request, exc: NulInText) -> JSONResponse:
        refused.labels(status="422").inc()
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> JSONResponse:
        """Text with NUL, which PostgreSQL cannot store, that no check above refused:
        the sender's fault (422). Any other data error is our bug (500)."""
        if "NUL" not in str(exc.orig):
            return await crashed(request, exc)
        refused.labels(status="422").inc()
        return JSONResponse({"detail": "text must not contain NUL (\\u0000)"}, 422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server log"}, 500
        )


# Modules that parse what a client sent (JSON, URLs, forms, headers, parameters).
PARSERS = (
    "/json/", "/urllib/parse.py", "/starlette/requests.py", "/starlette/formparsers.py",
    "/starlette/datastructures.py", "/fastapi/dependencies/utils.py", "/multipart/",
)  # fmt: skip


class RefuseNulInUrl:
    """ASGI middleware: a NUL in the path or the query is refused (400) before any
    route sees it: PostgreSQL cannot compare text with NUL (on main `?site=%00`
    answered 500 there), and no name of ours holds one."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            self.metrics.requests_refused.labels(status="400").inc()
            response = JSONResponse({"detail": "NUL (%00) is not allowed in a URL"}, 400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def raised_parsing(exc: BaseException) -> bool:
    """Whether `exc` was raised by a parser of the request (its innermost Python frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and any(p in frames[-1].filename for p in PARSERS)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI plus the raw-body request schemas (ingest reads its body itself)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (IngestRequest, PresenceRequest):
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(js.pop("$defs", {}))
        components[model.__name__] = js
    app.openapi_schema = schema
    return schema


def stream_relay(settings: Settings, metrics: Metrics) -> StreamRelay | None:
    """How this process's live stream meets the others': through PostgreSQL itself when that is
    the database (any number of hosts), else UNIX sockets between one host's workers, else none."""
    if settings.db.startswith("postgresql"):
        return PgRelay(settings.db, metrics=metrics)
    return Relay(Path(settings.relay_dir), metrics=metrics) if settings.relay_dir else None


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = engine or db.make_engine(settings.db)
    db.require_current(engine)  # migrated once by `nps-edge server` or `nps-edge db upgrade`

    metrics = Metrics()  # this app's own registry, served on /metrics
    sender = WebhookSender(
        engine, urls=settings.webhook_urls, secret=settings.webhook_secret,
        attempts=settings.webhook_attempts, backoff_s=settings.webhook_backoff_s,
        metrics=metrics,
    )  # fmt: skip
    relay = stream_relay(settings, metrics)
    outbox = Outbox(SmtpMailer(settings), metrics)
    notifier = CaseNotifier(engine, settings, webhook=sender.enqueue, outbox=outbox)
    bus = Bus(webhook=notifier.opened, relay=relay)
    watch = OfflineWatch(engine, bus, settings, notifier)
    rollouts = RolloutWatch(engine, bus, settings)
    upkeep = PartitionUpkeep(engine)  # PostgreSQL's coming month partitions
    ingest_engine = db.ingest_engine(engine, INGEST_SLOTS)  # its own pool on PostgreSQL

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sender.start()
        watch.start()
        rollouts.start()
        upkeep.start()
        try:
            yield
        finally:
            upkeep.stop()
            rollouts.stop()
            watch.stop()
            sender.stop()
            outbox.stop()
            if relay is not None:
                relay.close()
            if ingest_engine is not engine:
                ingest_engine.dispose()

    app = FastAPI(
        title="nps-edge server",
        version="1.0.0",
        description="Transactional NPS from connected devices, joined with device health.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.ingest_engine = ingest_engine
    app.state.metrics = metrics
    app.state.events = bus
    app.state.ingest_slots = threading.BoundedSemaphore(INGEST_SLOTS)
    app.state.webhooks = sender
    app.state.notifier = notifier
    app.state.mail = outbox
    app.state.login_limiter = TableLimiter(
        engine, max_failures=settings.login_max_failures, window_s=settings.login_window_s
    )
    app.state.voice_limiter = TableLimiter(  # the phone page (api/voice.py), same window
        engine, max_failures=settings.voice_max_requests, window_s=settings.login_window_s
    )
    app.add_middleware(OriginCheck, settings=settings, metrics=metrics)  # CSRF: api/origin.py
    _install_errors(app, metrics)
    app.add_middleware(RefuseNulInUrl, metrics=metrics)
    for module in (
        ingest, session, nps, drivers, markers, bands, devices, feedback, alerts, rejections,
        registry, stream, ops, fleet, releases, programme, themes, voice, people,
    ):  # fmt: skip
        app.include_router(module.router)
    app.include_router(dashboard_router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# A 1,000-event batch makes about 100,000 objects that live until it is stored:
# with the default first threshold (700) the collector runs ~150 times per batch
# and promotes them all; 50,000 lets most batches finish between collections
# (measured: server CPU per batch 75 -> 61 ms, docs/benchmarks.md).
GC_THRESHOLDS = (50_000, 20, 100)
# Batches a worker stores at once. Ingest is CPU-bound Python: a second batch in
# the same process only takes turns at the GIL, at a cost (measured with 6
# gateways on 2 workers, SQLite: 1 slot 24.9k events/s and 61 ms CPU per batch,
# 2 slots 16.9k and 81 ms); parallelism comes from worker processes.
INGEST_SLOTS = 1


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from `NPS_EDGE_*` (the CLI sets them).

    Everything built so far lives as long as the process: `gc.freeze()` takes it
    out of the collector's sight, so the full collections that ingest's many
    short-lived objects trigger do not rescan it (about a fifth of a batch's time).
    """
    app = create_app(Settings())
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return app
