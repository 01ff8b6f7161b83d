"""Every JSON route of the API declares its answer as a pydantic model (issue 13).

A route answering a plain `dict` documents nothing its clients can rely on and
needs a hand-written OpenAPI example; one that streams bytes (CSV, JSON lines,
server-sent events, Prometheus text) says so with its `response_class`.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI keeps them nested)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from _api_routes(router.routes)
        elif isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def _is_model(annotation: Any) -> bool:
    """A pydantic model, or a list of one."""
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _answers_json(route: APIRoute) -> bool:
    cls = getattr(route.response_class, "value", route.response_class)  # DefaultPlaceholder
    return isinstance(cls, type) and issubclass(cls, JSONResponse)


def test_every_json_route_has_a_response_model(app: FastAPI) -> None:
    routes = list(_api_routes(app.routes))
    assert any(r.path == "/api/v1/nps" for r in routes), "the walk found no API route"
    untyped = [
        f"{sorted(r.methods or ())} {r.path}: {r.response_model!r}"
        for r in routes
        if _answers_json(r) and not _is_model(r.response_model)
    ]
    assert untyped == []
