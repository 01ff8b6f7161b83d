"""Drivers that do not mislead: within-site comparison, a minimum group size and the
Holm correction, on data where the truth is known (planted effects, confounded with
site) and on the demo's own story."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.nps import Tally, compare, compare_within
from nps_edge.story import Story, generate, scenario_events
from server.analytics.drivers import MIN_N, Verdict, analyse, holm
from server.ingest.health import RSSI_BANDS, rssi_band
from tests.server.factory import T0, Api, feedback


def expected(n: int, promoters: float, detractors: float) -> Tally:
    """n answers split exactly by the shares: the truth, without sampling noise."""
    p, d = round(n * promoters), round(n * detractors)
    return Tally(p, n - p - d, d, n)


def test_holm_matches_the_textbook_example() -> None:
    # m = 4: 0.01*4, max(0.04, 0.02*3), max(0.06, 0.03*2), max(0.06, 0.5*1)
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([]) == []
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_one_stratum_is_the_two_sample_test() -> None:
    a, b = Tally(30, 5, 10, 45), Tally(10, 5, 30, 45)
    one, two = compare_within([(a, b)]), compare(a, b)
    assert one.diff == pytest.approx(two.diff)
    assert one.z == pytest.approx(two.z)
    assert compare_within([]).p is None
    assert compare_within([(Tally(), b)]).diff is None


def test_confounded_null_driver_is_flagged_by_the_naive_test_only() -> None:
    """The demo's artefact in miniature: "ok" devices sit at the happy site, "strong"
    ones at the unhappy site, and Wi-Fi makes no difference inside either."""
    happy, sad = (0.7, 0.1), (0.3, 0.4)
    by_site = {
        "happy": {"ok": expected(300, *happy), "strong": expected(60, *happy)},
        "sad": {"ok": expected(60, *sad), "strong": expected(400, *sad)},
    }
    naive = compare(
        by_site["happy"]["ok"] + by_site["sad"]["ok"],
        by_site["happy"]["strong"] + by_site["sad"]["strong"],
    )
    assert naive.significant and (naive.diff or 0) > 20  # what the old view said
    [test] = analyse({"rssi_band": by_site}, {"rssi_band": RSSI_BANDS})["rssi_band"]
    assert (test.a, test.b) == ("ok", "strong")
    assert test.verdict is Verdict.NO_DIFFERENCE and abs(test.diff or 0) < 1


def test_a_small_group_is_not_tested() -> None:
    by_site = {"s": {"1.4.0": expected(400, 0.6, 0.1), "1.6.0": expected(MIN_N - 14, 0.0, 1.0)}}
    [test] = analyse({"fw": by_site}, {})["fw"]
    assert test.verdict is Verdict.TOO_FEW and test.p is None and not test.significant
    assert test.n_a == MIN_N - 14


def test_groups_never_at_a_common_site_are_not_compared() -> None:
    by_site = {"a": {"x": expected(100, 0.5, 0.2)}, "b": {"y": expected(50, 0.5, 0.2)}}
    [test] = analyse({"fw": by_site}, {})["fw"]
    assert test.verdict is Verdict.NO_COMMON_SITE and test.sites == 0


site_moods = st.lists(st.tuples(st.floats(0.2, 0.7), st.floats(0.05, 0.35)), min_size=2, max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    moods=site_moods,
    shares=st.lists(st.floats(0.05, 0.95), min_size=5, max_size=5),
    size=st.integers(80, 600),
)
def test_a_null_driver_confounded_with_site_is_never_flagged(
    moods: list[tuple[float, float]], shares: list[float], size: int
) -> None:
    by_site: dict[str, dict[str, Tally]] = {}
    for i, (prom, det) in enumerate(moods):
        share = shares[i]  # how much of the site is in group "b": differs site to site
        by_site[f"s{i}"] = {
            "a": expected(round(size * (1 - share)) + MIN_N, prom, det),
            "b": expected(round(size * share) + MIN_N, prom, det),
        }
    [test] = analyse({"feature": by_site}, {})["feature"]
    assert test.verdict is Verdict.NO_DIFFERENCE, test


@settings(max_examples=60, deadline=None)
@given(
    moods=site_moods,
    shares=st.lists(st.floats(0.1, 0.9), min_size=5, max_size=5),
    effect=st.floats(0.15, 0.3),
    size=st.integers(200, 600),
)
def test_an_effect_planted_in_one_driver_is_found_and_the_other_is_not(
    moods: list[tuple[float, float]], shares: list[float], effect: float, size: int
) -> None:
    """Firmware "new" moves `effect` of answers from promoter to detractor at every site;
    Wi-Fi band has no effect; both are confounded with site."""
    fw: dict[str, dict[str, Tally]] = {}
    wifi: dict[str, dict[str, Tally]] = defaultdict(dict)
    for i, (prom, det) in enumerate(moods):
        s = f"s{i}"
        cut = min(effect, prom)
        old_n, new_n = round(size * (1 - shares[i])) + MIN_N, round(size * shares[i]) + MIN_N
        old, new = expected(old_n, prom, det), expected(new_n, prom - cut, det + cut)
        fw[s] = {"old": old, "new": new}
        # Wi-Fi: half of each firmware's answers in each band, site-dependent labels.
        ok_old, ok_new = (
            expected(old_n // 2, prom, det),
            expected(new_n // 2, prom - cut, det + cut),
        )
        strong_old = expected(old_n - old_n // 2, prom, det)
        strong_new = expected(new_n - new_n // 2, prom - cut, det + cut)
        wifi[s] = {"ok": ok_old + ok_new, "strong": strong_old + strong_new}
    tests = analyse({"fw": fw, "rssi_band": wifi}, {"rssi_band": RSSI_BANDS})
    [fw_test] = tests["fw"]
    [wifi_test] = tests["rssi_band"]
    assert "new" in (fw_test.a, fw_test.b)
    lower = fw_test.a == "new"
    assert fw_test.verdict is (Verdict.LOWER if lower else Verdict.HIGHER), fw_test
    assert wifi_test.verdict is Verdict.NO_DIFFERENCE, wifi_test


# The demo's own history (nps_edge/demo.py: write_scenarios), its seed 1, 30 days.
DEMO = Story(
    end=T0, days=30, seed=1, sites=3, devices_per_site=4, prompts_per_day=14.0,
    telemetry_minutes=(60.0, 90.0),
)  # fmt: skip


@pytest.fixture(scope="module")
def demo_answers() -> list[dict[str, Any]]:
    events = [e for s in generate(DEMO) for e in scenario_events(s)]
    return [e for e in events if e["type"] == "feedback" and e.get("score") is not None]


def _by_site(answers: list[dict[str, Any]], key: Any) -> dict[str, dict[str, Tally]]:
    scores: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    for e in answers:
        scores[e["site"]][key(e)].append(e["score"])
    return {s: {k: Tally.of_scores(v) for k, v in g.items()} for s, g in scores.items()}


def test_the_demo_story_keeps_its_real_effects_and_loses_its_artefact(
    demo_answers: list[dict[str, Any]],
) -> None:
    wifi = _by_site(demo_answers, lambda e: rssi_band(e["ctx"]["rssi"]))
    fw = _by_site(demo_answers, lambda e: e["fw"])
    pooled = {k: sum((g.get(k, Tally()) for g in wifi.values()), Tally()) for k in ("ok", "strong")}
    assert compare(pooled["ok"], pooled["strong"]).significant  # the naive artefact is there
    tests = analyse({"rssi_band": wifi, "fw": fw}, {"rssi_band": RSSI_BANDS})
    verdicts = {(t.a, t.b): t.verdict for f in tests.values() for t in f}
    assert verdicts[("1.5.0", "1.4.0")] is Verdict.LOWER
    base = next(t.b for t in tests["rssi_band"])
    assert verdicts[("weak", base)] is Verdict.LOWER
    assert base == "strong"
    # Within sites, "ok" answers score lower than "strong" ones, not higher: part of them
    # come from devices whose Wi-Fi the release weakened into the "ok" band (site is
    # controlled for, the firmware is not: docs/drivers.md).
    assert verdicts[("ok", base)] is not Verdict.HIGHER
    naive = analyse({"rssi_band": {"all": pooled}}, {"rssi_band": RSSI_BANDS})["rssi_band"]
    assert naive[0].verdict is Verdict.HIGHER  # the same maths with every site as one


def test_the_api_compares_within_site(api: Api) -> None:
    """Through `GET /api/v1/drivers`: at each site strong and ok Wi-Fi score alike, but
    the happy site has mostly ok devices: no verdict, and the fields say why."""
    evs = []
    for i in range(1, 61):  # happy site: 50 ok, 10 strong, 80 % promoters in both
        rssi = -70 if i <= 50 else -50
        evs.append(feedback("nps-aaa111", i, 10 if i % 5 else 3, rssi=rssi, site="happy"))
    for i in range(1, 61):  # sad site: 10 ok, 50 strong, 20 % promoters in both
        rssi = -70 if i <= 10 else -50
        evs.append(feedback("nps-bbb222", i, 10 if i % 5 == 0 else 3, rssi=rssi, site="sad"))
    api.ingest(evs)
    features = {f["feature"]: f for f in api.get("/api/v1/drivers")["features"]}
    [cmp] = features["rssi_band"]["comparisons"]
    assert cmp["sites"] == 2 and cmp["n_a"] + cmp["n_b"] == 120
    assert cmp["verdict"] == "no_difference" and not cmp["significant"]
    assert abs(cmp["diff"]) < 1e-6 and cmp["p_adjusted"] >= cmp["p"]
    naive = api.get("/api/v1/nps", group_by="rssi_band")["groups"]
    assert {g["key"]: g["nps"] for g in naive} == {"ok": 40.0, "strong": -40.0}
    # One site asked for: compared within it alone.
    [one] = next(
        f
        for f in api.get("/api/v1/drivers", site="happy")["features"]
        if f["feature"] == "rssi_band"
    )["comparisons"]
    assert one["sites"] == 1 and one["verdict"] == "too_few"  # 10 strong answers there
