"""Where a request came from: the server's own origin, the client's address, and the
refusal of cross-site request forgery on writes that ride the session cookie.

Forwarded headers (`X-Forwarded-Proto`, `-Host`, `-For`) are believed only from a
peer listed in the `trusted_proxies` setting: anyone else could write them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.api.deps import COOKIE
from server.metrics import Metrics
from server.settings import Settings

# RFC 9110 section 9.2.1: the safe methods; every other one may change state.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
DEFAULT_PORT = {"http": 80, "https": 443}


def _is_trusted(host: str | None, proxies: Sequence[str]) -> bool:
    """`host` (the TCP peer) is one of the configured proxies (addresses or networks)."""
    if not host or not proxies:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in proxies)


def _first(value: str | None) -> str | None:
    """The first entry of a comma-separated forwarded header (the client-facing hop)."""
    if value is None:
        return None
    first = value.split(",")[0].strip()
    return first or None


def _behind_proxy(conn: HTTPConnection, settings: Settings) -> bool:
    return _is_trusted(conn.client.host if conn.client else None, settings.trusted_proxies)


def request_scheme(conn: HTTPConnection, settings: Settings) -> str:
    """`https` or `http`: as the client reached us, through a trusted proxy if there is one."""
    if _behind_proxy(conn, settings):
        forwarded = (_first(conn.headers.get("x-forwarded-proto")) or "").lower()
        if forwarded in DEFAULT_PORT:
            return forwarded
    return "https" if conn.url.scheme in ("https", "wss") else "http"


def normal_origin(scheme: str, netloc: str) -> str | None:
    """`scheme://host[:port]` lower-cased, the default port left out (RFC 6454 section 4)."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORT or not netloc or "@" in netloc:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return (
        f"{scheme}://{host}"
        if port in (None, DEFAULT_PORT[scheme])
        else f"{scheme}://{host}:{port}"
    )


def own_origin(conn: HTTPConnection, settings: Settings) -> str | None:
    """This server's origin as the browser sees it (Host, or X-Forwarded-Host via a proxy)."""
    host = conn.headers.get("host")
    if _behind_proxy(conn, settings):
        host = _first(conn.headers.get("x-forwarded-host")) or host
    return normal_origin(request_scheme(conn, settings), host or "")


def sent_origin(headers: Headers) -> str | None:
    """The origin the browser says the request comes from: Origin, else Referer's origin."""
    origin = headers.get("origin")
    if origin is not None:
        if origin == "null":  # an opaque origin (sandboxed frame, data: URL): never ours
            return "null"
        parts = urlsplit(origin)
        return normal_origin(parts.scheme, parts.netloc) or origin
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return normal_origin(parts.scheme, parts.netloc) or referer[:100]
    return None


def client_address(conn: HTTPConnection, settings: Settings) -> str:
    """The client's IP: the TCP peer, or through trusted proxies the nearest hop of
    X-Forwarded-For that is not itself a trusted proxy."""
    peer = conn.client.host if conn.client else "unknown"
    if not _behind_proxy(conn, settings):
        return peer
    hops = [h.strip() for h in conn.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, settings.trusted_proxies):
            return hop
    return hops[0] if hops else peer


def forgery(conn: HTTPConnection, settings: Settings) -> str | None:
    """Why this state-changing request may be forged by another site, or None.

    A bearer token is never sent by a browser on its own, so such requests are exempt.
    Any other write that carries the session cookie, or that says where it comes from
    (a login form posted from another site), must come from this server's own origin.
    """
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return None  # an empty one is no token: the route would log in by the cookie
    sent = sent_origin(conn.headers)
    if sent is None:
        if COOKIE not in conn.cookies:
            return None  # a script with neither cookie nor token: the route answers 401
        return (
            "cross-site request refused: a write with the session cookie must carry an"
            " Origin or Referer header naming this server"
        )
    own = own_origin(conn, settings)
    if sent != own:
        return f"cross-site request refused: origin {sent[:100]!r} is not this server ({own!r})"
    return None


class OriginCheck:
    """ASGI middleware: 403 with the reason for a write that another site may have forged."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            reason = forgery(HTTPConnection(scope), self.settings)
            if reason is not None:
                self.metrics.requests_forged.inc()
                await JSONResponse({"detail": reason}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
