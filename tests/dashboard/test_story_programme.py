"""The demo story's programme (nps_edge/story_programme.py): roles on its prompts, a
quarter's relationship answers beside the transactional ones, a site missing a role."""

from __future__ import annotations

from typing import Any

import pytest

from contract.nps import Tally
from contract.protocol import parse_event
from nps_edge import story
from nps_edge.story import Story, generate, scenario_events, site_names
from nps_edge.story_programme import gap_site

STORY = Story(end=1_795_000_000.0, days=12, sites=4, devices_per_site=3, seed=11)


def answers(**where: Any) -> list[dict[str, Any]]:
    events = [e for s in generate(STORY) for e in scenario_events(s) if e["type"] == "feedback"]
    return [e for e in events if all(e.get(k) == v for k, v in where.items())]


def test_events_carry_survey_and_role_the_contract_accepts() -> None:
    feedback = answers()
    for e in feedback:
        parse_event(e, forwarded=True)
    relationship = [e for e in feedback if e.get("survey") == "relationship"]
    # Each device's operator, each site's buyer and sponsor: once in the period.
    assert len(relationship) == 12 + 2 * 4
    assert {e["role"] for e in relationship} == {"operator", "buyer", "sponsor"}
    assert all(e["outcome"] == "answered" for e in relationship)
    assert {e.get("role") for e in feedback if "survey" not in e} == {
        None,
        "end_user",
        "technician",
    }


def test_one_site_has_no_technician_answers_and_the_service_sponsor_is_unhappy() -> None:
    missing = gap_site(site_names(STORY), STORY.service_site)
    assert missing == "store-4"
    assert not answers(site=missing, role="technician")
    assert answers(site=STORY.service_site, role="technician")
    sponsor = answers(site=STORY.service_site, role="sponsor")
    users = answers(site=STORY.service_site, role="end_user")
    assert len(sponsor) == 1 and sponsor[0]["score"] <= 6
    users_nps = Tally.of_scores([e.get("score") for e in users]).summary()["nps"]
    assert users_nps is not None and users_nps > 0


def test_the_programme_leaves_the_rest_of_the_story_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    told = generate(STORY)
    monkeypatch.setattr(story, "add_programme", lambda scenarios, **_: scenarios)
    before = generate(STORY)
    for a, b in zip(told, before, strict=True):
        kept = [
            {k: v for k, v in step.items() if k != "role"}
            for step in a["steps"]
            if step.get("survey") != "relationship"
        ]
        assert kept == b["steps"]
