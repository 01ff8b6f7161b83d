# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""The prompt state machine, fed events and times by hand."""

import prompt as pm


def machine(reasons=("wait", "price")):
    return pm.PromptMachine(list(reasons), 30000, 15000, 3000, 10000)


def test_trigger_pick_confirm_thanks_then_idle():
    m = machine()
    assert m.handle(("trigger", "cycle_complete", "tx-1"), 1000) is None
    assert m.state == pm.PROMPT
    m.handle(("press",), 1500)  # nothing picked yet: ignored
    assert m.state == pm.PROMPT
    m.handle(("turn", 1), 2000)
    assert m.cursor == 5
    m.handle(("turn", 2), 2100)
    result = m.handle(("press",), 3300)
    assert result == {
        "outcome": "answered",
        "score": 7,
        "reason": None,
        "survey": "transactional",
        "role": None,
        "answer_ms": 2300,
        "trigger": ("cycle_complete", "tx-1"),
        "at_ms": 3300,
    }, result
    assert m.state == pm.SAVING
    m.saved(3300)
    assert m.state == pm.THANKS
    assert m.tick(6299) is None and m.state == pm.THANKS
    m.tick(6300)
    assert m.state == pm.IDLE


def test_scale_is_clamped():
    m = machine()
    m.handle(("press",), 0)
    m.handle(("turn", 1), 10)
    m.handle(("turn", 40), 20)
    assert m.cursor == 10
    m.handle(("turn", -99), 30)
    assert m.cursor == 0


def test_detractor_gets_reason_screen():
    m = machine()
    m.handle(("press",), 0)  # walk-up
    m.handle(("turn", 1), 100)
    m.handle(("turn", -3), 200)
    assert m.handle(("press",), 300) is None
    assert m.state == pm.REASON and m.cursor == 0
    m.handle(("turn", 5), 400)
    assert m.cursor == 1
    result = m.handle(("press",), 500)
    assert result["score"] == 2 and result["reason"] == "price"
    assert result["trigger"] == ("walkup", None) and result["answer_ms"] == 300


def test_long_press_on_reason_keeps_score_without_reason():
    m = machine()
    m.handle(("press",), 0)
    m.handle(("turn", 1), 10)
    m.handle(("press",), 20)
    result = m.handle(("long",), 30)
    assert result["outcome"] == "answered" and result["score"] == 5 and result["reason"] is None


def test_no_reasons_configured_means_no_reason_screen():
    m = machine(())
    m.handle(("press",), 0)
    m.handle(("turn", 1), 10)
    m.handle(("turn", -5), 20)
    assert m.handle(("press",), 30)["score"] == 0


def test_timeout_ends_at_the_deadline_and_input_extends_it():
    m = machine()
    m.handle(("trigger", "service_visit", "sv-3"), 1000)
    m.handle(("turn", 1), 20000)  # activity: the deadline moves to 50000
    assert m.tick(49999) is None
    result = m.tick(90000)
    assert result["outcome"] == "timeout" and result["at_ms"] == 50000
    assert "score" not in result and result["answer_ms"] is None
    m.saved(90000)
    assert m.state == pm.IDLE  # no thanks, no cool-down for a timeout


def test_long_press_dismisses():
    m = machine()
    m.handle(("trigger", "cycle_complete", None), 0)
    result = m.handle(("long",), 100)
    assert result["outcome"] == "dismissed" and "score" not in result


def test_cool_down_ignores_and_counts():
    m = machine()
    m.handle(("press",), 0)
    m.handle(("turn", 1), 10)
    m.handle(("turn", 4), 20)
    m.handle(("press",), 30)
    m.saved(30)
    m.handle(("press",), 1000)  # on the thank-you screen
    m.handle(("trigger", "cycle_complete", "tx-2"), 2000)  # busy
    m.tick(4000)
    assert m.state == pm.IDLE
    m.handle(("trigger", "cycle_complete", "tx-3"), 5000)  # cool-down until 10030
    m.handle(("press",), 6000)
    assert m.state == pm.IDLE
    assert m.counts == {
        "input_ignored": 1,
        "trigger_busy": 1,
        "trigger_cooldown": 1,
        "input_cooldown": 1,
    }, m.counts
    m.handle(("trigger", "cycle_complete", "tx-4"), 10030)
    assert m.state == pm.PROMPT


def test_failed_write_shows_error_then_idle():
    m = machine()
    m.handle(("press",), 0)
    m.handle(("turn", 1), 10)
    m.handle(("turn", 4), 20)
    m.handle(("press",), 30)
    m.failed(30)
    assert m.state == pm.ERROR
    m.tick(3030)
    assert m.state == pm.IDLE
