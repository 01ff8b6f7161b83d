"""`GET /api/v1/drivers`: does device health explain NPS? Each health feature's
groups, compared within site with the reference group (server/analytics/drivers.py)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter
from sqlmodel import Session

from contract.nps import Tally
from server.analytics import drivers as maths
from server.analytics.figures import Filters, figures
from server.api.deps import SessionDep, ViewerDep
from server.api.nps import ERRORS
from server.api.scope import ScopedFiltersDep
from server.ingest.health import BATTERY_BANDS, HEALTH_STATES, RSSI_BANDS
from server.schemas import Driver, DriverComparison, Drivers, Figures, Group

router = APIRouter(prefix="/api/v1", tags=["analytics"])

FEATURES = ("rssi_band", "battery_band", "health", "fw")
ORDER: dict[str, tuple[str, ...]] = {
    "rssi_band": RSSI_BANDS, "battery_band": BATTERY_BANDS, "health": HEALTH_STATES,
}  # fmt: skip


def by_site(session: Session, f: Filters, feature: str, sites: list[str]) -> maths.BySite:
    """The feature's tallies per site (the filters' site alone when it has one)."""
    out: dict[str, dict[str, Tally]] = {}
    for site in sites:
        _, tallies = figures(session, dataclasses.replace(f, site=site), feature)
        out[site] = {str(k): t for k, t in tallies.items() if k is not None}
    return out


def _comparison(t: maths.Test) -> DriverComparison:
    def r(x: float | None, nd: int) -> float | None:
        return None if x is None else round(x, nd)

    return DriverComparison(
        a=t.a, b=t.b, diff=r(t.diff, 2), z=r(t.z, 3), p=r(t.p, 5), p_adjusted=r(t.p_adjusted, 5),
        n_a=t.n_a, n_b=t.n_b, sites=t.sites, verdict=t.verdict, significant=t.significant,
    )  # fmt: skip


@router.get(
    "/drivers",
    response_model=Drivers,
    responses=ERRORS,
    summary="Does device health explain NPS?",
)
def drivers(session: SessionDep, caller: ViewerDep, f: ScopedFiltersDep) -> Drivers:
    """Per health feature, NPS per group (all sites together), and each group against
    the feature's largest group compared within site: site-stratified NPS difference with
    inverse-variance weights, tested only with 30 answers a side, Holm-corrected over
    every comparison of the answer (docs/drivers.md)."""
    if f.site is not None:
        sites = [f.site]
    else:
        _, per_site = figures(session, f, "site")
        sites = sorted(str(s) for s in per_site if s is not None)
    data = {feature: by_site(session, f, feature, sites) for feature in FEATURES}
    tests = maths.analyse(data, ORDER)
    features = []
    for feature in FEATURES:
        tallies = maths.pooled(data[feature])
        keys = maths.ordered(tallies, ORDER.get(feature, ()))
        groups = [Group(key=k, **Figures.of(tallies[k]).model_dump()) for k in keys]
        comparisons = [_comparison(t) for t in tests[feature]]
        features.append(Driver(feature=feature, groups=groups, comparisons=comparisons))
    return Drivers(features=features)
