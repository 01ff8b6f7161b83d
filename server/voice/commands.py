"""What `nps-edge device voice-key` prints (server/cli.py registers the command)."""

from __future__ import annotations

import re

from contract.protocol import DEVICE_ID_PATTERN
from server.settings import Settings
from server.voice import keys


def voice_key(settings: Settings, device: str) -> str:
    """The device's voice key, base64; the secret file is created on first use.
    ValueError for an id that is not a device id or an unreadable secret file."""
    if not re.fullmatch(DEVICE_ID_PATTERN, device):
        raise ValueError(f"not a device id: {device[:80]!r} (pattern {DEVICE_ID_PATTERN})")
    secret = keys.load_secret(keys.secret_path(settings.voice_secret, settings.db))
    return keys.device_key_b64(secret, device)
