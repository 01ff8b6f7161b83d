"""bench.pg_partitions --against small: the reference is the same partitioned schema with
fewer rows, loaded and measured in the same run, and the oldest month dropped in both."""

from __future__ import annotations

import argparse

import pytest

from bench import pg_partitions

pytestmark = pytest.mark.postgres


def test_a_size_against_the_same_schema_at_a_third_of_it(postgres_url: str) -> None:
    """`postgres_url`: skips, naming what is missing, without the PostgreSQL service (the
    benchmark makes and drops databases of its own on it)."""
    args = argparse.Namespace(
        rows=30_000, small_rows=10_000, against="small", months=3, batches=3, rounds=1, seed=7
    )
    r = pg_partitions.run(args)
    assert (r["rows"], r["reference_rows"]) == (30_000, 10_000)
    # Rows are spread evenly over the months in both: the oldest month holds a third as many.
    assert abs(r["month_rows_partitioned"] - 3 * r["month_rows_reference"]) <= 3
    assert r["month_rows_reference"] > 0 and r["drop_month_ms_partitioned"] > 0
    assert r["ledger_bytes_reference"] > 0  # the reference is partitioned too: it has a ledger
    assert r["table_bytes_partitioned"] > r["table_bytes_reference"]
    assert r["ingest_events_per_s_partitioned"] > 0 and r["ingest_events_per_s_reference"] > 0
