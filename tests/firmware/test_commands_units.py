"""Signed commands and Ed25519 verification inside the real micropython binary, against
RFC 8032's vectors and signatures made here by the `cryptography` package."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

UNITS = Path(__file__).resolve().parent / "micropython"
DEVICE = "nps-a1b2c3"
NOW = 1_793_000_000


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed(key: Ed25519PrivateKey, command: dict[str, Any]) -> str:
    text = json.dumps(command)
    return json.dumps({"c": text, "s": b64(key.sign(text.encode()))})


def config_cmd(n: int, text: str, **extra: Any) -> dict[str, Any]:
    body = {"device": DEVICE, "n": n, "kind": "config", "exp": None, "cfg": n + 3}
    body["set"] = {"prompt": {"text": text}, "timeouts": {"prompt_s": 20}}
    body.update(extra)
    return body


def cases(seed: int = 14) -> dict[str, Any]:
    rng = random.Random(seed)
    key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    other = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    pub = b64(key.public_key().public_bytes_raw())
    sigs = []
    for size in (0, 1, 100, 700):
        msg = rng.randbytes(size)
        sig = key.sign(msg)
        sigs.append([pub, b64(msg), b64(sig), True])
        sigs.append([pub, b64(msg + b"!"), b64(sig), False])
        sigs.append([b64(other.public_key().public_bytes_raw()), b64(msg), b64(sig), False])
    forged = json.dumps({"c": json.dumps(config_cmd(9, "forged")), "s": b64(other.sign(b"x"))})
    update = {
        "version": "1.6.0",
        "url": "http://10.0.0.1:8080/fw/1.6.0/",
        "manifest_sha256": "ab" * 32,
    }
    seq = [
        ("first", signed(key, config_cmd(1, "First?")), None, "config"),
        ("second", signed(key, config_cmd(2, "Second?")), None, "config"),
        ("forged", forged, None, "cmd_sig"),
        ("other key", signed(other, config_cmd(3, "x")), None, "cmd_sig"),
        ("garbage", "{not json", None, "cmd_sig"),
        (
            "other device",
            signed(key, {**config_cmd(3, "x"), "device": "nps-ffffff"}),
            None,
            "cmd_device",
        ),
        ("replay", signed(key, config_cmd(2, "Second?")), None, "cmd_replay"),
        ("expired", signed(key, config_cmd(3, "late", exp=NOW - 1)), NOW, "cmd_expired"),
        ("no clock", signed(key, config_cmd(3, "late", exp=NOW + 60)), None, "cmd_expired"),
        (
            "broker",
            signed(key, {**config_cmd(3, "x"), "set": {"broker": {"host": "evil"}}}),
            None,
            "cmd_value",
        ),
        (
            "bad value",
            signed(key, {**config_cmd(3, "x"), "set": {"timeouts": {"prompt_s": -1}}}),
            None,
            "cmd_value",
        ),
        (
            "keys",
            signed(key, {**config_cmd(3, "x"), "set": {"trust": {"command_pub": pub}}}),
            None,
            "cmd_value",
        ),
        (
            "bad url",
            signed(
                key,
                {
                    "device": DEVICE,
                    "n": 3,
                    "kind": "update",
                    "release": {**update, "url": "ftp://x/"},
                },
            ),
            None,
            "cmd_value",
        ),
        ("in time", signed(key, config_cmd(3, "Third?", exp=NOW + 60)), NOW, "config"),
        ("reboot", signed(key, {"device": DEVICE, "n": 4, "kind": "reboot"}), None, "reboot"),
        (
            "update",
            signed(key, {"device": DEVICE, "n": 5, "kind": "update", "release": update}),
            None,
            "update",
        ),
        ("too long", json.dumps({"c": "x" * 3000, "s": ""}), None, "cmd_sig"),
    ]
    return {
        "device": DEVICE,
        "pub": pub,
        "signatures": sigs,
        "config": {"device_id": DEVICE, "site": "s1", "broker": {"host": "10.0.0.2"}},
        "sequence": [{"name": n, "payload": p, "now": t, "expect": e} for n, p, t, e in seq],
        "first_text": "First?",
        "second_text": "Second?",
        "last_text": "Third?",
        "last_n": 5,
        "last_cfg": 6,
    }


def test_commands_and_ed25519_under_micropython(
    micropython_bin: str, firmware_code: Path, tmp_path: Path
) -> None:
    (tmp_path / "cases.json").write_text(json.dumps(cases()))
    done = subprocess.run(
        [micropython_bin, "-X", "heapsize=512k", str(UNITS / "runner.py"), "cmd_checks"],
        cwd=tmp_path,
        env=dict(os.environ, MICROPYPATH=f"{UNITS}:{firmware_code}:.frozen"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert "FAIL" not in done.stdout, out
    assert done.stdout.splitlines()[-1] == "DONE 6 0", out
    verify_ms = int(re.search(r"VERIFY_MS (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    assert 0 < verify_ms < 2000, out
