"""NPS arithmetic against hand-computed figures and the contract's formula."""

from __future__ import annotations

import math

import pytest

from contract.nps import Tally, category, ci95, nps


def test_categories_at_the_boundaries() -> None:
    assert [category(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]


def test_contract_example_figures() -> None:
    # 190 promoters, 120 passives, 102 detractors (contract example): 21.36
    assert nps(190, 102, 412) == pytest.approx(21.359, abs=1e-3)
    lo, hi = ci95(190, 102, 412)
    p, d = (190.75) / 415, (102.75) / 415
    se = math.sqrt((p + d - (p - d) ** 2) / 415)
    assert lo == pytest.approx(100 * (p - d - 1.96 * se))
    assert hi == pytest.approx(100 * (p - d + 1.96 * se))
    assert 13 < lo < 15 and 28 < hi < 30


def test_empty_and_clipped() -> None:
    assert nps(0, 0, 0) is None
    assert Tally().summary()["nps"] is None
    lo, hi = ci95(1000, 0, 1000)
    assert hi == 100.0 and lo < 100.0


def test_tally_summary() -> None:
    t = Tally.of_scores([10, 9, 8, 0, None, None])
    s = t.summary()
    assert (s["n"], s["promoters"], s["passives"], s["detractors"], s["shown"]) == (4, 2, 1, 1, 6)
    assert s["nps"] == 25.0 and s["response_rate"] == pytest.approx(4 / 6, abs=1e-4)
