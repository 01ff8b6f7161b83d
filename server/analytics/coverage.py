"""Coverage: who a site hears from. Answers per site, role and survey, so that a role
no one at a site answered for stands out ("store-3 has no answers from technicians
this quarter"): averaging all roles hides an unhappy sponsor behind happy users."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session

from contract.nps import Tally
from contract.protocol import ROLES, SURVEYS
from server.analytics.figures import Filters, figures


@dataclass(frozen=True)
class Cell:
    site: str
    role: str | None  # None: answers whose role is unknown
    tallies: dict[str, Tally]  # survey -> tally

    @property
    def answered(self) -> int:
        return sum(t.n for t in self.tallies.values())


def quarter_start(t: float) -> float:
    """00:00 UTC on the first day of `t`'s calendar quarter."""
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    month = 3 * ((d.month - 1) // 3) + 1
    return dt.datetime(d.year, month, 1, tzinfo=dt.UTC).timestamp()


def coverage(session: Session, f: Filters, sites: list[str]) -> list[Cell]:
    """Per site, every role (and the unknown role when any answered so), per survey."""
    cells = []
    for site in sites:
        per_role: dict[str | None, dict[str, Tally]] = {r: {} for r in ROLES}
        for survey in SURVEYS:
            scoped = dataclasses.replace(f, site=site, survey=survey, role=None)
            _, by_role = figures(session, scoped, "role")
            for role, tally in by_role.items():
                per_role.setdefault(role, {})[survey] = tally
        for role, tallies in per_role.items():
            full = {s: tallies.get(s, Tally()) for s in SURVEYS}
            cells.append(Cell(site, role, full))
    return cells


def missing(cells: list[Cell]) -> list[Cell]:
    """The known roles a site has no answer from, in either survey."""
    return [c for c in cells if c.role is not None and c.answered == 0]
