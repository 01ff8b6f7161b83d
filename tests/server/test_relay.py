"""server.realtime.relay: workers' live streams joined over UNIX datagram sockets."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from server.metrics import Metrics
from server.realtime.relay import CHUNK_BYTES, Item, Relay


def _items(n: int) -> list[Item]:
    return [("feedback", {"id": f"nps-a{i:05d}:1", "note": "x" * 300}) for i in range(n)]


def test_items_reach_the_listening_worker_whole_and_in_order(tmp_path: Path) -> None:
    sender, listener = (
        Relay(tmp_path, "a", metrics=Metrics()),
        Relay(tmp_path, "b", metrics=Metrics()),
    )
    assert sender.peers() == []  # nobody listens: nothing is sent
    items = _items(600)  # about 200 KB: several datagrams
    got: list[Item] = []

    async def run() -> None:
        listener.listen(got.append)
        assert sender.peers() == [str(listener.path)] and listener.peers() == []
        sender.send(sender.peers(), items)
        for _ in range(200):
            if len(got) == len(items):
                break
            await asyncio.sleep(0.01)
        listener.close()

    asyncio.run(run())
    assert [tuple(i) for i in got] == items
    assert len(items) * 300 > 3 * CHUNK_BYTES
    assert not listener.path.exists()


def test_a_stopped_workers_socket_is_forgotten(tmp_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(tmp_path / "999.sock"))
    dead.close()  # its file stays, nobody reads it
    sender = Relay(tmp_path, "a", metrics=Metrics())
    sender.send(sender.peers(), _items(1))
    assert sender.peers() == []


def test_a_listener_that_does_not_keep_up_loses_datagrams_counted(tmp_path: Path) -> None:
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    slow.bind(str(tmp_path / "slow.sock"))  # bound, never read
    sender = Relay(tmp_path, "a", metrics=Metrics())
    before = sender.metrics.relay_dropped._value.get()
    for _ in range(2000):
        sender.send(sender.peers(), _items(1))
    slow.close()
    assert sender.metrics.relay_dropped._value.get() > before


def test_a_worker_that_cannot_listen_still_streams_its_own(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "gone", "a", metrics=Metrics())  # its directory was removed

    async def run() -> None:
        relay.listen(lambda item: None)

    asyncio.run(run())
    assert relay.peers() == [] and not relay.path.exists()
