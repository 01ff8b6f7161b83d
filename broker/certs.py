"""A site CA and the broker's certificate, made with the `cryptography` package.

Devices and the gateway verify the broker against the site CA (config `broker.ca`,
gateway `broker_ca`), so the CA outlives the broker certificate: a new broker
certificate (new host names, or the old one expiring) is signed by the CA already
on every device, and no device has to be provisioned again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650  # ten years: the CA sits in every device's flash
SERVER_DAYS = 730  # two years: renewed with `nps-edge broker certs` and a SIGHUP
# Certificates start an hour back, so a host whose clock runs a little behind the
# machine that made them still accepts them.
BACKDATE = dt.timedelta(hours=1)
DEFAULT_NAMES = ("127.0.0.1", "localhost")
_DNS_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")


class CertError(ValueError):
    """A host name or a CA that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def make_ca(site: str, *, now: dt.datetime) -> KeyPair:
    """A self-signed CA for one site (EC P-256: small in a device's flash and handshake)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nps-edge"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"nps-edge site {site} CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def make_server_cert(
    ca: KeyPair, names: Sequence[str], *, now: dt.datetime, include_defaults: bool = True
) -> KeyPair:
    """The broker's certificate for names (IP addresses or DNS names), signed by ca.

    127.0.0.1 and localhost are added unless include_defaults is False, so the gateway
    on the broker's machine verifies it too.
    """
    try:
        ca_cert = x509.load_pem_x509_certificate(ca.cert)
        ca_key = serialization.load_pem_private_key(ca.key, password=None)
    except ValueError as err:
        raise CertError(f"the site CA cannot be read: {err}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) or _spki(
        ca_key.public_key()
    ) != _spki(ca_cert.public_key()):
        raise CertError("the site CA's key does not belong to its certificate")
    wanted = list(names) + (list(DEFAULT_NAMES) if include_defaults else [])
    sans = _sans(wanted)
    if not sans:
        raise CertError("the broker certificate needs at least one --name")
    key = ec.generate_private_key(ec.SECP256R1())
    first = str(sans[0].value)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_key_usage(digital_signature=True, key_agreement=True), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def _key_usage(
    *,
    digital_signature: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    """KeyUsage granting only the uses named (RFC 5280 section 4.2.1.3); the rest stay off."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _sans(names: Sequence[str]) -> list[x509.GeneralName]:
    """IP addresses as iPAddress, the rest as dNSName (RFC 5280 section 4.2.1.6), once each."""
    out: list[x509.GeneralName] = []
    for name in names:
        entry: x509.GeneralName
        try:
            entry = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            if not _DNS_RE.fullmatch(name):
                raise CertError(
                    f"--name {name!r} is neither an IP address nor a host name"
                ) from None
            entry = x509.DNSName(name.rstrip(".").lower())
        if entry not in out:
            out.append(entry)
    return out


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
