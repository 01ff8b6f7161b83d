# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Signed commands and Ed25519 inside MicroPython; cases.json (written by
tests/firmware/test_commands_units.py with the `cryptography` package) in the cwd."""

import json
import os
import time
from binascii import a2b_base64

import commands
import config
import ed25519
import persist

with open("cases.json") as f:
    CASES = json.load(f)

# RFC 8032 section 7.1, TEST 1-3: (public key, message, signature).
RFC8032 = (
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
        "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
        "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290"
        "ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
)


def unhex(s):
    return bytes(int(s[i : i + 2], 16) for i in range(0, len(s), 2))


def test_rfc8032_vectors_verify_and_flipped_bits_do_not():
    for pub, msg, sig in RFC8032:
        pub, msg, sig = unhex(pub), unhex(msg), unhex(sig)
        assert ed25519.verify(pub, msg, sig)
        assert not ed25519.verify(pub, msg + b"x", sig)
        bad = bytearray(sig)
        bad[5] ^= 1
        assert not ed25519.verify(pub, msg, bytes(bad))
        bad = bytearray(sig)
        bad[40] ^= 0x10
        assert not ed25519.verify(pub, msg, bytes(bad))


def test_signatures_made_by_cryptography_verify():
    t0 = time.ticks_ms()
    for pub, msg, sig, good in CASES["signatures"]:
        got = ed25519.verify(a2b_base64(pub), a2b_base64(msg), a2b_base64(sig))
        assert got == good, (msg, good)
    per = time.ticks_diff(time.ticks_ms(), t0) // len(CASES["signatures"])
    print("VERIFY_MS %d" % per)


def test_malformed_keys_and_signatures_are_refused_not_crashed():
    pub, msg, sig, _ = CASES["signatures"][0]
    pub, msg, sig = a2b_base64(pub), a2b_base64(msg), a2b_base64(sig)
    assert not ed25519.verify(pub[:31], msg, sig)
    assert not ed25519.verify(pub, msg, sig[:63])
    assert not ed25519.verify(b"\xff" * 32, msg, sig)  # y >= p: not a point
    big_s = sig[:32] + b"\xff" * 32  # S >= L (5.1.7: malleability)
    assert not ed25519.verify(pub, msg, big_s)


class Memory:
    def __init__(self):
        self.saved = []

    def save(self, state):
        self.saved.append(state)


def logged(lines):
    return lambda line: lines.append(line)


def fresh(store, state=None):
    return commands.Commands(
        CASES["device"],
        CASES["pub"],
        state,
        store,
        config_path="config.json",
        default_id=None,
    )


def test_command_sequence_accepts_and_refuses_by_name():
    with open("config.json", "w") as f:
        f.write(json.dumps(CASES["config"]))
    store = Memory()
    cmds = fresh(store)
    lines = []
    for case in CASES["sequence"]:
        action = cmds.handle(case["payload"].encode(), case["now"], logged(lines))
        want = case["expect"]
        if want.startswith("cmd_"):
            assert action is None and cmds.error == want, (case["name"], cmds.error, lines[-1])
        else:
            assert action is not None and action[0] == want, (case["name"], lines[-1])
            assert cmds.error is None
    counts = cmds.counts
    for name in ("cmd_sig", "cmd_device", "cmd_replay", "cmd_expired", "cmd_value"):
        assert counts.get(name, 0) >= 1, (name, counts)
    last = store.saved[-1]
    assert last["n"] == CASES["last_n"] and last["cfg"] == CASES["last_cfg"], last
    assert last["set"]["prompt"]["text"] == CASES["last_text"], last


def test_config_action_is_the_whole_checked_config():
    with open("config.json", "w") as f:
        f.write(json.dumps(CASES["config"]))
    cmds = fresh(Memory())
    action = cmds.handle(CASES["sequence"][0]["payload"].encode(), None, logged([]))
    cfg = action[1]
    assert cfg["prompt"]["text"] == CASES["first_text"]
    assert cfg["timeouts"]["prompt_s"] == 20
    assert cfg["broker"]["host"] == CASES["config"]["broker"]["host"]  # untouched


def test_override_survives_and_a_corrupt_newest_file_falls_back():
    with open("config.json", "w") as f:
        f.write(json.dumps(CASES["config"]))
    for name in commands.STATE_FILES:
        try:
            os.remove(name)
        except OSError:
            pass
    store = commands.FileStore("", persist.write_json, os.rename)
    cmds = fresh(store)
    for case in CASES["sequence"][:2]:  # two accepted config commands
        cmds.handle(case["payload"].encode(), None, logged([]))
    base = config.load("config.json", None)
    cfg, state = config.with_override(base, commands.STATE_FILES, persist.read_json)
    assert state["n"] == 2 and cfg["prompt"]["text"] == CASES["second_text"], state
    with open(commands.STATE_FILES[0], "w") as f:
        f.write('{"n": 3, "cfg": 9, "set": {"timeouts": {"prompt_s": -1}}}')  # a bad value
    cfg, state = config.with_override(base, commands.STATE_FILES, persist.read_json)
    assert state["n"] == 1 and cfg["prompt"]["text"] == CASES["first_text"], state
    with open(commands.STATE_FILES[0], "w") as f:
        f.write("{trunc")
    with open(commands.STATE_FILES[1], "w") as f:
        f.write("{trunc")
    cfg, state = config.with_override(base, commands.STATE_FILES, persist.read_json)
    assert state is None and cfg["prompt"]["text"] == base["prompt"]["text"]
    # A device restarted from the saved state refuses the replay of what it took.
    again = fresh(Memory(), {"n": 2, "cfg": 5, "set": {}})
    assert again.handle(CASES["sequence"][1]["payload"].encode(), None, logged([])) is None
    assert again.error == "cmd_replay"
