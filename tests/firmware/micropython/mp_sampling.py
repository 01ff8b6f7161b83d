# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""sampling.py and trigger.py, fed times by hand; helpers for mp_survey.py."""

import json

import prompt as pm
import sampling as sp
from trigger import trigger_line

T0 = 1793000000  # unix s
DAY = 86400


def cfg(rules=None, relationship=None):
    return {
        "sampling": rules or {"*": {"every": 1, "person_window_s": 0, "max_age_s": 172800}},
        "survey": {"relationship": relationship},
        "voice": {"after": "detractor", "base_url": None, "key": None, "show_s": 20},
    }


class Flash:
    """What save() wrote, as JSON text: what survives a reboot."""

    def __init__(self):
        self.text = "{}"

    def save(self, state):
        self.text = json.dumps(state)

    def state(self):
        return json.loads(self.text)


def sampler(flash, c, counts=None):
    counts = counts if counts is not None else {"sampled_out": 0, "throttled": 0, "expired": 0}
    return sp.Sampler(c, flash.state(), flash.save, "nps-a1b2c3", lambda name: None, counts)


def machine(roles=()):
    return pm.PromptMachine([], 30000, 15000, 3000, 0, roles=roles)


def test_one_in_k_exact_over_a_long_run_and_across_reboots():
    flash = Flash()
    c = cfg({"cycle": {"every": 7}, "*": {"every": 1}})
    for rule in c["sampling"].values():
        rule.setdefault("person_window_s", 0)
        rule.setdefault("max_age_s", 172800)
    counts = {"sampled_out": 0, "throttled": 0, "expired": 0}
    prompted = 0
    s = sampler(flash, c, counts)
    for n in range(7000):
        if n == 3500:
            s = sampler(flash, c, counts)  # a reboot: the counter comes back from flash
        if s.check("cycle", None, None, T0 + n) is None:
            assert n % 7 == 0, n
            prompted += 1
    assert prompted == 1000, prompted
    assert counts["sampled_out"] == 6000 and flash.state()["n"]["cycle"] == 7000


def test_a_kind_asked_every_time_writes_nothing_to_flash():
    writes = []
    s = sp.Sampler(cfg(), {}, writes.append, "nps-a1b2c3", lambda name: None,
                   {"sampled_out": 0, "throttled": 0, "expired": 0})  # fmt: skip
    for n in range(50):
        assert s.check("cycle", None, None, T0 + n) is None  # "*": every one
    assert writes == []


def test_a_person_is_throttled_within_the_window_and_the_table_stays_small():
    flash = Flash()
    c = cfg({"*": {"every": 1, "person_window_s": 3600, "max_age_s": 172800}})
    s = sampler(flash, c)
    alice = "a1" * 32
    assert s.check("cycle", alice, None, T0) is None
    s.prompted(alice, T0)
    assert s.check("cycle", alice, None, T0 + 3599) == sp.THROTTLED
    assert s.check("cycle", "b2" * 32, None, T0 + 10) is None
    s = sampler(flash, c, s.counts)  # reboot: the table is on flash
    assert s.check("cycle", alice, None, T0 + 100) == sp.THROTTLED
    assert s.check("cycle", alice, None, T0 + 3600) is None
    assert s.counts["throttled"] == 2
    for i in range(40):
        s.prompted("%016x" % i, T0 + i)
    assert len(s.people) == 16 and len(flash.state()["p"]) == 16
    assert ["%016x" % 39, T0 + 39] in s.people and ["%016x" % 0, T0] not in s.people


def test_a_49_hour_old_deferred_prompt_expires_and_is_counted():
    flash = Flash()
    s = sampler(flash, cfg())
    now = T0 + 10 * DAY
    assert s.check("service_visit", None, now - 49 * 3600, now) == sp.EXPIRED
    assert s.counts["expired"] == 1 and "*" not in s.n  # not a transaction sample
    assert s.check("service_visit", None, now - 47 * 3600, now) is None
    assert s.check("service_visit", None, now - 49 * 3600, None) is None  # no clock: cannot tell


def test_offer_passes_role_and_records_the_person_only_when_shown():
    flash = Flash()
    c = cfg({"*": {"every": 1, "person_window_s": 600, "max_age_s": 172800}})
    s = sampler(flash, c)
    m = machine()
    ev = trigger_line(
        "T cycle_complete ref=tx-9 person=%s role=technician at=%d" % ("c3" * 8, T0), "T"
    )
    s.offer(m, ev, 1000, T0 + 5)
    assert m.state == pm.PROMPT and m.role == "technician" and m.survey == "transactional"
    assert s.people == [["c3" * 8, T0 + 5]]
    s.offer(m, trigger_line("T cycle_complete person=%s" % ("d4" * 8), "T"), 1100, T0 + 6)
    assert len(s.people) == 1 and m.counts["trigger_busy"] == 1  # busy: not shown, not recorded
    m.handle(("turn", 1), 2000)
    result = m.handle(("press",), 2500)
    assert result["role"] == "technician" and result["trigger"] == ("cycle_complete", "tx-9")


def test_trigger_line_syntax():
    assert trigger_line("T k tx-1", "T") == ("trigger", "k", "tx-1")
    ev = trigger_line("T k ref=r1 person=ABCDEF0123 role=buyer at=1793000000", "T")
    assert ev == ("trigger", "k", "r1", {"person": "abcdef0123", "role": "buyer", "at": 1793000000})
    for bad in (
        "T k role=boss",
        "T k person=xyz12345",
        "T k person=abc",
        "T k at=-5",
        "T k at=soon",
        "T k role=buyer role=buyer",
        "T k r1 ref=r2",
        "T k r1 r2",
        "T k colour=red",
        "T k ref=" + "x" * 129,
        "T " + "k" * 65,
    ):
        assert trigger_line(bad, "T") is None, bad
