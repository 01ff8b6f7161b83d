"""Routing rules: who a new case goes to, by site and kind (either may be "any").

The most specific rule wins: site and kind, then site, then kind, then any; among
equals the oldest. Applied as a case opens (`server.alerts.store.insert`); a case
already owned keeps its owner.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session

from server.db.sql import table_of
from server.ingest.validation import no_nul
from server.models import RoutingRule

R = table_of(RoutingRule).c


def specificity(rule: RoutingRule) -> tuple[int, int]:
    return (2 if rule.site is not None else 0) + (1 if rule.kind is not None else 0), -(
        rule.id or 0
    )


def owner_for(rules: Sequence[RoutingRule], *, site: str | None, kind: str) -> str | None:
    """The owner the most specific matching rule names, or None (pure)."""
    matching = [r for r in rules if r.site in (None, site) and r.kind in (None, kind)]
    return max(matching, key=specificity).assignee if matching else None


def route_new(session: Session, alerts: Sequence[Mapping[str, Any]]) -> None:
    """Give each unowned proposed case the owner its rules name (in place)."""
    unowned = [a for a in alerts if a["assignee"] is None]
    if not unowned:
        return
    rules = list_rules(session)
    for a in unowned:
        a["assignee"] = owner_for(rules, site=a["site"], kind=a["kind"])  # type: ignore[index]


def list_rules(session: Session) -> list[RoutingRule]:
    return list(session.execute(_RULES).scalars())


_RULES = select(RoutingRule).order_by(R.id)  # read by every batch that opens a case


def add_rule(
    session: Session, *, assignee: str, site: str | None = None, kind: str | None = None
) -> RoutingRule:
    no_nul(assignee=assignee, site=site)
    rule = RoutingRule(site=site, kind=kind, assignee=assignee, created_at=time.time())
    session.add(rule)
    session.commit()
    return rule


def delete_rule(session: Session, *, rule_id: int) -> bool:
    done = session.execute(delete(RoutingRule).where(R.id == rule_id))
    session.commit()
    return bool(done.rowcount)  # type: ignore[attr-defined]
