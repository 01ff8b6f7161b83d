"""Issue 2's walking skeleton: real firmware -> real broker -> gateway -> server -> NPS."""

from __future__ import annotations

import pytest

from contract.nps import Tally
from nps_edge.processes import run_sim

pytestmark = pytest.mark.slow


def test_firmware_answer_reaches_the_nps_figures(site, micropython_bin: str) -> None:
    summary = run_sim(
        [
            "--broker",
            site.broker.address,
            "--devices",
            "1",
            "--responses",
            "1",
            "--seed",
            "7",
            "--site",
            "e2e-site",
            "--state",
            str(site.workdir / "devices"),
        ]
    )
    assert summary["devices"] == 1 and summary["answered"] == 1
    scores = [int(s) for s, count in summary["scores"].items() for _ in range(count)]
    expected = Tally.of_scores(scores + [None] * (summary["shown"] - summary["answered"]))

    site.wait_for(lambda: site.get("/api/v1/nps")["shown"] >= summary["shown"], "the answer")
    figures = site.get("/api/v1/nps", site="e2e-site")
    want = expected.summary()
    for key in ("n", "promoters", "passives", "detractors", "nps", "ci95", "shown"):
        assert figures[key] == want[key], key

    (device,) = site.get("/api/v1/devices")
    assert device["site"] == "e2e-site" and device["n"] == 1
    gaps = site.get(f"/api/v1/devices/{device['device']}/gaps")
    assert gaps["missing"] == [] and gaps["received"] == gaps["max_seq"] >= 1
