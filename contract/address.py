"""`HOST`, `HOST:PORT` or `[IPV6]:PORT`: the one parser of a broker address.

The gateway (`--broker`), `nps-edge sim` and `nps-edge firmware provision` all read
their broker address here. The errors are ValueErrors whose text names what was
expected and what came, so each command can show them as they are.
"""

from __future__ import annotations

import ipaddress
from typing import overload

MQTT_PORT = 1883  # the IANA port of MQTT without TLS
FORMS = "HOST, HOST:PORT or [IPV6]:PORT"


class AddressError(ValueError):
    """The text is not HOST, HOST:PORT or [IPV6]:PORT."""


class PortOutOfRange(AddressError):
    """The port is a number, but not one of 1..65535."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port must be an integer 1..65535, got {port}")
        self.port = port


@overload
def parse_host_port(text: str, *, default_port: int = MQTT_PORT) -> tuple[str, int]: ...
@overload
def parse_host_port(text: str, *, default_port: None) -> tuple[str, int | None]: ...
def parse_host_port(text: str, *, default_port: int | None = MQTT_PORT) -> tuple[str, int | None]:
    """(host, port) from `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.

    A missing port is `default_port` (None: leave it to the caller's own default).
    IPv6 brackets are removed from the host. Raises AddressError for an empty host,
    a port that is not digits, or an unbracketed IPv6 address with a port, and
    PortOutOfRange for a port outside 1..65535.
    """
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket or not inside or (after and not after.startswith(":")):
            raise AddressError(f"expected {FORMS}, got {text!r}")
        host, port = inside, after[1:] if after else None
    elif text.count(":") > 1:
        if not _is_ipv6(text):
            raise AddressError(f"expected {FORMS} (IPv6 with a port in brackets), got {text!r}")
        host, port = text, None
    else:
        host, sep, port_text = text.partition(":")
        port = port_text if sep else None
    if not host or host != host.strip() or any(c.isspace() for c in host):
        raise AddressError(f"expected {FORMS}, got {text!r}")
    if port is None:
        return host, default_port
    if not port.isascii() or not port.isdigit():
        raise AddressError(f"expected {FORMS}, got {text!r}")
    number = int(port)
    if not 0 < number < 65536:
        raise PortOutOfRange(number)
    return host, number


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
