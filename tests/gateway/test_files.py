"""Issue 14, release files on the site network: the gateway's HTTP server with Range (206),
checked against the manifest, no listing, no traversal, read-only."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.files import Cache, FetchError, FileServer, Unsatisfiable, byte_range

BODY = bytes(range(256)) * 100  # 25,600 bytes
FILES = {"main.py": b"print('hi')\n", "lib/app.mpy": BODY}


def manifest(files: dict[str, bytes]) -> bytes:
    entries = [
        {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for p, d in files.items()
    ]
    return json.dumps({"format": 1, "firmware": "1.6.0", "board": "b", "files": entries}).encode()


class Origin:
    """The server's side: what it holds, and what it was asked for."""

    def __init__(self) -> None:
        self.files = {"manifest.json": manifest(FILES), "manifest.sig": b"c2ln\n"} | FILES
        self.asked: list[str] = []
        self.down = False

    def __call__(self, version: str, path: str) -> bytes | None:
        self.asked.append(f"{version}/{path}")
        if self.down:
            raise FetchError("server unreachable")
        return self.files.get(path) if version == "1.6.0" else None


@pytest.fixture
def origin() -> Origin:
    return Origin()


@pytest.fixture
def base(tmp_path: Path, origin: Origin) -> Iterator[str]:
    server = FileServer(Cache(tmp_path / "cache", origin), CollectorRegistry(),
                        host="127.0.0.1", port=0)  # fmt: skip
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def test_whole_file_and_ranges_resume(base: str, origin: Origin) -> None:
    whole = httpx.get(f"{base}/fw/1.6.0/lib/app.mpy")
    assert whole.status_code == 200 and whole.content == BODY
    assert whole.headers["accept-ranges"] == "bytes"
    # A device that has 10,000 bytes staged asks for the rest in 4 KB chunks.
    got = bytearray(BODY[:10_000])
    while len(got) < len(BODY):
        end = min(len(got) + 4095, len(BODY) - 1)
        r = httpx.get(f"{base}/fw/1.6.0/lib/app.mpy", headers={"Range": f"bytes={len(got)}-{end}"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes {len(got)}-{end}/{len(BODY)}"
        got += r.content
    assert bytes(got) == BODY
    tail = httpx.get(f"{base}/fw/1.6.0/lib/app.mpy", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == BODY[-10:]
    past = httpx.get(f"{base}/fw/1.6.0/lib/app.mpy", headers={"Range": f"bytes={len(BODY)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(BODY)}"
    # Fetched from the server once, then from the cache.
    assert origin.asked.count("1.6.0/lib/app.mpy") == 1
    head = httpx.head(f"{base}/fw/1.6.0/main.py")
    assert head.status_code == 200 and head.headers["content-length"] == "12"
    assert httpx.get(f"{base}/fw/1.6.0/manifest.json").content == origin.files["manifest.json"]


@pytest.mark.parametrize(
    "path",
    [
        "/fw/1.6.0/", "/fw/1.6.0", "/fw/", "/", "/fw/1.6.0/lib", "/fw/1.6.0/lib/",
        "/fw/1.6.0/../../etc/passwd", "/fw/1.6.0/lib/../main.py", "/fw/1.6.0/%2e%2e/x",
        "/fw/../1.6.0/main.py", "/fw/1.6.0/.hidden", "/fw/1.6.0/nothere.py", "/fw/1.5.0/main.py",
        "/fw/1.6.0/main.py%00", "/fw/1.6.0//etc/passwd", "/etc/passwd", "/fw/1.6.0/" + "a" * 500,
        "/fw/1.6.0/a/b/c/d/e/f/g.py",
    ],
)  # fmt: skip
def test_no_listing_no_traversal(base: str, path: str, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("no")
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.split(b" ", 2)[1] == b"404", (path, answer[:200])


def test_read_only(base: str) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert httpx.request(method, f"{base}/fw/1.6.0/main.py", content=b"x").status_code == 405


def test_a_file_that_does_not_match_its_manifest_is_not_served_or_kept(
    base: str, origin: Origin, tmp_path: Path
) -> None:
    origin.files["main.py"] = b"print('tampered')\n"
    assert httpx.get(f"{base}/fw/1.6.0/main.py").status_code == 502
    assert not (tmp_path / "cache" / "1.6.0" / "main.py").exists()
    origin.down = True
    assert httpx.get(f"{base}/fw/1.6.0/lib/app.mpy").status_code == 502
    origin.down = False
    assert httpx.get(f"{base}/fw/1.6.0/lib/app.mpy").content == BODY


def test_byte_range_parsing() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=0-", 10) == (0, 9)
    assert byte_range("bytes=2-4", 10) == (2, 4)
    assert byte_range("bytes=5-100", 10) == (5, 9)
    assert byte_range("bytes=-3", 10) == (7, 9)
    assert byte_range("bytes=0-1,4-5", 10) is None  # several: the whole file
    assert byte_range("items=0-1", 10) is None
    for bad in ("bytes=10-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            byte_range(bad, 10)
    assert byte_range("bytes=99999999999999999999-", 10) is None  # too long to be a range
