"""`/healthz` and `/metrics`: for load balancers and Prometheus (no token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str  # "ok" or "unavailable" (503)
    detail: str | None = None  # why, when unavailable


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Liveness and database reachability",
)
def healthz(request: Request, response: Response) -> Health:
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        response.status_code = 503
        return Health(status="unavailable", detail=f"database: {type(err).__name__}")
    return Health(status="ok")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    # This worker's counters, on the app's own registry (server/metrics.py).
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
