"""The gateway's fleet settings turned into parts: the release file server and the address
devices reach it at (docs/gateway.md, "Commands and release files")."""

from __future__ import annotations

import logging

import httpx
from prometheus_client import CollectorRegistry

from contract.address import parse_host_port
from gateway.config import GatewaySettings
from gateway.files import Cache, FileServer, server_fetch
from gateway.logs import log_event

log = logging.getLogger("nps_edge.gateway.files")
ANY = ("0.0.0.0", "::", "")


def file_server(
    settings: GatewaySettings, client: httpx.Client, registry: CollectorRegistry
) -> FileServer | None:
    """The file server on `fw_host:fw_port`, or None when off (0) or the port is taken:
    the gateway still relays events and commands, and says why updates cannot go out."""
    if not settings.fw_port:
        return None
    cache = Cache(settings.fw_cache or settings.store.parent / "fw-cache", server_fetch(client))
    try:
        return FileServer(cache, registry, host=settings.fw_host, port=settings.fw_port)
    except OSError as err:
        log_event(log, logging.ERROR, "cannot serve release files; updates will wait",
                  port=settings.fw_port, host=settings.fw_host, error=str(err))  # fmt: skip
        return None


def fw_url(settings: GatewaySettings, server: FileServer | None) -> str | None:
    """http://HOST:PORT devices fetch from: `fw_url`, else fw_host, else the broker's host."""
    if server is None:
        return None
    if settings.fw_url:
        return settings.fw_url.rstrip("/")
    host = settings.fw_host if settings.fw_host not in ANY else parse_host_port(settings.broker)[0]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}"
