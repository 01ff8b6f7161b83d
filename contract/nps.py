"""NPS arithmetic, pure: the one definition every figure, test and benchmark uses.

NPS = 100 * (promoters - detractors) / n over answered prompts; the 95 %
interval is the adjusted-Wald interval fixed by the contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

PROMOTER_MIN = 9
DETRACTOR_MAX = 6


class Category(StrEnum):
    """An answer's category; its value is what is stored and what JSON shows."""

    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def category(score: int) -> Category:
    """Promoter (9-10), passive (7-8) or detractor (0-6)."""
    if score >= PROMOTER_MIN:
        return Category.PROMOTER
    if score <= DETRACTOR_MAX:
        return Category.DETRACTOR
    return Category.PASSIVE


def nps(promoters: int, detractors: int, n: int) -> float | None:
    if n == 0:
        return None
    return 100.0 * (promoters - detractors) / n


def ci95(promoters: int, detractors: int, n: int) -> tuple[float, float]:
    """Adjusted-Wald 95 % interval for NPS, clipped to [-100, 100] (contract)."""
    p = (promoters + 0.75) / (n + 3)
    d = (detractors + 0.75) / (n + 3)
    c = p - d
    se = math.sqrt(max(p + d - c * c, 0.0) / (n + 3))
    lo = max(-100.0, 100.0 * (c - 1.96 * se))
    hi = min(100.0, 100.0 * (c + 1.96 * se))
    return lo, hi


class Summary(TypedDict):
    """The contract's figure block (`Tally.summary`)."""

    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    ci95: list[float]
    shown: int
    response_rate: float | None


@dataclass(frozen=True)
class Tally:
    """Counts for one group: answered prompts by category, and all prompts shown."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    shown: int = 0

    @property
    def n(self) -> int:
        return self.promoters + self.passives + self.detractors

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
            self.shown + other.shown,
        )

    @classmethod
    def of_scores(cls, scores: list[int | None]) -> Tally:
        """Tally prompts shown; None is a prompt that got no answer."""
        return cls.of_categories([category(s) for s in scores if s is not None], len(scores))

    @classmethod
    def of_categories(cls, cats: list[str], shown: int) -> Tally:
        """Tally answers by category, of `shown` prompts."""
        return cls(
            cats.count(Category.PROMOTER),
            cats.count(Category.PASSIVE),
            cats.count(Category.DETRACTOR),
            shown,
        )

    def summary(self, ndigits: int = 2) -> Summary:
        """The contract's figure block: n, split, nps, ci95, shown, response_rate."""
        n = self.n
        value = nps(self.promoters, self.detractors, n)
        lo, hi = ci95(self.promoters, self.detractors, n)
        return {
            "n": n,
            "promoters": self.promoters,
            "passives": self.passives,
            "detractors": self.detractors,
            "nps": None if value is None else round(value, ndigits),
            "ci95": [round(lo, ndigits), round(hi, ndigits)],
            "shown": self.shown,
            "response_rate": round(n / self.shown, 4) if self.shown else None,
        }


@dataclass(frozen=True)
class Comparison:
    diff: float | None
    z: float | None
    p: float | None
    significant: bool


def nps_variance(promoters: int, detractors: int, n: int) -> float:
    """Variance of the NPS estimator (as a proportion difference), adjusted-Wald style.

    With p and d the adjusted shares used by `ci95`, var = (p + d - (p - d)^2) / (n + 3);
    the adjustment keeps it positive for small or one-sided groups.
    """
    p = (promoters + 0.75) / (n + 3)
    d = (detractors + 0.75) / (n + 3)
    return max(p + d - (p - d) ** 2, 0.0) / (n + 3)


def compare(a: Tally, b: Tally, alpha: float = 0.05) -> Comparison:
    """Two-sample z-test of NPS(a) - NPS(b) = 0, two-sided (docs/server.md).

    z = (nps_a - nps_b) / 100 / sqrt(var_a + var_b); p = erfc(|z| / sqrt 2).
    Groups are disjoint, so their estimators are independent.
    """
    na, nb = nps(a.promoters, a.detractors, a.n), nps(b.promoters, b.detractors, b.n)
    if na is None or nb is None:
        return Comparison(None, None, None, False)
    se = math.sqrt(
        nps_variance(a.promoters, a.detractors, a.n) + nps_variance(b.promoters, b.detractors, b.n)
    )
    diff = na - nb
    z = (diff / 100.0) / se
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return Comparison(diff, z, p, p < alpha)


def compare_within(strata: list[tuple[Tally, Tally]], alpha: float = 0.05) -> Comparison:
    """NPS(a) - NPS(b) compared within strata (sites), pooled with inverse-variance weights.

    Each stratum where both groups have answers gives d_s = nps_a,s - nps_b,s with
    var_s = var_a,s + var_b,s (`nps_variance`, so the same test as `compare` in one
    stratum); the pooled difference is sum(d_s / var_s) / sum(1 / var_s) and its
    variance 1 / sum(1 / var_s). Assumes the difference is the same in every stratum
    (no interaction) and answers independent within a group (docs/drivers.md).
    """
    weight = weighted = 0.0
    for a, b in strata:
        na, nb = nps(a.promoters, a.detractors, a.n), nps(b.promoters, b.detractors, b.n)
        if na is None or nb is None:
            continue
        w = 1.0 / (
            nps_variance(a.promoters, a.detractors, a.n)
            + nps_variance(b.promoters, b.detractors, b.n)
        )
        weight += w
        weighted += w * (na - nb)
    if weight == 0.0:
        return Comparison(None, None, None, False)
    diff = weighted / weight
    z = (diff / 100.0) * math.sqrt(weight)
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return Comparison(diff, z, p, p < alpha)
