"""Release files for the site's devices (issue 14): fetched once from the server, checked
against the release's manifest, kept on disk, and served on the site network over HTTP:

    GET /fw/{version}/{path}      with `Range: bytes=a-b` (206) so a device resumes

Read-only: only files a stored release lists (and its manifest.json, manifest.sig); no
listing, no other path, no traversal (names are matched whole against a strict pattern,
never joined with what a client sent). Devices check the release key's signature and
every hash themselves; the gateway's own check keeps a corrupt download out of its cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter

from gateway.logs import log_event

log = logging.getLogger("nps_edge.gateway.files")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$")
SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
PATH = re.compile(rf"^(?:{SEGMENT}/){{0,4}}{SEGMENT}$")
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
RANGE = re.compile(r"^bytes=(\d{0,15})-(\d{0,15})$")
CHUNK = 64 * 1024

Fetch = Callable[[str, str], bytes | None]


class FetchError(RuntimeError):
    """The server could not be asked (down, refused): the device gets 502 and retries."""


def server_fetch(client: httpx.Client) -> Fetch:
    """Fetch a release file from the server with the gateway's token; None when it has none."""

    def fetch(version: str, path: str) -> bytes | None:
        try:
            response = client.get(f"/api/v1/gateway/releases/{version}/{path}")
        except httpx.HTTPError as err:
            raise FetchError(str(err)) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code} from the server")
        return response.content

    return fetch


def valid(version: str, path: str) -> bool:
    return bool(VERSION.match(version) and PATH.match(path)) and ".." not in path


class Cache:
    """Release files on disk under `root/{version}/{path}`, each written whole (rename)."""

    def __init__(self, root: Path, fetch: Fetch) -> None:
        self.root = root
        self.fetch = fetch
        self._lock = threading.Lock()

    def file(self, version: str, path: str) -> Path | None:
        """The cached file, fetched (and checked) on first use; None: no such release file."""
        if not valid(version, path):
            return None
        with self._lock:  # one fetch of a file at a time, however many devices ask
            target = self.root / version / path
            if target.is_file():
                return target
            if path == MANIFEST:
                return target if self._manifest(version) is not None else None
            if path == SIGNATURE:
                data = self.fetch(version, path)
            else:
                data = self._checked(version, path)
            if data is None:
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            return target

    def _checked(self, version: str, path: str) -> bytes | None:
        """A file the release's manifest lists, with the size and SHA-256 it gives."""
        manifest = self._manifest(version)
        if manifest is None:
            return None
        files = manifest.get("files")
        if not isinstance(files, list):
            return None
        entry = next((f for f in files if isinstance(f, dict) and f.get("path") == path), None)
        if entry is None:
            return None
        data = self.fetch(version, path)
        if data is None:
            return None
        if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get(
            "sha256"
        ):
            raise FetchError(f"{version}/{path} from the server does not match its manifest")
        return data

    def _manifest(self, version: str) -> dict[str, object] | None:
        target = self.root / version / MANIFEST
        if target.is_file():
            raw: bytes | None = target.read_bytes()
        else:
            raw = self.fetch(version, MANIFEST)
            if raw is None:
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{MANIFEST}.tmp")
            tmp.write_bytes(raw)
            os.replace(tmp, target)
        try:
            body = json.loads(raw or b"")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


class Unsatisfiable(ValueError):
    """A range that starts past the end of the file: 416 (RFC 9110 section 15.5.17)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single `bytes=` range (RFC 9110 section 14.1.2); None
    for no or an ignorable header (the whole file); Unsatisfiable for 416."""
    if header is None:
        return None
    m = RANGE.match(header.strip())
    if m is None:
        return None  # several ranges or another unit: the whole file (allowed by 14.2)
    a, b = m.groups()
    if a == "" and b == "":
        return None
    if a == "":  # the last b bytes
        n = int(b)
        if n == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(size - n, 0), size - 1
    first = int(a)
    last = size - 1 if b == "" else min(int(b), size - 1)
    if first >= size or (b != "" and int(b) < first):
        raise Unsatisfiable(header)
    return first, last


class FileMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "nps_gateway_fw_requests",
            "Release file requests from devices, by answer status",
            ["status"],
            registry=registry,
        )


def handler(cache: Cache, metrics: FileMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "nps-edge-gateway"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # counted in metrics; the access log would be one line per chunk

        def _status(self, code: int, message: str = "") -> None:
            metrics.requests.labels(str(code)).inc()
            body = message.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = self.path.split("?", 1)[0].split("/", 3)
            if len(parts) != 4 or parts[0] != "" or parts[1] != "fw":
                return self._status(404, "not found\n")
            version, path = parts[2], parts[3]
            try:
                found = cache.file(version, path)
            except (FetchError, OSError) as err:
                log_event(log, logging.WARNING, "release file unavailable", file=path,
                          version=version, error=str(err)[:200])  # fmt: skip
                return self._status(502, "release file unavailable, retry later\n")
            if found is None:
                return self._status(404, "not found\n")
            self._send(found)

        do_HEAD = do_GET  # noqa: N815

        def _send(self, file: Path) -> None:
            size = file.stat().st_size
            try:
                wanted = byte_range(self.headers.get("Range"), size)
            except Unsatisfiable:
                metrics.requests.labels("416").inc()
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = (0, size - 1) if wanted is None else wanted
            code = 200 if wanted is None else 206
            metrics.requests.labels(str(code)).inc()
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(max(last - first + 1, 0)))
            if code == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            if self.command == "HEAD":
                return
            with file.open("rb") as f:
                f.seek(first)
                left = last - first + 1
                while left > 0:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

        def _refuse(self) -> None:
            self._status(405, "read-only\n")

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    return Handler


class FileServer:
    """The HTTP server in its own thread; `port` 0 picks a free one (tests)."""

    def __init__(self, cache: Cache, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler(cache, FileMetrics(registry)))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="fw-files", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
