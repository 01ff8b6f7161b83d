"""server.realtime.pg_relay: one live stream across server processes that share only PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from nps_edge.processes import ProcessError, wait_until
from server.metrics import Metrics
from server.realtime.pg_relay import CHANNEL, CHUNK_BYTES, PEER, PgRelay, libpq_url
from server.realtime.relay import Item
from tests.server.factory import feedback
from tests.server.live import served, server_process, stream_ids

pytestmark = pytest.mark.postgres


def _items(n: int, size: int = 300) -> list[Item]:
    return [("feedback", {"id": f"nps-a{i:05d}:1", "note": "x" * size}) for i in range(n)]


def _receive_into(relay: PgRelay) -> list[Item]:
    got: list[Item] = []
    relay.listen(got.append)
    assert relay.wait_listening(10)
    return got


def test_items_reach_another_process_whole_in_order_and_not_back_to_the_sender(
    postgres_url: str,
) -> None:
    sender = PgRelay(postgres_url, metrics=Metrics(), name="a")
    listener = PgRelay(postgres_url, metrics=Metrics(), name="b")
    assert sender.peers() == []  # nobody listens: nothing is encoded or sent
    got_b = _receive_into(listener)
    got_a = _receive_into(sender)  # the sender listens too: it must not hear itself
    sender._peers_at = -1.0  # forget the cached answer
    assert sender.peers() == [PEER]
    items = _items(100)  # about 35 KB: several notifications
    sender.send(sender.peers(), items)
    wait_until(lambda: len(got_b) >= len(items), timeout=10, what="every item")
    listener.close()
    sender.close()
    assert [tuple(i) for i in got_b] == items
    assert got_a == []
    assert len(items) * 300 > 3 * CHUNK_BYTES


def test_an_item_too_large_for_notify_is_dropped_counted_and_the_rest_arrive(
    postgres_url: str,
) -> None:
    metrics = Metrics()
    sender = PgRelay(postgres_url, metrics=metrics, name="a")
    listener = PgRelay(postgres_url, metrics=Metrics(), name="b")
    got = _receive_into(listener)
    big = ("feedback", {"id": "nps-big00:1", "note": "x" * (CHUNK_BYTES + 10)})
    before = metrics.relay_dropped._value.get()
    sender.send([PEER], [*_items(2), big, *_items(1)])
    wait_until(lambda: len(got) >= 3, timeout=10, what="the items that fit")
    listener.close()
    assert [i[1]["id"] for i in got] == ["nps-a00000:1", "nps-a00001:1", "nps-a00000:1"]
    assert metrics.relay_dropped._value.get() == before + 1


def test_hostile_notifications_on_the_channel_are_ignored(postgres_url: str) -> None:
    """Anyone who can log in to the database can NOTIFY: bytes that are not ours do not stop
    the listener, and the next real item still arrives."""
    metrics = Metrics()
    listener = PgRelay(postgres_url, metrics=metrics, name="b")
    got = _receive_into(listener)
    junk = ["not json", "[]", '["x", 5]', '["x", [[1]]]', '["x", [["k", 1]]]', "\u2028" * 10]
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        for one in junk:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, one))
    PgRelay(postgres_url, metrics=Metrics(), name="a").send([PEER], _items(1))
    wait_until(lambda: len(got) >= 1, timeout=10, what="the real item")
    listener.close()
    assert [i[1]["id"] for i in got] == ["nps-a00000:1"]
    assert metrics.relay_dropped._value.get() == len(junk)


@pytest.mark.slow
def test_two_server_processes_sharing_only_postgresql_show_one_stream(
    nps_edge_bin: str, postgres_url: str, tmp_path: Path
) -> None:
    """A dashboard's stream is held by server A; every batch is ingested by server B, a
    separate `nps-edge server` with its own port and no relay directory in common."""
    sent = [feedback(f"nps-s{i:05d}", 1, score=9) for i in range(12)]
    with (
        served(nps_edge_bin, postgres_url, tmp_path / "a.log") as a,
        server_process(nps_edge_bin, postgres_url, tmp_path / "b.log") as b,
        stream_ids(a.base, a.operator, len(sent)) as seen,
    ):
        # Server A listens once its stream is open: wait until another process sees it.
        wait_until(
            lambda: PgRelay(postgres_url, metrics=Metrics()).peers() == [PEER],
            timeout=10, what="server A listening",
        )  # fmt: skip
        gw = {"Authorization": f"Bearer {a.gateway}"}
        for event in sent:
            r = httpx.post(
                f"{b}/api/v1/ingest", json={"gateway": "gw-1", "events": [event]}, headers=gw
            )
            assert r.json()["accepted"] == 1
        try:
            wait_until(lambda: len(seen) >= len(sent), timeout=15, what="every event")
        except ProcessError:
            pass  # the assertion below says which are missing
    assert sorted(seen) == sorted(e["id"] for e in sent)
