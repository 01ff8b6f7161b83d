"""The dashboard reads a score's band with the server's rule (server/analytics/benchmarks.py)."""

from __future__ import annotations

import json

from server.analytics import benchmarks
from tests.dashboard.test_modules import node, run_module

__all__ = ["node"]  # the fixture, imported for pytest

SCORES = [x / 2 for x in range(-200, 201)]  # -100 .. +100 by halves


def answer(active: str) -> dict[str, object]:
    """`GET /api/v1/benchmarks` as the server builds it, with `active` in force."""
    return {
        "active": active,
        "sets": [
            {
                "id": s.id,
                "name": s.name,
                "bands": [{"min": b.min, "label": b.label} for b in s.bands],
            }
            for s in benchmarks.shipped().sets.values()
        ],
    }


def test_every_score_gets_the_same_band_in_the_browser_and_on_the_server(node: str) -> None:
    for set_id, band_set in benchmarks.shipped().sets.items():
        got = run_module(
            node,
            f"""import {{ setBands, bandOf }} from "./benchmarks.js";
            setBands({json.dumps(answer(set_id))});
            console.log(JSON.stringify({json.dumps(SCORES)}.map((v) => bandOf(v)?.label ?? null)
              .concat([bandOf(null)])));""",
        )
        want = [band_set.of(v).label for v in SCORES]  # type: ignore[union-attr]
        assert got == [*want, None], set_id
