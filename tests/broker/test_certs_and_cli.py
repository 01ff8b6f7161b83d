"""`nps-edge broker certs` and `broker config` as commands: what they make, what they refuse,
and that a refused run leaves the files of the last good one in place."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from broker import cli
from broker.certs import CertError, KeyPair, make_ca, make_server_cert
from server.identity.registry import mosquitto_hash
from tests.broker.site import Site

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def test_site_ca_and_broker_certificate() -> None:
    ca_pair = make_ca("site-x", now=NOW)
    ca = x509.load_pem_x509_certificate(ca_pair.cert)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert (ca.not_valid_after_utc - NOW).days == 3650
    assert "site-x" in ca.subject.rfc4514_string()

    server_pair = make_server_cert(ca_pair, ["broker.example", "192.168.4.2"], now=NOW)
    server = x509.load_pem_x509_certificate(server_pair.cert)
    server.verify_directly_issued_by(ca)
    assert (server.not_valid_after_utc - NOW).days == 730
    assert server.not_valid_before_utc < NOW  # an hour of clock skew is tolerated
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example", "localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
        "192.168.4.2",
        "127.0.0.1",
    ]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize("name", ["bad name", "-x.example", "a..b", "x" * 300, "host\n"])
def test_a_name_that_is_neither_address_nor_host_is_refused(name: str) -> None:
    with pytest.raises(CertError, match="--name"):
        make_server_cert(make_ca("s", now=NOW), [name], now=NOW)


def test_a_ca_key_that_does_not_match_its_certificate_is_refused() -> None:
    one, two = make_ca("s", now=NOW), make_ca("s", now=NOW)
    with pytest.raises(CertError, match="does not belong"):
        make_server_cert(KeyPair(one.cert, two.key), [], now=NOW)
    with pytest.raises(CertError, match="cannot be read"):
        make_server_cert(KeyPair(b"junk", one.key), [], now=NOW)


def test_certs_command_keeps_the_site_ca_and_renews_the_broker_certificate(site: Site) -> None:
    first = site.make_certs("one.example")
    assert first.stdout == ""
    assert len([ln for ln in first.stderr.splitlines() if ln.startswith("wrote")]) == 4
    ca_before = (site.certs / "ca.crt").read_bytes()
    server_before = (site.certs / "server.crt").read_bytes()
    again = site.make_certs("two.example")
    assert "kept" in again.stderr
    assert (site.certs / "ca.crt").read_bytes() == ca_before  # devices keep trusting it
    assert (site.certs / "server.crt").read_bytes() != server_before
    server = x509.load_pem_x509_certificate((site.certs / "server.crt").read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "two.example" in sans.get_values_for_type(x509.DNSName)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in site.certs.iterdir()}
    assert modes == {"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600}
    if os.geteuid() == 0:
        assert (site.certs / "ca.key").stat().st_uid == 0  # the broker never reads the CA key


def test_certs_command_refuses_bad_input(site: Site) -> None:
    bad = site.cli("certs", "--site", "Site X", "--out", str(site.certs))
    assert bad.returncode == 2 and "site 'Site X'" in bad.stderr
    bad = site.cli("certs", "--site", "site-x", "--out", str(site.certs), "--name", "a b")
    assert bad.returncode == 2 and "'a b'" in bad.stderr
    assert not site.certs.exists()  # nothing made


def test_config_needs_an_existing_registry(site: Site) -> None:
    out = str(site.out)
    missing = site.cli(
        "config", "--db", f"sqlite:///{site.root}/typo.db", *("--site", "site-x", "--out", out)
    )
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    assert not (site.root / "typo.db").exists()
    sqlite3.connect(site.root / "empty.db").close()
    empty = site.cli(
        "config", "--db", f"sqlite:///{site.root}/empty.db", *("--site", "site-x", "--out", out)
    )
    assert empty.returncode == 1 and "no device registry" in empty.stderr
    assert not site.out.exists()


def test_config_tls_without_certificates_says_how_to_make_them(site: Site) -> None:
    done = site.cli("config", "--db", site.db, "--site", "site-x", "--out", str(site.out), "--tls")
    assert done.returncode == 2
    assert f"nps-edge broker certs --site site-x --out {site.out}" in done.stderr


def test_a_hostile_registry_row_is_left_out_and_named(site: Site) -> None:
    """Rows written around the registry's checks (a newline in the user name, a bad hash, the
    gateway's name) cannot reach the files, nor stop the other devices' changes."""
    good = site.configure()
    assert good.stdout == ""
    assert "mosquitto -c" in good.stderr and "kill -HUP" in good.stderr
    acl = (site.out / "acl").read_text()
    with sqlite3.connect(site.root / "server.db") as db:
        db.executemany(
            "INSERT INTO registered_device VALUES (?, ?, ?, ?, ?, NULL)",
            [
                ("dev-c", "site-x", "dev-c\nuser gw-site-x", mosquitto_hash("x"), 0.0),
                ("dev-d", "site-x", "dev-d", "$7$101$a$b\ngw-site-x:$7$1$x$y", 0.0),
                ("gw-site-x", "site-x", "gw-site-x", mosquitto_hash("x"), 0.0),
            ],
        )
    site.revoke("dev-a")
    done = site.cli("config", "--db", site.db, "--site", "site-x", "--out", str(site.out))
    assert done.returncode == 0, done.stderr
    assert "warning: left out 'dev-c\\nuser gw-site-x'" in done.stderr
    assert "warning: left out 'dev-d'" in done.stderr
    assert "warning: left out 'gw-site-x': device 'gw-site-x' has the gateway's name" in done.stderr
    passwd = (site.out / "passwd").read_text().splitlines()
    assert [line.split(":")[0] for line in passwd] == ["gw-site-x", "dev-b"]  # dev-a revoked
    assert (site.out / "acl").read_text() == acl


def test_every_broker_command_has_help(site: Site) -> None:
    for command, function in (("config", cli.config), ("certs", cli.certs)):
        done = site.cli(command, "--help")
        assert done.returncode == 0
        assert function.__doc__ and function.__doc__[:40] in done.stdout


def test_a_folder_the_broker_cannot_enter_is_named(site: Site, tmp_path: Path) -> None:
    if os.geteuid() != 0 or not _user_exists("mosquitto"):
        pytest.skip("only root hands the files to the mosquitto user")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    out = closed / "broker"
    done = site.cli("config", "--db", site.db, "--site", "site-x", "--out", str(out))
    assert done.returncode == 0
    assert f"warning: {closed} is closed to user mosquitto" in done.stderr
    assert "warning" not in site.configure().stderr  # the fixture's 0711 folder is open


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_config_refuses_a_bad_site_before_anything_else(site: Site) -> None:
    done = site.cli("config", "--db", site.db, "--site", "x\n", "--out", str(site.out), "--tls")
    assert done.returncode == 2 and "site 'x\\n' does not match" in done.stderr
    assert not site.out.exists()
