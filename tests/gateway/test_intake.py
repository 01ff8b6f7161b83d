"""Intake: judge, commit, and only then acknowledge."""

from __future__ import annotations

import sqlite3

from gateway.intake import Intake, Message
from gateway.store import Store
from tests.gateway.conftest import fail_next_put


def test_ack_comes_only_after_the_commit(open_store, metrics, make, tmp_path):
    store = open_store()
    observer = Store(tmp_path / "gw.db")  # another connection: sees only committed rows
    seen_at_ack: list[tuple[list[int], list[str]]] = []

    def ack(batch: list[Message]) -> None:
        seen_at_ack.append(([m.mid for m in batch], observer.ids()))

    intake = Intake(store, ack, metrics, root="nps/v1")
    for seq in (1, 2, 3):
        intake.offer(seq, 1, "nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=seq)))
    assert intake.step(timeout=1) == 3
    committed = ["nps-a1b2c3:1", "nps-a1b2c3:2", "nps-a1b2c3:3"]
    assert seen_at_ack == [([1, 2, 3], committed)]  # one call for the batch
    assert intake.committed.is_set()
    observer.close()


def test_bad_messages_are_dead_lettered_acked_and_do_not_take_neighbours(open_store, metrics, make):
    store = open_store()
    acked: list[int] = []
    intake = Intake(store, lambda batch: acked.extend(m.mid for m in batch), metrics, root="nps/v1")
    topic = "nps/v1/nps-a1b2c3/feedback"
    intake.offer(1, 1, topic, make.payload(make.feedback(seq=1)))
    intake.offer(2, 1, topic, b"{not json")
    intake.offer(3, 1, topic, make.payload(make.feedback(seq=3, score=11)))
    intake.offer(4, 1, topic, make.payload(make.feedback(seq=4)))
    intake.offer(5, 1, "nps/v1/nps-a1b2c3/status", b"")  # a retained status being cleared
    intake.drain()
    assert acked == [1, 2, 3, 4, 5]
    assert store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:4"]
    reasons = [d[3] for d in store.dead_letters()]
    assert any("score" in r for r in reasons) and any("not JSON" in r for r in reasons)
    assert metrics.dead_letters.labels("edge")._value.get() == 2
    assert metrics.received_total.labels("feedback")._value.get() == 4
    assert store.stats().counters["received"] == 4  # the cleared status keeps nothing


def test_idle_step_returns_quickly_with_nothing(open_store, metrics):
    intake = Intake(open_store(), lambda _: None, metrics, root="nps/v1")
    assert intake.step(timeout=0.01) == 0


def test_a_failing_commit_holds_the_batch_unacknowledged_then_retries(open_store, metrics, make):
    store = open_store()
    fail_next_put(store, sqlite3.OperationalError("database or disk is full"))
    acked: list[int] = []
    waits: list[float] = []
    intake = Intake(
        store,
        lambda batch: acked.extend(m.mid for m in batch),
        metrics,
        root="nps/v1",
        wait=waits.append,
    )
    intake.offer(1, 1, "nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=1)))
    assert intake.step(timeout=1) == 0
    assert acked == [] and waits == [1.0] and store.ids() == []
    assert metrics.store_errors._value.get() == 1
    intake.offer(2, 1, "nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=2)))
    assert intake.step(timeout=1) == 2
    assert acked == [1, 2] and store.ids() == ["nps-a1b2c3:1", "nps-a1b2c3:2"]
