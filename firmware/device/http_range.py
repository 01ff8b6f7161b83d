# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""A byte range of a file over plain HTTP/1.0 (`Range`), for updates (ota.py): what a
download resumed after a power cut asks for. Loaded with ota.py, only while needed."""

import socket

from micropython import const

_HEAD_MAX = const(1024)  # longest HTTP response head accepted
_TIMEOUT_S = const(10)


class Refused(Exception):
    """The release cannot be installed; args[0] is the reason reported as refused:<reason>."""


class Retry(Exception):
    """A network failure: try the same step again later."""


def split_url(url):
    """http://host[:port]/path -> (host, port, path)."""
    if not url.startswith("http://"):
        raise Refused("url")
    rest = url[7:]
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, _, port = hostport.partition(":")
    try:
        return host, int(port) if port else 80, path
    except ValueError:
        raise Refused("url") from None


def open_tcp(host, port):
    """A blocking TCP socket to host:port with a timeout (DNS through the platform)."""
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    sock = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
    sock.settimeout(_TIMEOUT_S)
    try:
        sock.connect(addr[-1])
    except OSError:
        sock.close()
        raise
    return sock


def http_get(opener, url, start, end, sink, buf):
    """GET url bytes start..end (inclusive; end None: to the end) into sink(memoryview).

    Returns (status, total size or None). HTTP/1.0 so the body is never chunked.
    Raises Retry on a network failure, Refused("missing") on 404,
    Refused("truncated") when the server has no bytes from `start` on (416).
    """
    host, port, path = split_url(url)
    try:
        sock = opener(host, port)
    except OSError as err:
        raise Retry("connect: %s" % err) from None
    try:
        rng = "%d-%s" % (start, "" if end is None else end)
        sock.write(
            ("GET %s HTTP/1.0\r\nHost: %s\r\nRange: bytes=%s\r\n\r\n" % (path, host, rng)).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.readinto(buf)
            if not n:
                raise Retry("connection closed in the response head")
            head += bytes(buf[:n])
            if len(head) > _HEAD_MAX + len(buf):
                raise Retry("response head too long")
        cut = head.find(b"\r\n\r\n")
        body = head[cut + 4 :]
        lines = head[:cut].decode().split("\r\n")
        status = int(lines[0].split()[1])
        total = None
        skip = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-range" and "/" in value:
                tail = value.split("/")[-1].strip()
                total = int(tail) if tail.isdigit() else None
            elif name == "content-length" and status == 200:
                total = int(value.strip())
        if status == 404:
            raise Refused("missing")
        if status == 416:
            raise Refused("truncated")
        if status == 200:
            skip = start  # the server ignored Range: drop what we already hold
        elif status != 206:
            raise Retry("HTTP status %d" % status)
        want = None if end is None else end - start + 1
        got = 0
        chunk = memoryview(body)
        while True:
            if skip:
                drop = min(skip, len(chunk))
                chunk = chunk[drop:]
                skip -= drop
            if want is not None and got + len(chunk) > want:
                chunk = chunk[: want - got]
            if len(chunk):
                sink(chunk)
                got += len(chunk)
            if want is not None and got >= want:
                break
            n = sock.readinto(buf)
            if not n:
                break  # end of body (or a dropped connection: resumed next time)
            chunk = memoryview(buf)[:n]
        return status, total
    except (OSError, ValueError, IndexError) as err:
        raise Retry("HTTP: %s" % err) from None
    finally:
        sock.close()
