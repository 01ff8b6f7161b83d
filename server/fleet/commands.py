"""The `cmd` message (docs/protocol.md, "cmd"), pure: what a config change may set, the
command text, and the signed message a gateway publishes.

    {"c": "<command JSON text>", "s": "<base64 Ed25519 signature of the UTF-8 bytes of c>"}
"""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.fleet.keys import sign_b64
from server.models.fleet import CommandKind

# A device reads an incoming PUBLISH of at most 1,024 bytes (firmware/device/mqtt.py RX_BYTES:
# its receive buffer, allocated once); past the fixed header (3), the topic's length (2) and
# `nps/v1/{device}/cmd` (at most 75) and the packet id (2), 900 bytes of payload always fit.
MAX_CMD_BYTES = 900

# The settable keys (FLEET.md): dotted path -> (kind, low, high). Whole sections `sampling`
# and `survey` (issue 15) take any JSON value; the device checks them against its DEFAULTS.
SETTABLE: dict[str, tuple[str, int, int]] = {
    "prompt.text": ("str", 1, 120),
    "prompt.thanks": ("str", 1, 120),
    "prompt.why": ("str", 1, 120),
    "prompt.lang": ("str", 2, 8),
    "reasons": ("reasons", 0, 12),
    "timeouts.prompt_s": ("int", 1, 3600),
    "timeouts.reason_s": ("int", 1, 3600),
    "timeouts.thanks_s": ("int", 0, 60),
    "min_answer_interval_s": ("int", 0, 86400),
    "telemetry_interval_s": ("int", 0, 604800),
}
OPEN_SECTIONS = ("sampling", "survey")
REASON = re.compile(r"^[a-z0-9_]{1,32}$")
VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$"


class BadSetting(ValueError):
    """A config change the device would refuse [cmd_value]; the message names the key."""


def flatten(partial: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"prompt": {"text": "x"}} -> {"prompt.text": "x"}; open sections stay whole."""
    out: dict[str, Any] = {}
    for key, value in partial.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in OPEN_SECTIONS and path not in SETTABLE:
            out |= flatten(value, f"{path}.")
        else:
            out[path] = value
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in sorted(flat.items()):
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def check_settings(partial: dict[str, Any]) -> dict[str, Any]:
    """The partial config flattened, each key in the whitelist with a value in bounds."""
    flat = flatten(partial)
    for path, value in flat.items():
        if path in OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise BadSetting(f"{path}: must be an object")
            continue
        rule = SETTABLE.get(path)
        if rule is None:
            raise BadSetting(f"{path[:80]}: not a setting that can be changed remotely")
        kind, low, high = rule
        if kind == "int":
            if type(value) is not int or not low <= value <= high:
                raise BadSetting(f"{path}: must be an integer from {low} to {high}")
        elif kind == "str":
            if not isinstance(value, str) or not low <= len(value) <= high:
                raise BadSetting(f"{path}: must be text of {low} to {high} characters")
        elif (
            not isinstance(value, list)
            or len(value) > high
            or not all(isinstance(r, str) and REASON.match(r) for r in value)
        ):
            raise BadSetting(f"{path}: must be a list of up to {high} reason codes [a-z0-9_]")
    return flat


def command_text(
    *, device: str, n: int, kind: CommandKind, exp: float | None, body: dict[str, Any]
) -> str:
    """The command JSON text the signature covers (compact, keys sorted: stable bytes)."""
    cmd = {"device": device, "n": n, "kind": str(kind), "exp": None if exp is None else int(exp)}
    return json.dumps(cmd | body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class TooLarge(ValueError):
    """The signed message would not fit a device's receive buffer (MAX_CMD_BYTES)."""


def signed_message(key: Ed25519PrivateKey, text: str) -> str:
    """The `cmd` payload: the text and its signature; TooLarge past MAX_CMD_BYTES."""
    message = json.dumps(
        {"c": text, "s": sign_b64(key, text.encode("utf-8"))},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    if len(message.encode("utf-8")) > MAX_CMD_BYTES:
        raise TooLarge(
            f"the signed command is {len(message.encode())} bytes; a device takes at most"
            f" {MAX_CMD_BYTES}: set fewer or shorter settings at a time"
        )
    return message
