"""A minimal accepting ingest endpoint, to measure the gateway alone (no server cost).

`python -m bench.gateway_sink --port P`: answers `POST /api/v1/ingest` per the
contract (every event accepted, repeats counted as duplicates), `POST
/api/v1/presence` with `{"accepted": n}`, and `GET /stats` with the count and
the wall-clock times of the first and last event received.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: set[str] = set()
        self.duplicates = 0
        self.requests = 0
        self.first = 0.0
        self.last = 0.0


SINK = Sink()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer goes out in two writes (headers, then body): with Nagle's algorithm the
    # second waits for the client's delayed ACK, 40 ms per request on Linux (measured:
    # 43 ms per 1,000-event POST, 1.5 ms with this). The real server (uvicorn, asyncio)
    # sets TCP_NODELAY on every connection; the stand-in must not be slower than it.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with SINK.lock:
            self._answer(
                200,
                {
                    "events": len(SINK.ids),
                    "duplicates": SINK.duplicates,
                    "requests": SINK.requests,
                    "first": SINK.first,
                    "last": SINK.last,
                },
            )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/v1/presence":
            self._answer(200, {"accepted": len(body["updates"])})
            return
        now = time.time()
        accepted = duplicates = 0
        with SINK.lock:
            SINK.requests += 1
            for event in body["events"]:
                if event["id"] in SINK.ids:
                    duplicates += 1
                else:
                    SINK.ids.add(event["id"])
                    accepted += 1
            SINK.duplicates += duplicates
            SINK.first = SINK.first or now
            SINK.last = now
        self._answer(200, {"accepted": accepted, "duplicates": duplicates, "rejected": []})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
