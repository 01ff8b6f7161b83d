# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Signed commands from the cmd topic: check them, decide, remember the last accepted one.

Wire format (docs/protocol.md, Commands): {"c": "<command JSON>", "s": "<base64
Ed25519 signature over c by the server's command key>"}. The command is parsed
only after its signature checks. Each refusal has a name, counted in telemetry
`errors` and shown as `cmd_error` in status: cmd_sig, cmd_device, cmd_replay,
cmd_expired, cmd_value. A refused command changes nothing.

Pure logic: the clock (unix seconds or None) comes in as an argument and the
state goes through `store` (save(state)); config checks are config.py's own.
"""

import json
import sys
from binascii import a2b_base64

from micropython import const

MAX_BYTES = const(2048)
# The last accepted command's state, newest first: a corrupt newest file falls back.
STATE_FILES = ("cmd.json", "cmd.prev.json")
KINDS = ("config", "reboot", "update")


# What a signed `cmd` may change (docs/protocol.md, FLEET): the prompt and its timing,
# never the broker, identity or keys. Every key config.DEFAULTS has under SETTABLE_UNDER
# is settable too. Kept here, not in config.py: names cost heap on the unix port.
SETTABLE = (
    "prompt.text",
    "prompt.thanks",
    "prompt.why",
    "prompt.lang",
    "reasons",
    "timeouts.prompt_s",
    "timeouts.reason_s",
    "timeouts.thanks_s",
    "min_answer_interval_s",
    "telemetry_interval_s",
)
SETTABLE_UNDER = ("sampling", "survey")


def _default(rules, dotted):
    node = rules.DEFAULTS
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def leaves(rules, partial, path, out):
    """Dotted names and values of a partial config; objects the defaults nest are walked."""
    if not isinstance(partial, dict):
        raise rules.ConfigError("%s must be an object" % (path[:-1] or "set"))
    for key in partial:
        dotted = path + key
        value = partial[key]
        if isinstance(_default(rules, dotted), dict) and isinstance(value, dict):
            leaves(rules, value, dotted + ".", out)
        else:
            out.append((dotted, value))
    return out


def settable(rules, dotted):
    if dotted in SETTABLE:
        return True
    return dotted.split(".")[0] in SETTABLE_UNDER and _default(rules, dotted) is not KeyError


def merge_partial(rules, old, new):
    """Two partial configs as one, only settable keys: new's leaves win (the override
    file keeps the sum). Raises ConfigError naming a key that may not be set."""
    out = json.loads(json.dumps(old))
    for dotted, value in leaves(rules, new, "", []):
        if not settable(rules, dotted):
            raise rules.ConfigError("%s cannot be set remotely" % dotted)
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class Refused(Exception):
    """A command that must not run; args[0] is the counter name, args[1] why."""


def _config_rules():
    # config.py is dropped after boot to give its heap back (main.py): load it per command.
    import config

    return config


def _forget(name):
    if name in sys.modules:
        del sys.modules[name]


def decode_key(text):
    """A base64 Ed25519 public key from config `trust`, or None when unset or unusable."""
    if not text:
        return None
    try:
        key = a2b_base64(text)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def check_release(release):
    """An update command's release: version, http URL ending in /, manifest SHA-256."""
    if not isinstance(release, dict):
        raise Refused("cmd_value", "release must be an object")
    version = release.get("version")
    url = release.get("url")
    digest = release.get("manifest_sha256")
    if not isinstance(version, str) or not 0 < len(version) <= 32 or "/" in version:
        raise Refused("cmd_value", "bad release version")
    if version.startswith("."):
        raise Refused("cmd_value", "bad release version")
    if not isinstance(url, str) or not url.startswith("http://") or not url.endswith("/"):
        raise Refused("cmd_value", "release url must be http://host[:port]/path/")
    if not isinstance(digest, str) or len(digest) != 64:
        raise Refused("cmd_value", "manifest_sha256 must be 64 hex digits")
    try:
        int(digest, 16)
    except ValueError:
        raise Refused("cmd_value", "manifest_sha256 must be 64 hex digits") from None
    return release


class Commands:
    """The device's side of remote control: verify, check, apply to the config, persist.

    state: the loaded override file ({"n", "cfg", "set"}) or None; store.save(state)
    replaces it atomically keeping the previous one. A config command is checked
    as the whole config it makes: config_path (config.json) with every accepted
    setting laid over it. handle() returns an action ("config", cfg) /
    ("reboot",) / ("update", release) or None when refused.
    """

    def __init__(self, device, command_pub, state, store, *, config_path, default_id):
        self.device = device
        self.config_path = config_path
        self.default_id = default_id
        self.key = decode_key(command_pub)
        self.store = store
        state = state or {}
        self.n = state.get("n", 0)
        self.cfg = state.get("cfg", 0)
        self.partial = state.get("set") or {}
        self.error = None
        self.counts = {}

    def refuse(self, name, why, log):
        self.counts[name] = self.counts.get(name, 0) + 1
        self.error = name
        log("cmd: refused (%s): %s" % (name, why))

    def handle(self, payload, now_s, log):
        """One cmd payload (bytes); now_s: unix seconds, None while the clock is unset."""
        try:
            cmd = self.verified(payload)
            action = self.decide(cmd, now_s)
        except Refused as err:
            self.refuse(err.args[0], err.args[1], log)
            return None
        self.n = cmd["n"]
        self.error = None
        self.save()
        log("cmd: accepted %s n=%d" % (cmd["kind"], self.n))
        return action

    def verified(self, payload):
        """The command object, once its signature by the command key checks."""
        if len(payload) > MAX_BYTES:
            raise Refused("cmd_sig", "longer than %d bytes" % MAX_BYTES)
        try:
            outer = json.loads(payload)
            text = outer["c"]
            sig = a2b_base64(outer["s"])
        except (ValueError, KeyError, TypeError) as err:
            raise Refused("cmd_sig", "not a signed command: %s" % err) from None
        if not isinstance(text, str):
            raise Refused("cmd_sig", "c must be a string")
        if self.key is None:
            raise Refused("cmd_sig", "no trust.command_pub in config.json")
        import ed25519

        ok = ed25519.verify(self.key, text.encode(), sig)
        del ed25519
        _forget("ed25519")  # verification is rare: give its code's heap back
        if not ok:
            raise Refused("cmd_sig", "signature does not verify")
        try:
            cmd = json.loads(text)
        except ValueError:
            raise Refused("cmd_value", "signed text is not JSON") from None
        if not isinstance(cmd, dict):
            raise Refused("cmd_value", "command must be an object")
        return cmd

    def decide(self, cmd, now_s):
        if cmd.get("device") != self.device:
            raise Refused("cmd_device", "for device %r" % (cmd.get("device"),))
        n = cmd.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise Refused("cmd_value", "n must be an integer >= 1")
        if n <= self.n:
            raise Refused("cmd_replay", "n=%d, last accepted %d" % (n, self.n))
        exp = cmd.get("exp")
        if exp is not None:
            if not isinstance(exp, int) or isinstance(exp, bool):
                raise Refused("cmd_value", "exp must be unix seconds or null")
            if now_s is None:
                raise Refused("cmd_expired", "the clock is not set yet: cannot check exp")
            if now_s > exp:
                raise Refused("cmd_expired", "expired %d s ago" % (now_s - exp))
        kind = cmd.get("kind")
        if kind == "reboot":
            return ("reboot",)
        if kind == "update":
            return ("update", check_release(cmd.get("release")))
        if kind != "config":
            raise Refused("cmd_value", "unknown kind %r" % (kind,))
        version = cmd.get("cfg")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise Refused("cmd_value", "cfg must be an integer >= 0")
        rules = _config_rules()
        try:
            partial = merge_partial(rules, self.partial, cmd.get("set"))
            base = rules.load(self.config_path, self.default_id)
            cfg = rules.check(rules.lay(base, partial), base["device_id"])
        except rules.ConfigError as err:
            raise Refused("cmd_value", str(err)) from None
        finally:
            del rules
            _forget("config")
        self.partial = partial
        self.cfg = version
        return ("config", cfg)

    def save(self):
        self.store.save({"n": self.n, "cfg": self.cfg, "set": self.partial})


def receive(fleet, payload):
    """fleet.py's hook: judge one cmd payload against the state on flash, then update
    fleet's status fields and counters and hand the action on."""
    import os

    import persist

    board = fleet.board
    clock = fleet.app.clock
    now_ms = clock.unix_ms(clock.ms())
    root = board.root
    state = None
    for path in STATE_FILES:
        state = persist.read_json(root + path, None)
        if isinstance(state, dict):
            break
    handler = Commands(
        fleet.device,
        fleet.trust["command_pub"],
        state,
        FileStore(root, persist.write_json, os.rename),
        config_path=root + "config.json",
        default_id=board.default_device_id,
    )
    status = fleet.status
    handler.n = max(handler.n, status["cmd"])  # never below what this boot accepted
    handler.counts = fleet.counts
    action = handler.handle(payload, None if now_ms is None else now_ms // 1000, board.log)
    status["cmd"] = handler.n
    status["cfg"] = handler.cfg
    status["cmd_error"] = handler.error
    if action is None:
        return
    if action[0] == "update":
        import ota

        ota.start(fleet, action[1])
    else:
        fleet.todo = action


class FileStore:
    """The override state on flash: the newest file, and the one before it as a fallback."""

    def __init__(self, root, write_json, rename):
        self.paths = (root + STATE_FILES[0], root + STATE_FILES[1])
        self.write_json = write_json
        self.rename = rename

    def save(self, state):
        try:
            self.rename(self.paths[0], self.paths[1])  # the last good one stays as fallback
        except OSError:
            pass  # first command: nothing to keep
        self.write_json(self.paths[0], state)
