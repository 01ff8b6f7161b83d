# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Surveys and roles in the prompt flow, the relationship calendar, the link, the settings."""

import binascii
import gc
import sys

import events
import prompt as pm
import sampling as sp
from mp_sampling import DAY, T0, Flash, cfg, machine, sampler


def test_the_device_asks_the_role_when_configured():
    m = machine(roles=["end_user", "operator", "technician"])
    m.handle(("press",), 0)
    m.handle(("turn", 1), 100)
    assert m.handle(("press",), 200) is None and m.state == pm.ROLE
    m.handle(("turn", 2), 300)
    result = m.handle(("press",), 400)
    assert result["role"] == "technician" and result["score"] == 5
    m = machine(roles=["end_user"])
    m.handle(("press",), 0)
    m.handle(("turn", 1), 100)
    m.handle(("press",), 200)
    assert m.handle(("long",), 300)["role"] is None  # skipped: unknown


def test_the_relationship_prompt_runs_on_its_calendar():
    rel = {"every_days": 90, "role": "operator", "text": "Overall?"}
    flash = Flash()
    s = sampler(flash, cfg(relationship=rel))
    m = machine()
    assert s.relationship_next() == 0  # never asked: due as soon as the clock is known
    s.tick(m, 0, None)
    assert m.state == pm.IDLE  # no wall clock yet
    s.tick(m, 1000, T0)
    assert m.state == pm.PROMPT and m.survey == "relationship" and m.role == "operator"
    assert m.text == "Overall?" and m.trigger == ("schedule", None)
    assert m.tick(31000)["outcome"] == "timeout"  # nobody there: asked again a day later
    m.saved(31000)
    s = sampler(flash, cfg(relationship=rel))
    assert s.relationship_next() == T0 + DAY
    s.tick(m, 40000, T0 + DAY - 1)
    assert m.state == pm.IDLE
    s.tick(m, 50000, T0 + DAY)
    assert m.state == pm.PROMPT
    m.handle(("turn", 1), 51000)
    result = m.handle(("press",), 52000)
    assert result["survey"] == "relationship"
    assert s.finished(result, 12, T0 + DAY) == (None, 0)
    s = sampler(flash, cfg(relationship=rel))
    assert s.relationship_next() == T0 + DAY + 90 * DAY
    m.saved(52000)
    m.tick(60000)
    s.tick(m, 70000, T0 + DAY + 89 * DAY)
    assert m.state == pm.IDLE
    s.tick(m, 80000, T0 + 91 * DAY)
    assert m.state == pm.PROMPT and m.survey == "relationship"
    assert sampler(Flash(), cfg()).relationship_next() is None  # not configured


def test_feedback_event_carries_survey_and_role():
    m = machine()
    m.handle(("trigger", "cycle_complete", "tx-1", {"role": "sponsor"}), 0)
    m.handle(("turn", 1), 10)
    result = m.handle(("press",), 20)
    body = events.feedback_body(result, "nps", -60, None)
    ident = {"device": "nps-a1b2c3", "site": "s1", "boot": 1, "fw": "1.0.0"}
    print("EVENT " + events.event(ident, 3, 20, None, "feedback", body))
    assert body["survey"] == "transactional" and body["role"] == "sponsor"


def test_config_programme_settings_are_checked():
    import config

    base = '{"site": "s1", "broker": {"host": "h"}, %s}'
    cfg = config.parse(base % '"sampling": {"cycle": {"every": 5}}', "nps-0a0b0c")
    assert cfg["sampling"] == {"cycle": {"every": 5, "person_window_s": 0, "max_age_s": 172800}}
    assert cfg["roles"]["choices"] == ["end_user", "operator", "technician", "buyer", "sponsor"]
    assert cfg["survey"]["relationship"] is None and cfg["voice"]["after"] == "detractor"
    rel = config.parse(base % '"survey": {"relationship": {"every_days": 180}}', "nps-0a0b0c")
    assert rel["survey"]["relationship"]["role"] == "operator"
    key = binascii.b2a_base64(bytes(32)).decode().strip()
    ok = '"voice": {"base_url": "http://10.0.0.5:8000", "key": "%s"}' % key
    assert config.parse(base % ok, "nps-0a0b0c")["voice"]["key"] == key
    for given, says in (
        ('"sampling": {"cycle": {"every": 0}}', "sampling.cycle.every"),
        ('"sampling": {"cycle": {"every": true}}', "sampling.cycle.every"),
        ('"sampling": {"cycle": {"evry": 2}}', "unknown setting sampling.cycle.evry"),
        ('"sampling": {"cycle": 3}', "sampling.cycle must be an object"),
        ('"sampling": {"*": {"max_age_s": -1}}', "sampling.*.max_age_s"),
        ('"sampling": {%s}' % ",".join('"k%d": {}' % i for i in range(9)), "at most 8"),
        ('"survey": {"relationship": {"every_days": 0}}', "every_days"),
        ('"survey": {"relationship": {"role": "boss"}}', "survey.relationship.role"),
        ('"survey": {"relationship": {"text": ""}}', "survey.relationship.text"),
        ('"survey": {"weekly": 1}', "unknown setting survey.weekly"),
        ('"roles": {"ask": 1}', "roles.ask"),
        ('"roles": {"choices": []}', "roles.choices"),
        ('"roles": {"choices": ["ceo"]}', "roles.choices[0]"),
        ('"voice": {"after": "some"}', "voice.after"),
        ('"voice": {"base_url": "ftp://x"}', "voice.base_url"),
        ('"voice": {"key": "c2hvcnQ="}', "voice.key"),
        ('"voice": {"key": "!!!"}', "voice.key"),
        ('"voice": {"show_s": 0}', "voice.show_s"),
    ):
        try:
            config.parse(base % given, "nps-0a0b0c")
        except config.ConfigError as err:
            assert says in str(err), (given, str(err))
        else:
            raise AssertionError("accepted " + given)
    del sys.modules["config"]  # as main.py does after boot


def test_the_link_replaces_the_thanks_until_a_press_or_show_s():
    m = machine()
    m.handle(("press",), 0)
    m.handle(("turn", -1), 10)
    m.handle(("press",), 20)
    m.saved(100, "http://h/v/d/1/c", 20000)
    assert m.state == pm.THANKS and m.link == "http://h/v/d/1/c" and m.next_deadline() == 20100
    m.handle(("turn", 1), 200)
    assert m.link is not None  # turning does not dismiss it
    m.handle(("press",), 300)
    m.tick(300)
    assert m.state == pm.IDLE and m.link is None
    m.handle(("press",), 400)
    m.handle(("turn", 1), 410)
    m.handle(("press",), 420)
    m.saved(500, "http://h/v/d/2/c", 20000)
    m.tick(20499)
    assert m.link is not None
    m.tick(20500)
    assert m.state == pm.IDLE and m.link is None


def test_which_answers_get_a_link():
    gc.collect()
    key = binascii.b2a_base64(bytes(range(32))).decode().strip()
    counted = []

    def make(after, device="nps-a1b2c3"):
        c = cfg()
        c["voice"] = {"after": after, "base_url": "http://10.0.0.5:8000", "key": key, "show_s": 20}
        return sp.Sampler(c, {}, lambda s: None, device, counted.append, {})

    def answer(score, outcome="answered", survey="transactional"):
        return {"outcome": outcome, "score": score, "survey": survey}

    url, ms = make("detractor").finished(answer(6), 7, T0)
    assert url.startswith("http://10.0.0.5:8000/v/nps-a1b2c3/7/") and len(url) == 47 and ms == 20000
    assert make("detractor").finished(answer(7), 8, T0) == (None, 0)
    assert make("detractor").finished(answer(None, "timeout"), 9, T0) == (None, 0)
    assert make("all").finished(answer(10), 10, T0)[0] is not None
    assert make("none").finished(answer(0), 11, T0) == (None, 0)
    too_long = make("all", "d" * 64).finished(answer(0), 123456789, T0)
    assert too_long == (None, 0)  # 109 bytes: more than a version 5 code holds
    assert counted == ["voice_link_long"]
