"""The NPS programme in the demo story (issue 15): who answered, and relationship answers.

Pure, seeded apart from the rest of the story (its own random stream), so adding
it changes no other step of the story. On top of `nps_edge.story`'s transactional
prompts it tells:

- roles: a prompt after a completed cycle is the machine's end user's, a prompt
  after a service visit the technician's, a walk-up prompt nobody's known;
- a site missing a role (`gap_site`): its devices never learn who answered after a
  service visit, so coverage says it has no answers from technicians;
- a quarter of relationship answers: each device's operator is asked the overall
  question on one day of the period, each site's buyer and sponsor too; at the
  service site the sponsor is unhappy while its users are not, which only NPS by
  role shows.
"""

from __future__ import annotations

import random
from typing import Any

HOUR = 3_600.0
# Relationship scores by role: the sponsor of the service site pays for the visits.
RELATIONSHIP_MOOD = {"operator": 8.6, "buyer": 7.8, "sponsor": 8.4}
SERVICE_SITE_SPONSOR_MOOD = 4.5
KNOWN_END_USER = 0.7  # share of completed cycles whose host machine knows the user


def gap_site(sites: list[str], service_site: str) -> str:
    """The site that never hears from technicians: the last one that is not the service site."""
    others = [s for s in sites if s != service_site]
    return others[-1] if others else sites[-1]


def add_programme(
    scenarios: list[dict[str, Any]], *, start: float, end: float, seed: int, service_site: str
) -> list[dict[str, Any]]:
    """`scenarios` with a `role` on their prompts and relationship answers added, in time order."""
    sites = sorted({s["site"] for s in scenarios})
    missing = gap_site(sites, service_site)
    first_of_site: dict[str, str] = {}
    out = []
    for scenario in scenarios:
        rng = random.Random(f"{seed}:programme:{scenario['device']}")
        site = scenario["site"]
        steps = [_with_role(step, rng, site == missing) for step in scenario["steps"]]
        asked = ["operator"]
        if first_of_site.setdefault(site, scenario["device"]) == scenario["device"]:
            asked += ["buyer", "sponsor"]
        for role in asked:
            at = rng.uniform(start + 8 * HOUR, end - HOUR)
            steps.append(
                _relationship(rng, at, role, sad=role == "sponsor" and site == service_site)
            )
        steps.sort(key=lambda s: s["at"])
        out.append({**scenario, "steps": steps})
    return out


def _with_role(step: dict[str, Any], rng: random.Random, no_technicians: bool) -> dict[str, Any]:
    kind = (step.get("trigger") or {}).get("kind")
    if kind == "service_visit" and not no_technicians:
        return {**step, "role": "technician"}
    if kind == "cycle_complete" and rng.random() < KNOWN_END_USER:
        return {**step, "role": "end_user"}
    return step


def _relationship(rng: random.Random, at: float, role: str, *, sad: bool) -> dict[str, Any]:
    mood = SERVICE_SITE_SPONSOR_MOOD if sad else RELATIONSHIP_MOOD[role]
    return {
        "at": round(at, 1),
        "trigger": {"kind": "relationship", "ref": None},
        "survey": "relationship",
        "role": role,
        "action": "answer",
        "score": min(10, max(0, round(rng.gauss(mood, 1.2)))),
        "reason": None,
        "answer_ms": int(rng.uniform(3_000, 9_000)),
    }
