# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""What the screens say: the cool-down, the scale's end labels, the broker's name lookup."""

import mqtt
import prompt as pm
from screens import Screens

TEXTS = {"text": "How likely are you to recommend us?", "thanks": "Thank you!", "why": "Why?"}


class Display:
    """Records the text drawn; the other framebuf calls do nothing."""

    def __init__(self):
        self.texts = []

    def fill(self, c):
        self.texts = []

    def text(self, s, x, y, c=1):
        self.texts.append((s, x, y))

    def fill_rect(self, *a):
        pass

    def rect(self, *a):
        pass

    def hline(self, *a):
        pass

    def show(self):
        pass

    def words(self):
        return [t[0] for t in self.texts]


def machine_after_an_answer():
    m = pm.PromptMachine([], 30000, 15000, 3000, 10000)
    m.handle(("press",), 0)
    m.handle(("turn", 1), 100)
    m.handle(("press",), 200)  # answered at 200: saved, thanks until 3200, cool-down to 10200
    m.saved(200)
    m.tick(4000)
    return m


def test_idle_says_please_wait_during_the_cool_down():
    d = Display()
    s = Screens(d, 128, 64, TEXTS, [])
    m = machine_after_an_answer()
    assert m.state == pm.IDLE and m.cooling(4000)
    s.render(m, True, 0, 4000)
    assert "please wait" in d.words() and "press to rate" not in d.words()
    assert m.next_deadline(4000) == 10200  # the screen changes when the cool-down ends
    assert m.handle(("press",), 5000) is None and m.state == pm.IDLE  # the press is ignored
    s.render(m, True, 0, 10200)
    assert "press to rate" in d.words() and not m.cooling(10200)
    assert m.next_deadline(10200) is None


def test_scale_shows_its_end_labels_on_screen():
    d = Display()
    s = Screens(d, 128, 64, TEXTS, [])
    m = pm.PromptMachine([], 30000, 15000, 3000, 10000)
    m.handle(("press",), 0)
    s.render(m, True, 0, 0)
    drawn = {t[0]: t for t in d.texts}
    assert drawn["not likely"][1] == 0  # under 0, on the left
    high = drawn["extremely likely"]
    assert high[1] + len(high[0]) * 8 == 128  # under 10, on the right
    for label in [str(n) for n in range(11)] + ["not likely", "extremely likely"]:
        x, y = drawn[label][1], drawn[label][2]
        assert 0 <= x and x + len(label) * 8 <= 128 and 0 <= y <= 56, label
    rows = sorted({t[2] for t in d.texts})
    assert all(rows[i + 1] - rows[i] >= 8 for i in range(len(rows) - 1)), rows  # no overlap
    assert len([t for t in d.texts if t[2] < 27]) == 3  # the whole question still shows


def test_status_line_says_dns_while_the_broker_name_is_looked_up():
    d = Display()
    s = Screens(d, 128, 64, TEXTS, [])
    s.render(pm.PromptMachine([], 1, 1, 1, 0), "dns", 0, 0)
    assert "dns" in d.words()


def test_client_gives_the_screen_a_turn_before_a_blocking_lookup():
    opened = []

    def opener(host, port, tls, ca):
        opened.append(host)
        raise OSError(111)

    settings = {
        "host": "broker.example", "port": 1883, "tls": False, "ca": None,
        "username": None, "password": None, "keepalive_s": 60, "window": 4,
        "ack_timeout_s": 10, "backoff_min_s": 1, "backoff_max_s": 2,
    }  # fmt: skip
    c = mqtt.Client(
        settings, "d", will_topic="t", will_msg="{}", rand=lambda: 0.0, link=lambda: True,
        on_up=lambda: None, on_ack=lambda t, p: None, log=lambda m: None, opener=opener,
    )  # fmt: skip
    c.poll()
    assert c.looking_up and opened == []  # this turn only says it will look the name up
    c.poll()
    assert not c.looking_up and opened == ["broker.example"]
    assert c.errors["mqtt_connect_fail"] == 1


def test_an_address_is_never_looked_up_and_a_name_once():
    assert mqtt.is_address("127.0.0.1") and mqtt.is_address("::1")
    assert not mqtt.is_address("broker.local")
    mqtt._resolved.clear()
    try:
        mqtt.open_socket("localhost", 1, False).close()  # /etc/hosts: no network needed
    except OSError:
        pass
    assert "localhost" in mqtt._resolved
