"""The benchmark's minimal ingest endpoint (bench/gateway_sink.py) must not be slower than
the real server: its answers may not wait for the client's delayed ACK (issue 17)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from nps_edge.broker import free_port, wait_for_port


@pytest.fixture
def sink() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.gateway_sink", "--port", str(port)])
    try:
        wait_for_port("127.0.0.1", port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_answer_does_not_wait_for_a_delayed_ack(sink: str) -> None:
    # With Nagle's algorithm on the sink's socket the body of each answer (its second
    # write) waits for the client's delayed ACK: at least 40 ms on Linux, every request
    # after the first on a kept-alive connection. The fastest of a few shows it.
    body = (
        b'{"gateway":"g","events":['
        + b",".join(b'{"id":"nps-dev1:%d","pad":"%s"}' % (i, b"x" * 300) for i in range(1, 1001))
        + b"]}"
    )
    took = []
    with httpx.Client(base_url=sink) as client:
        for _ in range(6):
            started = time.perf_counter()
            answer = client.post("/api/v1/ingest", content=body)
            took.append(time.perf_counter() - started)
            assert answer.status_code == 200
    assert min(took[1:]) < 0.030, took
    assert httpx.get(f"{sink}/stats").json()["events"] == 1000
