"""Health drivers that do not mislead (pure): each group against its feature's
reference group, compared within site, tested only when large enough, and the
whole family of tests corrected together (docs/drivers.md).

Why within site: sites differ in mood and in their devices (the demo's store-3
has strong-signal devices and unhappy customers), so a fleet-wide comparison of
Wi-Fi bands measures sites as much as Wi-Fi. Comparing inside each site and
pooling the differences (`contract.nps.compare_within`) removes that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from contract.nps import Tally, compare_within

MIN_N = 30  # answers each side, in the sites both share, before a group is tested
ALPHA = 0.05  # family-wise error rate, Holm-corrected over every test of one answer


class Verdict(StrEnum):
    """What the drivers view says of one group against the reference."""

    HIGHER = "higher"
    LOWER = "lower"
    NO_DIFFERENCE = "no_difference"  # tested, not significant after correction
    TOO_FEW = "too_few"  # fewer than MIN_N answers on a side: not tested
    NO_COMMON_SITE = "no_common_site"  # never at the same site as the reference


@dataclass(frozen=True)
class Test:
    """Group `a` against the reference `b` of one feature."""

    feature: str
    a: str
    b: str
    diff: float | None  # within-site NPS difference a - b, points
    z: float | None
    p: float | None  # before correction
    p_adjusted: float | None  # Holm
    n_a: int  # answers in the sites shared with the reference
    n_b: int
    sites: int  # sites where both have answers
    verdict: Verdict

    @property
    def significant(self) -> bool:
        return self.verdict in (Verdict.HIGHER, Verdict.LOWER)


BySite = Mapping[str, Mapping[str, Tally]]  # site -> group key -> tally


def pooled(by_site: BySite) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for groups in by_site.values():
        for key, t in groups.items():
            out[key] = out.get(key, Tally()) + t
    return out


def ordered(tallies: Mapping[str, Tally], known: Sequence[str]) -> list[str]:
    """The group keys, those in `known` first in its order, then the rest by name."""
    return [k for k in known if k in tallies] + sorted(k for k in tallies if k not in known)


def reference(tallies: Mapping[str, Tally], keys: Sequence[str]) -> str:
    """The largest group (answers, then prompts shown); ties go to the first in `keys`."""
    return max(keys, key=lambda k: (tallies[k].n, tallies[k].shown))


def compare_group(feature: str, by_site: BySite, a: str, b: str, min_n: int = MIN_N) -> Test:
    """One comparison before correction; its verdict is provisional (`holm` settles it)."""
    strata = [
        (g[a], g[b]) for g in by_site.values() if a in g and b in g and g[a].n and g[b].n
    ]  # fmt: skip
    n_a, n_b = sum(s[0].n for s in strata), sum(s[1].n for s in strata)
    base = Test(feature, a, b, None, None, None, None, n_a, n_b, len(strata), Verdict.TOO_FEW)
    if not strata:
        return replace(base, verdict=Verdict.NO_COMMON_SITE)
    if min(n_a, n_b) < min_n:
        return base
    c = compare_within(strata)
    return replace(base, diff=c.diff, z=c.z, p=c.p, verdict=Verdict.NO_DIFFERENCE)


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    p_(i) sorted ascending is adjusted to max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def correct(tests: Iterable[Test], alpha: float = ALPHA) -> list[Test]:
    """Holm over every test that ran; a verdict of higher or lower only below `alpha`."""
    tests = list(tests)
    ran = [i for i, t in enumerate(tests) if t.p is not None]
    adjusted = holm([tests[i].p or 0.0 for i in ran])
    for i, p_adj in zip(ran, adjusted, strict=True):
        t = tests[i]
        verdict = Verdict.NO_DIFFERENCE
        if p_adj < alpha and t.diff is not None:
            verdict = Verdict.HIGHER if t.diff > 0 else Verdict.LOWER
        tests[i] = replace(t, p_adjusted=p_adj, verdict=verdict)
    return tests


def analyse(
    features: Mapping[str, BySite], order: Mapping[str, Sequence[str]], min_n: int = MIN_N
) -> dict[str, list[Test]]:
    """Per feature, every group against its reference, corrected as one family."""
    tests: list[Test] = []
    for feature, by_site in features.items():
        tallies = pooled(by_site)
        keys = ordered(tallies, order.get(feature, ()))
        if not keys:
            continue
        base = reference(tallies, keys)
        tests += [compare_group(feature, by_site, k, base, min_n) for k in keys if k != base]
    out: dict[str, list[Test]] = {f: [] for f in features}
    for t in correct(tests):
        out[t.feature].append(t)
    return out
