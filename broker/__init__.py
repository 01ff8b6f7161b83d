"""The site broker: Mosquitto's config, logins and ACL generated from the device registry.

`config` renders the files (pure), `certs` makes the site CA and the broker's
certificate, `files` writes them readable by the broker only, `cli` is
`nps-edge broker config|certs`. docs/broker.md explains the choices.
"""

from broker.certs import CertError, KeyPair, make_ca, make_server_cert
from broker.config import (
    BrokerConfigError,
    BrokerFiles,
    InvalidHash,
    InvalidName,
    InvalidPath,
    Login,
    NameClash,
    TlsFiles,
    gateway_username,
    render,
    render_gateway_toml,
)

__all__ = [
    "BrokerConfigError",
    "BrokerFiles",
    "CertError",
    "InvalidHash",
    "InvalidName",
    "InvalidPath",
    "KeyPair",
    "Login",
    "NameClash",
    "TlsFiles",
    "gateway_username",
    "make_ca",
    "make_server_cert",
    "render",
    "render_gateway_toml",
]
