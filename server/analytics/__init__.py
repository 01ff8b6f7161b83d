"""Analytics: stored answers -> rollups (counts per key, written at ingest) ->
figures (the one query function behind /nps, /heatmap and /drivers).

`rollups` holds the rollup keys and query plans, `rollup_tables` the tables built
from them, `figures` the reads.
"""
