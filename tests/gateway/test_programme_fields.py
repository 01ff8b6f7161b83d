"""Feedback `survey` and `role` (contract additions of December 2026) pass through the
gateway unchanged; a value outside the contract is dead-lettered at the edge alone."""

from __future__ import annotations

from gateway.intake import Intake
from tests.gateway.test_forwarder import ROOT, drain, forwarder

TOPIC = f"{ROOT}/nps-a1b2c3/feedback"


def test_survey_and_role_reach_the_server_unchanged(open_store, fake_server, metrics, make):
    store = open_store()
    intake = Intake(store, lambda _: None, metrics, root=ROOT)
    sent = [
        make.feedback(seq=1, survey="relationship", role="sponsor"),
        make.feedback(seq=2, survey="transactional", role=None),
        make.feedback(seq=3),  # an older device: neither field
        make.feedback(seq=4, survey="yearly", role="operator"),  # not in the contract
        make.feedback(seq=5, role="chief"),
    ]
    for i, event in enumerate(sent, start=1):
        intake.offer(i, 1, TOPIC, make.payload(event))
    intake.drain()
    drain(forwarder(store, fake_server, metrics))
    got = {e["seq"]: e for e in fake_server.received}
    assert sorted(got) == [1, 2, 3]
    for event in sent[:3]:
        assert {k: v for k, v in got[event["seq"]].items() if k != "rx_ts"} == event
    assert "survey" not in got[3] and "role" not in got[3]
    reasons = sorted(d[3] for d in store.dead_letters())
    assert reasons[0].startswith("role:") and reasons[1].startswith("survey:"), reasons
