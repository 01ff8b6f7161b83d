"""Ingest's own connections on PostgreSQL (server.db.engine.ingest_engine): its statements
stay prepared and its staging tables made, whatever the API's reads do between batches."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from tests.server.factory import Api, feedback, telemetry


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_ingest_statements_stay_prepared_between_batches_and_reads(api: Api, app: FastAPI) -> None:
    # Each batch is followed by reads whose sessions end in ROLLBACK (the gaps read,
    # and the ingest route's own join of held phone comments). A rollback makes psycopg
    # forget the connection's prepared statements: on a pool shared with those reads,
    # no statement of ingest reached the fifth use at which psycopg prepares it.
    writes = app.state.ingest_engine
    executed: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        executed.append(statement)

    event.listen(writes, "before_cursor_execute", seen)
    devices = [f"nps-aaa{n:03d}" for n in range(1, 6)]
    # psycopg prepares a statement at its 5th run; PostgreSQL would plan it generic at
    # the 6th run of the prepared statement.
    for batch in range(12):
        events = []
        for n, device in enumerate(devices):
            seq = 2 * batch + 1
            events += [feedback(device, seq, score=(batch + n) % 11), telemetry(device, seq + 1)]
        assert api.ingest(events)["accepted"] == len(events)
        for device in devices:
            assert api.get(f"/api/v1/devices/{device}/gaps")["max_seq"] == seq + 1
    with writes.connect() as conn:
        prepared = conn.exec_driver_sql(
            "SELECT count(*), coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)"
            " FROM pg_prepared_statements WHERE parameter_types <> '{}'"
        ).one()
        plain = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements WHERE parameter_types = '{}'"
        ).scalar()
    count, generic, custom = prepared
    assert count >= 3 and plain, f"{count} prepared with parameters, {plain} without"
    # With parameters, planned for each batch's values: a generic plan cannot see the
    # lists' sizes (it scanned the device table whole, casting the list for every row).
    assert generic == 0 and custom >= count, prepared
    made = [s.split("(")[0] for s in executed if s.startswith("CREATE TEMP TABLE")]
    assert made, "the batches went through no staging table"
    assert len(made) == len(set(made)), made  # each made once on the one connection
