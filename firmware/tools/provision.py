"""config.json for one device: built from options or a file, checked by the device's own rules.

The device validates its config in firmware/device/config.py at boot; that module is
plain Python, so this tool loads the very same file and runs it here first. A config
that passes here cannot fail on the device for a reason this tool could have seen.
A field device also needs what the simulator does not: a site, a Wi-Fi network and a
broker host.
"""

from __future__ import annotations

import importlib.util
import json
import ssl
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from contract.address import AddressError, PortOutOfRange, parse_host_port
from firmware.tools.bundle import DEVICE_DIR

DEVICE_CONFIG = "config.json"
# Stands in for the MAC-derived id while checking a config that leaves device_id out.
PLACEHOLDER_ID = "nps-000000"
SECRETS = ("wifi.password", "broker.password")
# Passwords come from the environment, a file or --login, never from argv (visible in ps).
WIFI_PASSWORD_ENV = "NPS_EDGE_WIFI_PASSWORD"
MQTT_PASSWORD_ENV = "NPS_EDGE_MQTT_PASSWORD"
FIELD_REQUIRED = ("site", "wifi.ssid", "broker.host")


class ConfigInvalid(ValueError):
    """The config would stop the device at boot; str() names the setting and why."""


@cache
def device_rules(device_dir: Path = DEVICE_DIR) -> ModuleType:
    """firmware/device/config.py, loaded under CPython as a private module."""
    path = device_dir / "config.py"
    spec = importlib.util.spec_from_file_location("nps_edge_device_config", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ConfigInvalid(f"the device's config rules are missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_broker(value: str) -> tuple[str, int | None]:
    """`host` or `host:port`; without a port the config's (or the device's default) stays."""
    try:
        return parse_host_port(value, default_port=None)
    except PortOutOfRange as err:
        raise ConfigInvalid(f"broker.{err}") from None
    except AddressError:
        raise ConfigInvalid(f"--broker must be HOST or HOST:PORT, got {value!r}") from None


def parse_reasons(values: list[str]) -> list[dict[str, str]]:
    """`CODE=LABEL` options as the device's reason list."""
    reasons = []
    for value in values:
        code, sep, label = value.partition("=")
        if not sep or not code or not label:
            raise ConfigInvalid(f"--reason must be CODE=LABEL, got {value!r}")
        reasons.append({"code": code, "label": label})
    return reasons


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigInvalid(f"{part} must be an object")
        node = child
    node[last] = value


def get_path(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def with_settings(base: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """`base` (a config file's contents) with dotted settings laid over it; None leaves as is."""
    config = json.loads(json.dumps(base))
    for dotted, value in settings.items():
        if value is not None:
            set_path(config, dotted, value)
    return config


PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def read_ca(path: Path) -> str:
    """The broker's CA certificate for `broker.ca`: one PEM certificate, checked here
    because the device only finds out at its first TLS handshake."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigInvalid(f"cannot read the CA certificate {path}: {err}") from err
    if text.count(PEM_BEGIN) != 1:
        raise ConfigInvalid(f"{path} must hold exactly one PEM certificate ({PEM_BEGIN})")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as err:
        raise ConfigInvalid(f"{path} is not a usable certificate: {err}") from err
    return text


@dataclass(frozen=True)
class Login:
    """A device's broker login, as `nps-edge device add` prints it (contract, December 2026)."""

    device: str
    site: str
    username: str
    password: str

    def settings(self) -> dict[str, Any]:
        return {
            "device_id": self.device,
            "site": self.site,
            "broker.username": self.username,
            "broker.password": self.password,
        }


LOGIN_FIELDS = ("device", "site", "username", "password")


def read_login(source: str, stdin: IO[str]) -> Login:
    """The JSON line of `nps-edge device add`, from a file or `-` (stdin).

    Errors name the file and the field, never the password.
    """
    name = "stdin" if source == "-" else source
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigInvalid(f"cannot read the login {name}: {err.strerror}") from err
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        body = json.loads(lines[-1]) if lines else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ConfigInvalid(f"{name} is not the JSON line of `nps-edge device add`")
    for key in LOGIN_FIELDS:
        if not isinstance(body.get(key), str) or not body[key]:
            raise ConfigInvalid(f"the login in {name} has no {key}")
    login = Login(**{key: body[key] for key in LOGIN_FIELDS})
    if login.username != login.device:
        # Contract: username = device id = MQTT client id, so no device can take another's.
        raise ConfigInvalid(
            f"the login in {name} is for user {login.username!r} but device {login.device!r}"
        )
    return login


def trust_keys(release_pub: str | None, command_pub: str | None) -> dict[str, str | None]:
    """--release-pub / --command-pub as config `trust` settings, each checked as a key."""
    from firmware.tools import signing  # cryptography only when keys are given

    out: dict[str, str | None] = {}
    for dotted, value, option in (
        ("trust.release_pub", release_pub, "--release-pub"),
        ("trust.command_pub", command_pub, "--command-pub"),
    ):
        try:
            out[dotted] = None if value is None else signing.parse_public(value, option)
        except signing.SigningError as err:
            raise ConfigInvalid(str(err)) from None
    return out


def merge_login(settings: dict[str, Any], login: Login) -> dict[str, Any]:
    """The options with the login's values; an option that says otherwise is an error."""
    merged = dict(settings)
    for dotted, value in login.settings().items():
        given = settings.get(dotted)
        if given is not None and given != value:
            shown = "the password" if dotted.endswith("password") else repr(value)
            raise ConfigInvalid(f"{dotted} is given as an option but the login has {shown}")
        merged[dotted] = value
    return merged


def read_file(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigInvalid(f"cannot read {path}: {err.strerror}") from err
    except ValueError as err:
        raise ConfigInvalid(f"{path} is not valid JSON ({err})") from err
    if not isinstance(body, dict):
        raise ConfigInvalid(f"{path} must hold a JSON object")
    return body


def validate(config: dict[str, Any], device_dir: Path = DEVICE_DIR) -> dict[str, Any]:
    """Check `config` as the device will at boot; returns it with the device's defaults."""
    for dotted in FIELD_REQUIRED:
        if get_path(config, dotted) in (None, ""):
            raise ConfigInvalid(f"{dotted} is required on a field device")
    if get_path(config, "broker.ca") and get_path(config, "broker.tls") is not True:
        raise ConfigInvalid("broker.ca is set but broker.tls is not: add --tls")
    rules = device_rules(device_dir)
    try:
        merged: dict[str, Any] = rules.parse(json.dumps(config), PLACEHOLDER_ID)
    except rules.ConfigError as err:
        raise ConfigInvalid(str(err)) from err
    return merged


def render(config: dict[str, Any]) -> str:
    """The file written to the device: only the settings given, so later firmware
    defaults still apply to everything else."""
    return json.dumps(config, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """A copy safe and short to print: passwords as asterisks, the CA certificate by size."""
    shown = json.loads(json.dumps(config))
    for dotted in SECRETS:
        if get_path(shown, dotted):
            set_path(shown, dotted, "********")
    ca = get_path(shown, "broker.ca")
    if ca:
        set_path(shown, "broker.ca", f"<PEM certificate, {len(ca)} bytes>")
    return shown
