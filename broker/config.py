"""The site broker's files as text: mosquitto.conf, the password file, the ACL and gateway.toml.

Pure: no file, database or clock is touched here (broker/cli.py does the I/O), so
the rules that lock a site down are read and tested in one place. Every name and
hash comes from the device registry; each is checked before it reaches a file,
because a newline in a user name would add lines of its own to the ACL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contract.protocol import DEVICE_ID_PATTERN, SITE_PATTERN, TOPIC_ROOT

PLAIN_PORT = 1883
TLS_PORT = 8883  # IANA's port for MQTT over TLS
DEFAULT_HOST = "127.0.0.1"

# The topics a device writes (contract: MQTT table); `cmd` is the one it reads.
DEVICE_TOPICS = ("feedback", "telemetry", "status")
COMMAND_TOPIC = "cmd"

# Mosquitto's PBKDF2-SHA512 password-file format (mosquitto_passwd, 2.0):
# $7$<iterations>$<base64 salt>$<base64 hash>.
_HASH_RE = re.compile(r"\$7\$[1-9][0-9]{0,8}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}")
_HOST_RE = re.compile(r"[A-Za-z0-9.:-]{1,253}")
_ROOT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}")


class BrokerConfigError(ValueError):
    """The registry or the options hold something that cannot go into a broker file.

    Subclasses: InvalidName (a site, user name, host or topic root), InvalidHash
    (not a `$7$` hash), NameClash (a device named like the gateway login),
    InvalidPath (a path Mosquitto's config parser would split).
    """


class InvalidName(BrokerConfigError):
    """A site, user name, host or topic root outside its documented pattern."""


class InvalidHash(BrokerConfigError):
    """A password hash that is not in Mosquitto's `$7$` format."""


class NameClash(BrokerConfigError):
    """Two logins with one name: the ACL could not tell them apart."""


class InvalidPath(BrokerConfigError):
    """A path with whitespace or control characters (one config line holds one path)."""


@dataclass(frozen=True)
class Login:
    """A broker login as the password file holds it: the user name and its `$7$` hash."""

    username: str
    password_hash: str


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of the TLS listener (`nps-edge broker certs` writes them)."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class BrokerFiles:
    """The text of the three files Mosquitto reads."""

    conf: str
    passwd: str
    acl: str


def gateway_username(site: str) -> str:
    """The gateway's broker login (and gateway id) for a site: `gw-<site>` (contract)."""
    return f"gw-{_site(site)}"


def default_port(tls: bool) -> int:
    return TLS_PORT if tls else PLAIN_PORT


def check_device(login: Login, *, site: str) -> None:
    """Raise the BrokerConfigError that would stop `render` for this device of site."""
    _check_login(login, gateway=False)
    if login.username == gateway_username(site):
        raise NameClash(f"device {login.username!r} has the gateway's name")


def render(
    *,
    site: str,
    out: Path,
    port: int,
    host: str,
    devices: Sequence[Login],
    gateway: Login,
    tls: TlsFiles | None = None,
    topic_root: str = TOPIC_ROOT,
) -> BrokerFiles:
    """mosquitto.conf, passwd and acl for one site; `out` is where they will be written."""
    site = _site(site)
    _check_host(host)
    if not 0 < port < 65536:
        raise InvalidName(f"port {port} is not in 1..65535")
    if not _ROOT_RE.fullmatch(topic_root):
        raise InvalidName(f"topic root {topic_root!r} must be 1-4 plain levels (no + # $)")
    if gateway.username != gateway_username(site):
        raise NameClash(f"the gateway login must be {gateway_username(site)!r}")
    logins = [gateway, *devices]
    seen: set[str] = set()
    for login in logins:
        _check_login(login, gateway=login is gateway)
        if login.username in seen:
            raise NameClash(f"two logins are named {login.username!r}")
        seen.add(login.username)
    return BrokerFiles(
        conf=_conf(out=out, port=port, host=host, tls=tls),
        passwd="".join(f"{login.username}:{login.password_hash}\n" for login in logins),
        acl=_acl(gateway.username, topic_root),
    )


def render_gateway_toml(
    *, site: str, broker: str, password: str, tls: bool, ca: Path | None = None
) -> str:
    """The gateway's broker settings (GatewaySettings field names), for `--config FILE`."""
    name = gateway_username(site)
    if ca is not None:
        _check_path(ca)
    lines = [
        "# Written by `nps-edge broker config`: this gateway's login to the site broker.",
        "# Keep it 0600; the password is kept when the command runs again.",
        f"broker = {_toml(broker)}",
        f"broker_username = {_toml(name)}",
        f"broker_password = {_toml(password)}",
        f"broker_tls = {'true' if tls else 'false'}",
    ]
    if ca is not None:
        lines.append(f"broker_ca = {_toml(str(ca))}")
    lines.append(f"gateway_id = {_toml(name)}")
    return "\n".join(lines) + "\n"


def gateway_address(host: str, port: int) -> str:
    """Where the gateway on the same machine reaches a listener bound to host."""
    if host in ("0.0.0.0", "::", ""):
        host = DEFAULT_HOST
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _conf(*, out: Path, port: int, host: str, tls: TlsFiles | None) -> str:
    for path in (out, *((tls.ca, tls.cert, tls.key) if tls else ())):
        _check_path(path)
    listener = [f"listener {port} {host}"]
    if tls is not None:
        listener += [
            f"cafile {tls.ca}",
            f"certfile {tls.cert}",
            f"keyfile {tls.key}",
            # TLS 1.2 and 1.3 only; devices are not asked for a certificate, they log in.
            "tls_version tlsv1.2",
        ]
    return f"""\
# Written by `nps-edge broker config` from the device registry: do not edit, run
# the command again (then `kill -HUP` the broker). docs/broker.md explains each line.
# Run: mosquitto -c {out}/mosquitto.conf

{chr(10).join(listener)}

# Who may connect and what each may do: every client logs in (no anonymous
# clients); a device writes only its own topics and reads only its own cmd.
allow_anonymous false
password_file {out}/passwd
acl_file {out}/acl
# The client id is the login, whatever the client sends: nobody can take over
# (and so kick, MQTT 3.1.1 section 3.1.4) another client's session.
use_username_as_clientid true

# Keep QoS 1 messages, retained status and persistent sessions (the gateway's
# clean_session=False queue) across a broker restart; written on a clean
# shutdown and every autosave_interval seconds (docs/gateway.md, "The broker's half").
persistence true
persistence_location {out}/data/
autosave_interval 10

# Queue up to a million QoS 1 messages per absent client (about a day of a large
# site; Mosquitto's default of 1,000 is minutes of a gateway restart), bounded by
# bytes too so a small box cannot run out of memory.
max_queued_messages 1000000
max_queued_bytes 536870912

# The gateway acknowledges after its store commit: 1,000 in flight cover a 20 ms
# commit at 50,000 messages/s (Mosquitto's default window is 20).
max_inflight_messages 1000

# Payloads are at most 2 KiB (contract); larger ones up to this limit reach the
# gateway and are dead-lettered with a reason. Beyond it Mosquitto drops them.
message_size_limit 8192

# PUBACKs and 300-byte events go out at once (no Nagle delay): about 1 ms.
set_tcp_nodelay true

# A disconnected persistent session (the gateway's queue) is kept for a week.
persistent_client_expiration 7d

log_dest stderr
"""


def _acl(gateway: str, root: str) -> str:
    own = [f"pattern write {root}/%u/{kind}" for kind in DEVICE_TOPICS]
    gw = [f"topic read {root}/+/{kind}" for kind in DEVICE_TOPICS]
    return "\n".join(
        [
            "# Written by `nps-edge broker config`: what each login may publish (write)",
            "# and receive (read). Anything not listed is refused (MQTT 3.1.1 section 5.4.2).",
            "",
            "# Devices (user name = device id = client id): their own topics only.",
            *own,
            f"pattern read {root}/%u/{COMMAND_TOPIC}",
            "",
            "# The gateway reads every device and writes only commands; the deny keeps",
            "# the device patterns above from letting it publish as a device named like it.",
            f"user {gateway}",
            f"topic deny {root}/{gateway}/#",
            *gw,
            f"topic write {root}/+/{COMMAND_TOPIC}",
            "",
        ]
    )


def _site(site: str) -> str:
    if not re.fullmatch(SITE_PATTERN, site):
        raise InvalidName(f"site {site!r} does not match {SITE_PATTERN}")
    return site


def _check_login(login: Login, *, gateway: bool) -> None:
    if not gateway and not re.fullmatch(DEVICE_ID_PATTERN, login.username):
        raise InvalidName(f"device login {login.username!r} does not match {DEVICE_ID_PATTERN}")
    if not _HASH_RE.fullmatch(login.password_hash):
        raise InvalidHash(f"the password hash of {login.username!r} is not Mosquitto's $7$ format")


def _check_host(host: str) -> None:
    if not _HOST_RE.fullmatch(host):
        raise InvalidName(f"host {host!r} is not an address or host name")


def _check_path(path: Path) -> None:
    text = str(path)
    if not text or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidPath(f"{text!r}: a path in mosquitto.conf cannot hold whitespace")


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (\\uXXXX included)."""
    return json.dumps(value, ensure_ascii=True)
