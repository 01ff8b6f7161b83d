"""contract/address.py: the one parser of a broker address (gateway, sim, provision)."""

from __future__ import annotations

import pytest

from contract.address import AddressError, PortOutOfRange, parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gw.store-042.lan", ("gw.store-042.lan", 1883)),
        ("127.0.0.1:8883", ("127.0.0.1", 8883)),
        ("localhost:1", ("localhost", 1)),
        ("broker:65535", ("broker", 65535)),
        ("[::1]:1883", ("::1", 1883)),
        ("[fe80::1]", ("fe80::1", 1883)),
        ("fe80::1", ("fe80::1", 1883)),  # a bare IPv6 address has no port
    ],
)
def test_the_forms_of_an_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


def test_the_default_port_is_the_callers() -> None:
    assert parse_host_port("gw", default_port=8883) == ("gw", 8883)
    assert parse_host_port("gw", default_port=None) == ("gw", None)
    assert parse_host_port("gw:1884", default_port=None) == ("gw", 1884)


@pytest.mark.parametrize(
    "text",
    ["", ":1883", "gw:", "gw:http", "gw:+1", "gw:١٢", "[::1", "[]:1883", "[::1]x", " gw", "g w:1"],
)
def test_bad_addresses_say_what_was_expected(text: str) -> None:
    with pytest.raises(AddressError, match=r"expected HOST, HOST:PORT or \[IPV6\]:PORT, got"):
        parse_host_port(text)


def test_an_ipv6_address_with_a_port_needs_brackets() -> None:
    with pytest.raises(AddressError, match="IPv6 with a port in brackets"):
        parse_host_port("::1:1883x")


@pytest.mark.parametrize("port", [0, 65536, 70000])
def test_a_port_out_of_range(port: int) -> None:
    with pytest.raises(PortOutOfRange, match=f"port must be an integer 1..65535, got {port}"):
        parse_host_port(f"gw:{port}")
    assert issubclass(PortOutOfRange, ValueError)
