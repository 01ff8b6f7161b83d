"""config.json: read, fill defaults, check every field.

A bad file stops the boot with a clear message.
"""

import json

_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def _is_name(s, lo):
    """The contract's ^[a-z0-9][a-z0-9-]{lo-1,63}$ without the re module (heap)."""
    if not isinstance(s, str) or not lo <= len(s) <= 64 or s[0] == "-":
        return False
    for ch in s:
        if ch not in _ID_CHARS:
            return False
    return True


VOICE_AFTER = ("detractor", "all", "none")
SAMPLING_RULE = {"every": 1, "person_window_s": 0, "max_age_s": 172800}
RELATIONSHIP = {
    "every_days": 90,
    "role": "operator",
    "text": "Overall, how likely are you to recommend us?",
}
_RULE_BOUNDS = {"every": (1, 1000000), "person_window_s": (0, 31536000), "max_age_s": (0, 31536000)}
_MAX_SAMPLING_KINDS = 8  # one counter each on flash and in RAM: keep it small

DEFAULTS = {
    "device_id": None,  # None: the board's default, "nps-" + last six hex digits of the MAC
    "site": None,
    "wifi": {"ssid": None, "password": None},
    "broker": {
        "host": None,
        "port": 1883,
        "tls": False,
        "ca": None,
        "username": None,
        "password": None,
        "keepalive_s": 60,
        "window": 4,
        "ack_timeout_s": 10,
        "backoff_min_s": 1,
        "backoff_max_s": 60,
    },
    "topic_root": "nps/v1",
    "prompt": {
        "key": "nps",
        "text": "How likely are you to recommend us?",
        "lang": "en",
        "thanks": "Thank you!",
        "why": "What went wrong?",
    },
    "reasons": [],
    "timeouts": {"prompt_s": 30, "reason_s": 15, "thanks_s": 3},
    "min_answer_interval_s": 10,
    "telemetry_interval_s": 900,
    "ntp_host": "pool.ntp.org",
    # An event leaves flash once the gateway's ack covers it ("broker": its PUBACK, for a
    # site without the nps-edge gateway); unconfirmed ones go again after each reconnect
    # and after confirm_timeout_s without progress (docs/firmware.md, The outbox).
    "outbox": {"max_kb": 1024, "segment_kb": 16, "confirm": "gateway", "confirm_timeout_s": 30},
    "trigger": {"uart_prefix": "T", "gpio_kind": "cycle_complete"},
    # The NPS programme (docs/firmware.md, "Sampling, surveys, roles, voice"): over the air too.
    "sampling": {"*": {"every": 1, "person_window_s": 0, "max_age_s": 172800}},
    "survey": {"relationship": None},
    "roles": {"ask": False, "choices": None},  # None: all the roles of the contract
    "voice": {"after": "detractor", "base_url": None, "key": None, "show_s": 20},
    # Public keys (base64 of 32 bytes, Ed25519): releases must be signed by the
    # release key, commands by the server's command key (docs/firmware.md, Updates).
    "trust": {"release_pub": None, "command_pub": None},
    # A new firmware must prove healthy within confirm_s; after max_failed_boots
    # unconfirmed boots in a row the device goes back to the previous folder.
    "update": {"confirm_s": 300, "max_failed_boots": 3},
    "fw": None,  # simulator only: overrides the reported firmware version
    "sim": {},  # simulator only: rssi, battery_mv
}

# name -> (type, min, max); None bounds are unchecked.
_INTS = {
    "broker.port": (1, 65535),
    "broker.keepalive_s": (0, 65535),
    "broker.window": (1, 64),
    "broker.ack_timeout_s": (1, 3600),
    "broker.backoff_min_s": (0, 3600),
    "broker.backoff_max_s": (0, 86400),
    "timeouts.prompt_s": (1, 3600),
    "timeouts.reason_s": (1, 3600),
    "timeouts.thanks_s": (0, 60),
    "voice.show_s": (1, 600),
    "min_answer_interval_s": (0, 86400),
    "telemetry_interval_s": (0, 604800),
    "outbox.max_kb": (8, 1048576),
    "outbox.segment_kb": (1, 1024),
    "outbox.confirm_timeout_s": (1, 86400),
    "update.confirm_s": (10, 86400),
    "update.max_failed_boots": (1, 10),
}
_STRS = (
    "broker.host",
    "topic_root",
    "prompt.key",
    "prompt.text",
    "prompt.lang",
    "prompt.thanks",
    "prompt.why",
)


class ConfigError(ValueError):
    """config.json is missing, not JSON, or has a bad field; str() says which and why."""


def _merge(defaults, given, path):
    if not isinstance(given, dict):
        raise ConfigError("%s must be an object" % (path or "config.json"))
    out = {}
    for key in defaults:
        dv = defaults[key]
        if key not in given:
            out[key] = dv
        elif isinstance(dv, dict) and key not in ("sim", "sampling"):
            out[key] = _merge(dv, given[key], path + key + ".")
        else:
            out[key] = given[key]
    for key in given:
        if key not in defaults:
            raise ConfigError("unknown setting %s%s" % (path, key))
    return out


def _get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _type_name(v):
    return "null" if v is None else type(v).__name__


def check(cfg, default_device_id):
    """Validate a merged config in place; fill the device id. Raises ConfigError."""
    for name in _INTS:
        v = _get(cfg, name)
        lo, hi = _INTS[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
            raise ConfigError("%s must be an integer %d..%d, got %r" % (name, lo, hi, v))
    for name in _STRS:
        v = _get(cfg, name)
        if not isinstance(v, str) or not v:
            raise ConfigError("%s must be a non-empty string, got %s" % (name, _type_name(v)))
    if cfg["device_id"] is None:
        cfg["device_id"] = default_device_id
    dev = cfg["device_id"]
    if dev is None:
        raise ConfigError("device_id is not set and this board has no default")
    if not _is_name(dev, 3):
        raise ConfigError("device_id %r: use a-z, 0-9 and -, 3 to 64 long" % (dev,))
    site = cfg["site"]
    if not _is_name(site, 1):
        raise ConfigError("site %r: use a-z, 0-9 and -, 1 to 64 long" % (site,))
    if not isinstance(cfg["broker"]["tls"], bool):
        raise ConfigError("broker.tls must be true or false")
    for name in (
        "broker.username",
        "broker.password",
        "broker.ca",
        "wifi.ssid",
        "wifi.password",
        "fw",
        "trust.release_pub",
        "trust.command_pub",
    ):
        v = _get(cfg, name)
        if v is not None and not isinstance(v, str):
            raise ConfigError("%s must be a string or null, got %s" % (name, _type_name(v)))
    reasons = cfg["reasons"]
    if not isinstance(reasons, list) or len(reasons) > 4:
        raise ConfigError("reasons must be a list of at most 4 {code, label} objects")
    for i, r in enumerate(reasons):
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("code"), str)
            or not isinstance(r.get("label"), str)
            or not r["code"]
            or len(r["code"]) > 64
        ):
            raise ConfigError('reasons[%d] must be {"code": str (1..64), "label": str}' % i)
    _check_programme(cfg)
    for name in ("trust.release_pub", "trust.command_pub"):
        v = _get(cfg, name)
        if v is not None and (len(v) != 44 or v[-1] != "="):
            raise ConfigError("%s: not a public key" % name)  # base64 of 32 bytes
    if cfg["outbox"]["confirm"] not in ("gateway", "broker"):
        raise ConfigError("outbox.confirm must be gateway or broker")
    if cfg["outbox"]["segment_kb"] * 4 > cfg["outbox"]["max_kb"]:
        raise ConfigError("outbox.segment_kb must be at most a quarter of outbox.max_kb")
    return cfg


def _int_in(name, v, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise ConfigError("%s must be an integer %d..%d, got %r" % (name, lo, hi, v))


def _filled(name, given, defaults):
    """An object with every default key present and no unknown one."""
    if not isinstance(given, dict):
        raise ConfigError("%s must be an object" % name)
    for key in given:
        if key not in defaults:
            raise ConfigError("unknown setting %s.%s" % (name, key))
    out = dict(defaults)
    out.update(given)
    return out


# The contract's roles (additions of December 2026). trigger.py keeps its own copy so that
# neither module loads the other on the device; tests/firmware/test_roles_copies.py holds both
# equal to contract.protocol.ROLES.
ROLES = ("end_user", "operator", "technician", "buyer", "sponsor")


def _role(name, v, nullable):
    if not (nullable and v is None) and v not in ROLES:
        raise ConfigError(
            "%s must be one of %s%s" % (name, ", ".join(ROLES), " or null" if nullable else "")
        )


def _check_programme(cfg):
    """sampling, survey, roles, voice: the same checks whether from flash or over the air."""
    rules = cfg["sampling"]
    if not isinstance(rules, dict) or len(rules) > _MAX_SAMPLING_KINDS:
        raise ConfigError(
            "sampling must be an object of at most %d trigger kinds" % _MAX_SAMPLING_KINDS
        )
    for kind in rules:
        if not isinstance(kind, str) or not 1 <= len(kind) <= 64:
            raise ConfigError("sampling keys are trigger kinds (1..64 characters) or *")
        name = "sampling." + kind
        rule = rules[kind] = _filled(name, rules[kind], SAMPLING_RULE)
        for field in _RULE_BOUNDS:
            lo, hi = _RULE_BOUNDS[field]
            _int_in(name + "." + field, rule[field], lo, hi)
    rel = cfg["survey"]["relationship"]
    if rel is not None:
        rel = cfg["survey"]["relationship"] = _filled("survey.relationship", rel, RELATIONSHIP)
        _int_in("survey.relationship.every_days", rel["every_days"], 1, 3660)
        _role("survey.relationship.role", rel["role"], True)
        if not isinstance(rel["text"], str) or not rel["text"]:
            raise ConfigError("survey.relationship.text must be a non-empty string")
    roles = cfg["roles"]
    if not isinstance(roles["ask"], bool):
        raise ConfigError("roles.ask must be true or false")
    choices = roles["choices"]
    if choices is None:
        choices = roles["choices"] = list(ROLES)
    if not isinstance(choices, list) or not 1 <= len(choices) <= 5:
        raise ConfigError("roles.choices must list 1..5 roles, or be null for all")
    for i, role in enumerate(choices):
        _role("roles.choices[%d]" % i, role, False)
    voice = cfg["voice"]
    if voice["after"] not in VOICE_AFTER:
        raise ConfigError("voice.after must be one of %s" % ", ".join(VOICE_AFTER))
    url = voice["base_url"]
    if url is not None and (
        not isinstance(url, str)
        or not (url.startswith("http://") or url.startswith("https://"))
        or len(url) > 64
        or " " in url
    ):
        raise ConfigError("voice.base_url must be an http(s) URL of at most 64 characters, or null")
    key = voice["key"]
    if key is not None:
        import binascii

        try:
            raw = binascii.a2b_base64(key) if isinstance(key, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError("voice.key must be the device's 32-byte voice key in base64, or null")


def lay(cfg, partial):
    """A copy of cfg with a partial config laid over it (objects merged, the rest replaced)."""
    out = {}
    for key in cfg:
        out[key] = cfg[key]
    for key in partial:
        value = partial[key]
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            value = lay(out[key], value)
        out[key] = value
    return out


def with_override(cfg, paths, read_json):
    """cfg with the first good override file of paths (newest first) laid over it.

    Returns (cfg, state): state is the file's content ({"n", "cfg", "set"}, written
    by commands.py after checking every key), or None when none is usable, so a
    corrupt newest file falls back to the one before and a corrupt pair to the
    factory config.
    """
    for path in paths:
        state = read_json(path, None)
        try:
            return check(lay(cfg, state["set"]), cfg["device_id"]), state
        except (ConfigError, KeyError, TypeError, AttributeError, ValueError):
            continue
    return cfg, None


def parse(text, default_device_id):
    try:
        given = json.loads(text)
    except ValueError as err:
        raise ConfigError("config.json is not valid JSON (%s)" % err) from None
    return check(_merge(DEFAULTS, given, ""), default_device_id)


def load(path, default_device_id):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("%s not found: provision the device first" % path) from None
    return parse(text, default_device_id)
