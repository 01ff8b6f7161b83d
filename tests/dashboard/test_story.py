"""The demo story: seeded, in the simulator's scenario format, and its effects are in the data."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from contract.nps import Tally
from contract.protocol import parse_event
from nps_edge.story import DAY, DETRACTOR_REASONS, Story, generate, scenario_events

END = 1_795_000_000.0
STORY = Story(end=END, days=12, sites=4, devices_per_site=3, seed=11)


@pytest.fixture(scope="module")
def scenarios() -> list[dict[str, Any]]:
    return generate(STORY)


@pytest.fixture(scope="module")
def events(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for s in scenarios for e in scenario_events(s)]


def feedback(events: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    out = [e for e in events if e["type"] == "feedback"]
    for key, value in where.items():
        out = [e for e in out if e[key] == value]
    return out


def nps_of(items: list[dict[str, Any]]) -> float:
    value = Tally.of_scores([e.get("score") for e in items]).summary()["nps"]
    assert isinstance(value, float)
    return value


def test_same_seed_same_story_other_seed_other_story(scenarios: list[dict[str, Any]]) -> None:
    assert generate(STORY) == scenarios
    other = generate(Story(end=END, days=12, sites=4, devices_per_site=3, seed=12))
    assert other != scenarios


def test_scenarios_have_the_simulator_format(scenarios: list[dict[str, Any]]) -> None:
    assert len(scenarios) == 12
    assert len({s["device"] for s in scenarios}) == 12
    assert {s["site"] for s in scenarios} == {"store-1", "store-2", "store-3", "store-4"}
    step_keys = {
        "answer": {"at", "trigger", "action", "score", "reason", "answer_ms"},
        "timeout": {"at", "trigger", "action"},
        "dismiss": {"at", "trigger", "action"},
        "set": {"at", "action", "fw", "rssi", "battery_mv"},
        "telemetry": {"at", "action"},
        "reboot": {"at", "action"},
    }
    for s in scenarios:
        assert set(s) == {"device", "site", "fw", "rssi", "battery_mv", "steps"}
        assert s["fw"] == STORY.base_fw
        times = [step["at"] for step in s["steps"]]
        assert times == sorted(times)
        assert STORY.start <= times[0] and times[-1] < END
        for step in s["steps"]:
            programme = {"survey", "role"} if "trigger" in step else set()  # story_programme
            assert set(step) - programme == step_keys[step["action"]], step
            if step["action"] == "answer":
                assert 0 <= step["score"] <= 10 and isinstance(step["score"], int)
                assert step["reason"] is None or isinstance(step["reason"], str)
            if "trigger" in step:
                kinds = ("cycle_complete", "walkup", "service_visit", "relationship")
                assert step["trigger"]["kind"] in kinds


def test_volume_and_telemetry_cadence(scenarios: list[dict[str, Any]]) -> None:
    for s in scenarios:
        prompts = [st for st in s["steps"] if "trigger" in st]
        per_day = len(prompts) / STORY.days
        assert 24 <= per_day <= 42, per_day  # ~30 a day, more at weekends
        ticks = [st["at"] for st in s["steps"] if st["action"] == "telemetry"]
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert 15 * 60 <= min(gaps) and max(gaps) <= 30 * 60


def test_release_drops_rssi_and_scores(
    scenarios: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    updated = {
        s["device"]
        for s in scenarios
        if any(st.get("fw") == STORY.release_fw for st in s["steps"] if st["action"] == "set")
    }
    assert len(updated) == round(12 * STORY.release_share)
    first_update = min(
        st["at"] for s in scenarios for st in s["steps"] if st.get("fw") == STORY.release_fw
    )
    assert STORY.release_at <= first_update < STORY.release_at + 3 * DAY
    for s in scenarios:
        sets = [st for st in s["steps"] if st["action"] == "set"]
        for before, update in zip(sets, sets[1:], strict=False):
            if update["fw"] != before["fw"]:  # the update changes fw and RSSI, not the battery
                assert update["battery_mv"] == before["battery_mv"]
                assert before["rssi"] - update["rssi"] >= 14
    telemetry = [e for e in events if e["type"] == "telemetry" and e["device"] in updated]
    rssi_before = statistics.mean(e["rssi"] for e in telemetry if e["fw"] == STORY.base_fw)
    rssi_after = statistics.mean(e["rssi"] for e in telemetry if e["fw"] == STORY.release_fw)
    assert 15 <= rssi_before - rssi_after <= 25
    after = [e for e in feedback(events) if e["ts"] >= STORY.release_at + 3 * DAY]
    new = [e for e in after if e["fw"] == STORY.release_fw]
    old = [e for e in after if e["fw"] == STORY.base_fw]
    assert nps_of(old) - nps_of(new) > 25

    def answered_share(items: list[dict[str, Any]]) -> float:
        return sum(e["outcome"] == "answered" for e in items) / len(items)

    assert answered_share(old) - answered_share(new) > 0.05  # 0.72 against 0.55 by design
    errors_new = max(
        e["errors"]["wifi_reconnect"] for e in telemetry if e["fw"] == STORY.release_fw
    )
    errors_old = max(e["errors"]["wifi_reconnect"] for e in telemetry if e["fw"] == STORY.base_fw)
    assert errors_new > errors_old


def test_detractors_cluster_after_service_visits_at_one_site(events: list[dict[str, Any]]) -> None:
    visits = [e for e in feedback(events) if e["trigger"]["kind"] == "service_visit"]
    at_site = [e for e in visits if e["site"] == STORY.service_site]
    elsewhere = [e for e in visits if e["site"] != STORY.service_site]
    assert nps_of(at_site) < -60 < 20 < nps_of(elsewhere)
    reasons = {e["reason"] for e in feedback(events) if e["reason"] is not None}
    assert reasons <= set(DETRACTOR_REASONS)


def test_every_event_is_valid_with_contiguous_seq_and_boots(
    scenarios: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    for e in events:
        parse_event(e, forwarded=True)  # raises InvalidEvent with the reason
    for s in scenarios:
        mine = [e for e in events if e["device"] == s["device"]]
        assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))
        reboots = sum(st["action"] == "reboot" for st in s["steps"])
        assert mine[-1]["boot"] - mine[0]["boot"] == reboots
        for a, b in zip(mine, mine[1:], strict=False):
            assert b["ts"] >= a["ts"] and b["rx_ts"] > b["ts"]
            if a["boot"] == b["boot"]:
                assert b["up_ms"] >= a["up_ms"]
        answers = [st for st in s["steps"] if st["action"] == "answer"]
        assert [e["score"] for e in mine if e["type"] == "feedback" and "score" in e] == [
            st["score"] for st in answers
        ]


def test_events_follow_set_steps_and_offsets() -> None:
    scenario = {
        "device": "nps-00a1b2",
        "site": "store-1",
        "fw": "1.4.0",
        "rssi": -60,
        "battery_mv": 3900,
        "steps": [
            {"at": 100.0, "trigger": {"kind": "cycle_complete", "ref": "tx-1"},
             "action": "answer", "score": 9, "reason": None, "answer_ms": 2300},
            {"at": 200.0, "trigger": {"kind": "walkup", "ref": None}, "action": "timeout"},
            {"at": 300.0, "action": "set", "fw": "1.5.0", "rssi": -82, "battery_mv": 3600},
            {"at": 310.0, "action": "reboot"},
            {"at": 400.0, "action": "telemetry"},
        ],
    }  # fmt: skip
    events = scenario_events(scenario, gateway_rx_delay=2.0, first_seq=40, first_boot=7)
    assert [e["id"] for e in events] == ["nps-00a1b2:40", "nps-00a1b2:41", "nps-00a1b2:42"]
    answered, timeout, telemetry = events
    assert answered["score"] == 9 and answered["ctx"] == {"rssi": -60, "battery_mv": 3900}
    assert answered["rx_ts"] == 102.0 and answered["boot"] == 7
    assert "score" not in timeout and timeout["outcome"] == "timeout"
    assert telemetry["boot"] == 8 and telemetry["up_ms"] == 90_000
    assert (telemetry["fw"], telemetry["rssi"], telemetry["battery_mv"]) == ("1.5.0", -82, 3600)
    assert telemetry["reset_cause"] == "soft_reset"


def test_the_fleet_view_tells_the_story(events: list[dict[str, Any]]) -> None:
    """What docs/dashboard.md promises the overview shows, on the fleet as a whole."""
    by_site = {s: nps_of(feedback(events, site=s)) for s in ("store-1", "store-2", "store-4")}
    assert nps_of(feedback(events, site=STORY.service_site)) < min(by_site.values())
    kinds = {"cycle_complete", "walkup", "service_visit"}
    by_kind = {k: nps_of([e for e in feedback(events) if e["trigger"]["kind"] == k]) for k in kinds}
    assert by_kind["service_visit"] < 0 < min(by_kind["cycle_complete"], by_kind["walkup"])
    rush = [e for e in feedback(events) if 17 <= e["ts"] % DAY // 3600 <= 19]
    calm = [e for e in feedback(events) if not 17 <= e["ts"] % DAY // 3600 <= 19]
    assert nps_of(rush) < nps_of(calm)
