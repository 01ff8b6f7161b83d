"""Ingest: POST /api/v1/ingest -> validation (judge each event) -> prepare (time base,
health join, rollup counts, alerts proposed) -> batch (store each event once).

Pure rules sit beside the I/O that uses them: `timebase` (event time) and `health`
(health bands) import no database; `validation` judges without storage; `binding`
and `join` read the database; `batch` writes it.
"""
