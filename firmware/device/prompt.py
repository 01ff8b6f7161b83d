"""The prompt state machine: pure logic, driven by input events and the time in ms.

idle -> prompt (trigger or walk-up tap) -> [reason, scores 0-6 when reasons
are configured] -> [role, when the device asks and the trigger did not say]
-> saving -> thanks (or the QR code of the one-time link) -> idle, with a
cool-down before the next accepted answer. Every prompt shown ends in exactly one result (answered,
timeout or dismissed) that the application writes to the outbox.

Input events are tuples: ("turn", delta), ("press",), ("long",) and
("trigger", kind, ref[, tags]) where tags may give "survey", "role" and "text".
The first turn on the prompt selects 5, the middle of the scale, so no score
is suggested before the person moves.
"""

IDLE = "idle"
PROMPT = "prompt"
REASON = "reason"
SAVING = "saving"
THANKS = "thanks"
ERROR = "error"
ROLE = "role"

FIRST_PICK = 5


class PromptMachine:
    def __init__(self, reasons, prompt_ms, reason_ms, thanks_ms, min_interval_ms, roles=()):
        self.reasons = reasons  # list of reason codes, may be empty
        self.roles = roles  # roles to pick from after the score; empty: never asked
        self.prompt_ms = prompt_ms
        self.reason_ms = reason_ms
        self.thanks_ms = thanks_ms
        self.min_interval_ms = min_interval_ms
        self.state = IDLE
        self.cursor = None
        self.score = None
        self.trigger = None
        self.survey = "transactional"
        self.role = None
        self.reason = None
        self.link = None  # voice: the one-time link shown as a QR code
        self.text = None  # the question when not the configured one (relationship)
        self.shown_ms = 0
        self.answer_ms = None
        self.deadline = 0
        self.ready_ms = 0  # next answer accepted from this time on (cool-down)
        self.result = None
        self.counts = {}
        self.changed = True

    def _count(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    def handle(self, event, now):
        """Feed one input event; returns a finished prompt's result or None."""
        kind = event[0]
        state = self.state
        if kind == "trigger":
            if state != IDLE:
                self._count("trigger_busy")
            elif now < self.ready_ms:
                self._count("trigger_cooldown")
            else:
                tags = event[3] if len(event) > 3 else {}
                self._show(now, (event[1], event[2]), tags)
            return None
        if state == IDLE:
            if now < self.ready_ms:
                self._count("input_cooldown")
            elif kind == "press":
                self._show(now, ("walkup", None), {})
            return None
        if state == PROMPT:
            return self._on_prompt(kind, event, now)
        if state == REASON:
            return self._on_reason(kind, event, now)
        if state == ROLE:
            return self._on_role(kind, event, now)
        if self.link is not None and kind != "turn":
            self.deadline = now  # any press dismisses the QR code
            return None
        self._count("input_ignored")  # saving, thanks, error: nothing to pick
        return None

    def _on_prompt(self, kind, event, now):
        self.deadline = now + self.prompt_ms
        if kind == "turn":
            if self.cursor is None:
                self.cursor = FIRST_PICK
            else:
                self.cursor = min(10, max(0, self.cursor + event[1]))
            self.changed = True
        elif kind == "press":
            if self.cursor is None:
                return None  # nothing picked yet
            self.score = self.cursor
            self.answer_ms = now - self.shown_ms
            if self.reasons and self.score <= 6:
                self.state = REASON
                self.cursor = 0
                self.deadline = now + self.reason_ms
                self.changed = True
                return None
            return self._scored(now)
        elif kind == "long":
            return self._finish("dismissed", None, now)
        return None

    def _on_reason(self, kind, event, now):
        self.deadline = now + self.reason_ms
        if kind == "turn":
            self.cursor = min(len(self.reasons) - 1, max(0, self.cursor + event[1]))
            self.changed = True
        elif kind == "press":
            self.reason = self.reasons[self.cursor]
            return self._scored(now)
        elif kind == "long":
            return self._scored(now)  # the score stands, reason skipped
        return None

    def _scored(self, now):
        """Score (and reason) given: ask the role when wanted, else finish."""
        if not self.roles or self.role is not None:
            return self._finish("answered", self.reason, now)
        self.state = ROLE
        self.cursor = 0
        self.deadline = now + self.reason_ms
        self.changed = True
        return None

    def _on_role(self, kind, event, now):
        self.deadline = now + self.reason_ms
        if kind == "turn":
            self.cursor = min(len(self.roles) - 1, max(0, self.cursor + event[1]))
            self.changed = True
        elif kind == "press":
            self.role = self.roles[self.cursor]
            return self._finish("answered", self.reason, now)
        elif kind == "long":
            return self._finish("answered", self.reason, now)  # role skipped: unknown
        return None

    def tick(self, now):
        """Advance time; returns a result when a prompt timed out, else None."""
        if self.state == PROMPT and now >= self.deadline:
            return self._finish("timeout", None, self.deadline)
        if self.state in (REASON, ROLE) and now >= self.deadline:
            return self._finish("answered", self.reason, self.deadline)
        if self.state in (THANKS, ERROR) and now >= self.deadline:
            self.state = IDLE
            self.link = None
            self.changed = True
        return None

    def next_deadline(self, now=None):
        """When tick() next has something to do (or, given now, the cool-down ends), or None."""
        if self.state in (PROMPT, REASON, ROLE, THANKS, ERROR):
            return self.deadline
        if now is not None and self.cooling(now):
            return self.ready_ms  # the idle screen changes then
        return None

    def cooling(self, now):
        """Idle but inside the cool-down: a press now would be ignored."""
        return self.state == IDLE and now < self.ready_ms

    def _show(self, now, trigger, tags):
        self.state = PROMPT
        self.trigger = trigger
        self.survey = tags.get("survey", "transactional")
        self.role = tags.get("role")
        self.text = tags.get("text")
        self.reason = None
        self.link = None
        self.shown_ms = now
        self.cursor = None
        self.score = None
        self.answer_ms = None
        self.deadline = now + self.prompt_ms
        self.changed = True

    def _finish(self, outcome, reason, at):
        self.state = SAVING
        self.changed = True
        result = {
            "outcome": outcome,
            "trigger": self.trigger,
            "reason": reason,
            "survey": self.survey,
            "role": self.role,
            "answer_ms": self.answer_ms if outcome == "answered" else None,
            "at_ms": at,
        }
        if outcome == "answered":
            result["score"] = self.score
        self.result = result
        return result

    def saved(self, now, link=None, link_ms=0):
        """The result is on flash: thank the person (answers) or go back to idle.

        With a link, the thanks are its QR code, shown link_ms or until a press.
        """
        if self.result["outcome"] == "answered":
            self.state = THANKS
            self.link = link
            self.deadline = now + (self.thanks_ms if link is None else link_ms)
            self.ready_ms = now + self.min_interval_ms
        else:
            self.state = IDLE
        self.changed = True

    def failed(self, now):
        """The result could not be stored: say so instead of thanking."""
        self.state = ERROR
        self.deadline = now + self.thanks_ms
        self.changed = True
