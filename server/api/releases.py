"""`/api/v1/releases` (operator): each release with its rollouts' state, cohorts and canary
figures; `/api/v1/gateway/releases/{version}/{path}` (gateway token): a stored release's
files, only of a release one of the token's site's devices was told to install."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as FastPath
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from server.api.deps import GatewayDep, OperatorDep, SessionDep
from server.db.sql import table_of
from server.fleet import releases
from server.fleet.commands import VERSION
from server.fleet.rollout import cohort
from server.models import FleetCommand, Release, Rollout
from server.models.fleet import CommandKind
from server.schemas import Message

router = APIRouter(prefix="/api/v1", tags=["releases"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "bad or missing token"},
    403: {"model": Message, "description": "the caller's role or site limit does not allow this"},
    404: {"model": Message, "description": "no such release or file for this site"},
}
C = table_of(FleetCommand).c
RO = table_of(Rollout).c


class RolloutPublic(BaseModel):
    id: int
    state: str = Field(description="rolling, halted, done or rolled_back")
    target: dict[str, Any] = Field(description="percent, site or devices, as asked")
    steps: list[int] = Field(description="cohort size after each step")
    step: int = Field(description="index of the current step")
    step_answers: int
    cohort: list[str]
    reason: str | None
    canary: dict[str, Any] = Field(description="the last comparison, cohort against control")
    started_at: float
    step_at: float
    ended_at: float | None


class ReleasePublic(BaseModel):
    version: str
    board: str
    files: int
    size: int
    manifest_sha256: str
    created_at: float
    state: str = Field(description="its latest rollout's state; `stored` before any")
    rollouts: list[RolloutPublic]


@router.get(
    "/releases", response_model=list[ReleasePublic], responses=ERRORS,
    summary="Releases, newest first, with their rollouts and canary figures",
)  # fmt: skip
def list_releases(session: SessionDep, caller: OperatorDep) -> list[ReleasePublic]:
    if caller.site is not None:  # rollouts and their canary span the fleet
        raise HTTPException(
            403, f"{caller.name} is limited to site {caller.site}: releases are not"
        )
    out = []
    for release in session.execute(
        select(Release).order_by(table_of(Release).c.created_at.desc())
    ).scalars():
        rollouts = []
        for r in session.execute(
            select(Rollout).where(RO.version == release.version).order_by(RO.id.desc())
        ).scalars():
            assert r.id is not None
            target = {k: v for k, v in r.target.items() if k != "order"}
            rollouts.append(
                RolloutPublic(
                    id=r.id, state=r.state, target=target, steps=r.steps, step=r.step,
                    step_answers=r.step_answers, cohort=cohort(session, r.id), reason=r.reason,
                    canary=r.canary, started_at=r.started_at, step_at=r.step_at,
                    ended_at=r.ended_at,
                )
            )  # fmt: skip
        out.append(
            ReleasePublic(
                version=release.version, board=release.board, files=release.files,
                size=release.size, manifest_sha256=release.manifest_sha256,
                created_at=release.created_at,
                state=rollouts[0].state if rollouts else "stored", rollouts=rollouts,
            )
        )  # fmt: skip
    return out


@router.get(
    "/gateway/releases/{version}/{path:path}",
    responses=ERRORS | {200: {"content": {"application/octet-stream": {}}}},
    response_class=Response,
    summary="A file of a release this gateway's site was told to install (gateway token)",
)
def release_file(
    version: Annotated[str, FastPath(pattern=VERSION)],
    path: Annotated[str, FastPath(max_length=255)],
    session: SessionDep,
    caller: GatewayDep,
) -> Response:
    missing = HTTPException(404, f"no file {path[:80]!r} of a release {version} for this site")
    if not releases.PATH_RE.match(path) or ".." in path:
        raise missing
    told = session.execute(
        select(C.id)
        .where(C.site == caller.site, C.kind == CommandKind.UPDATE, C.version == version)
        .limit(1)
    ).scalar_one_or_none()
    if told is None:
        raise missing
    data = releases.file_bytes(session, version=version, path=path)
    if data is None:
        raise missing
    return Response(data, media_type="application/octet-stream")
