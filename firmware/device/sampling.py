"""Which prompts run and what follows an answer: the NPS programme around the prompt machine.

A host trigger is prompted 1 in k per kind, at most once per person per window
and only while fresh; the relationship prompt starts on its calendar when the
device is idle; an answer may be followed by the one-time link (voice.py).
Pure logic: times come in (ms since boot for the machine, unix seconds or None
while the wall clock is unknown for what lasts), and the state (a transaction
counter per kind, the recent people, the calendar) goes out through `save` so
it survives a reboot and can be audited: transaction n (from 0) of a kind sampled
1 in k (k > 1) is prompted iff n % k == 0; a kind asked every time keeps no counter,
so it costs no flash write. What was not prompted is counted per boot.
"""

import persist
import prompt as pm
from micropython import const

SAMPLED_OUT = "sampled_out"
THROTTLED = "throttled"
EXPIRED = "expired"
RELATIONSHIP = "relationship"
SCHEDULE = "schedule"  # the trigger kind of a relationship prompt

_PEOPLE = const(16)  # recent people remembered: a fixed, small table
_HASH_CHARS = const(16)  # of a person's hash kept (64 bits tell 16 people apart)
_RETRY_S = const(86400)  # a relationship prompt left unanswered is asked again a day later
_MAX_LINK = const(106)  # qr.MAX_BYTES: the longest link the QR code on the OLED holds
_DEFAULT_RULE = {"every": 1, "person_window_s": 0, "max_age_s": 172800}


class Sampler:
    def __init__(self, cfg, state, save, device, count, counts):
        """cfg: the config (sampling, survey, voice); state: what save() last wrote, or {};
        counts: the per-boot {sampled_out, throttled, expired} this adds to."""
        self.rules = cfg["sampling"]  # kind or "*" -> rule
        self.relationship = cfg["survey"]["relationship"]  # or None
        self.n = state.get("n") or {}
        self.people = state.get("p") or []  # [[hash prefix, unix s prompted], ...]
        self.rel = state.get("rel") or [None, None]  # [last answered, last shown] unix s
        self.save = save
        self.device = device
        self.count = count  # the application's error counter
        self.counts = counts
        voice = cfg["voice"]
        self.voice = None  # (base_url, key bytes, after, show ms) when the link is shown
        if voice["key"] is not None and voice["base_url"] is not None and voice["after"] != "none":
            import binascii

            key = binascii.a2b_base64(voice["key"])
            self.voice = (voice["base_url"], key, voice["after"], voice["show_s"] * 1000)

    def _store(self):
        self.save({"n": self.n, "p": self.people, "rel": self.rel})

    def check(self, kind, person, at_s, now_s):
        """A transaction of `kind` happened at at_s (None: now): None to prompt, else why not."""
        rules = self.rules
        key = kind if kind in rules else "*"
        rule = rules.get(key) or _DEFAULT_RULE
        max_age = rule["max_age_s"]
        why = None
        if max_age and at_s is not None and now_s is not None and now_s - at_s > max_age:
            why = EXPIRED  # asked too late to be about that transaction; not a sample
        else:
            every = rule["every"]
            if every > 1:  # 1 in 1 decides nothing by n: no flash write per transaction
                n = self.n.get(key, 0)
                self.n[key] = n + 1
                self._store()
                if n % every:
                    why = SAMPLED_OUT
            window = rule["person_window_s"]
            if why is None and person and window and now_s is not None:
                h = person[:_HASH_CHARS]
                for entry in self.people:
                    if entry[0] == h and now_s - entry[1] < window:
                        why = THROTTLED
        if why is not None:
            self.counts[why] += 1
        return why

    def prompted(self, person, now_s):
        """A prompt was shown to `person`: remember when, in place of the oldest when full."""
        if not person or now_s is None:
            return
        h = person[:_HASH_CHARS]
        people = self.people
        slot = None
        for entry in people:
            if entry[0] == h:
                slot = entry
        if slot is None and len(people) < _PEOPLE:
            slot = [h, 0]
            people.append(slot)
        elif slot is None:
            slot = people[0]
            for entry in people:
                if entry[1] < slot[1]:
                    slot = entry
            slot[0] = h
        slot[1] = now_s
        self._store()

    def relationship_next(self):
        """Unix s when the relationship prompt is due: every_days after the last answer,
        a day after a prompt nobody answered, 0 when never shown; None when not configured."""
        rel = self.relationship
        if rel is None:
            return None
        answered, shown = self.rel
        due = 0 if answered is None else answered + rel["every_days"] * 86400
        if shown is not None and (answered is None or shown > answered):
            due = max(due, shown + _RETRY_S)
        return due

    def offer(self, machine, ev, now_ms, now_s):
        """A host trigger event: to the machine when sampled in, fresh and not throttled."""
        tags = ev[3] if len(ev) > 3 else {}
        person = tags.get("person")
        # A person who walks up chose to answer: never sampled.
        if ev[1] != "walkup" and self.check(ev[1], person, tags.get("at"), now_s) is not None:
            return
        idle = machine.state == pm.IDLE
        machine.handle(("trigger", ev[1], ev[2], tags), now_ms)
        if idle and machine.state == pm.PROMPT:
            self.prompted(person, now_s)

    def tick(self, machine, now_ms, now_s):
        """Start the relationship prompt when it is due and the device is free."""
        due = self.relationship_next()
        if machine.state != pm.IDLE or now_ms < machine.ready_ms or due is None:
            return
        if now_s is None or now_s < due:
            return
        rel = self.relationship
        tags = {"survey": RELATIONSHIP, "role": rel["role"], "text": rel["text"]}
        machine.handle(("trigger", SCHEDULE, None, tags), now_ms)
        self.rel[1] = now_s
        self._store()

    def finished(self, result, seq, now_s):
        """An answer is stored as event seq: (link, ms to show it) or (None, 0)."""
        if result["outcome"] != "answered":
            return None, 0
        if result["survey"] == RELATIONSHIP and now_s is not None:
            self.rel[0] = now_s
            self._store()
        voice = self.voice
        if voice is None or (voice[2] == "detractor" and result["score"] > 6):
            return None, 0
        import voice as link_maker  # kept loaded: the screen draws its QR code next, then frees it

        url = link_maker.link(voice[0], voice[1], self.device, seq)
        if len(url) > _MAX_LINK:
            self.count("voice_link_long")
            return None, 0
        return url, voice[3]


def call(app, name, args):
    """For app.py: a Sampler on the state in sampling.json, one method called.

    Returns (what it returned, unix s the relationship prompt is due next or None).
    """
    path = app.board.root + "sampling.json"
    sampler = Sampler(
        app.programme_cfg,
        persist.read_json(path, {}),
        lambda state: persist.write_json(path, state),
        app.ident["device"],
        app.count,
        app.sampling,
    )
    return getattr(sampler, name)(*args), sampler.relationship_next()
