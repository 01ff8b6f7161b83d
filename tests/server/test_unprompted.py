"""The north star counts transactions the devices did not prompt (`server.ingest.unprompted`):
the increments of each boot's sampling counters, exact whatever order the readings
arrive in, once per reading, and only from the device's own site's gateway."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlmodel import Session

from server.analytics.northstar import WEEK, week_start
from server.analytics.rollups import DAY
from server.db.engine import write_session
from server.db.sql import table_of
from server.ingest import unprompted
from server.ingest.batch import ingest_batch
from server.ingest.unprompted import Reading, count, plausible, totals_of
from server.models import UnpromptedDay
from server.settings import Settings
from tests.server.factory import Api, as_, feedback, telemetry

# Last week's Wednesday noon: its week is complete, and the next day in it.
NOON = week_start(time.time()) - WEEK + 2 * DAY + 12 * 3600


def reading(total: int, up_s: int, *, boot: int = 1, t: float = NOON, health: str = "healthy"):
    return Reading("nps-aaa111", boot, up_s * 1000, "store-1", t, health, {"sampled_out": total})


def test_a_boots_increments_are_exact_in_any_order_and_land_on_their_readings_days() -> None:
    first, later = reading(3, 600), reading(7, 90_000, t=NOON + DAY)
    in_order = count([first, later], {})
    assert [(r["bucket"], r["count"]) for r in in_order.days] == [
        (NOON // DAY * DAY, 3),
        ((NOON + DAY) // DAY * DAY, 4),
    ]
    # Readings are taken in the boot's order whatever order the batch holds them in.
    assert count([later, first], {}).days == in_order.days
    # Delivered alone after the later one: the earlier adds nothing; the total is the same.
    assert count([later], {}).days[0]["count"] == 7
    assert count([first], {("nps-aaa111", 1, "sampled_out"): 7}) == ([], [])
    assert in_order.seen == [
        {"device": "nps-aaa111", "boot": 1, "reason": "sampled_out", "seen": 7}
    ]
    # A new boot counts from zero; another reason has its own high mark.
    again = count([reading(2, 60, boot=2)], {("nps-aaa111", 1, "sampled_out"): 7})
    assert [r["count"] for r in again.days] == [2]


def test_only_the_known_reasons_above_zero_count_and_an_impossible_total_does_not() -> None:
    assert totals_of(None) == {} and totals_of({"sampled_out": 0, "throttled": 0}) == {}
    assert totals_of({"sampled_out": 2, "expired": 1, "mystery": 9}) == {
        "sampled_out": 2, "expired": 1
    }  # fmt: skip
    assert plausible(reading(61, 60)) and not plausible(reading(62, 60))
    assert not plausible(reading(2**53 - 1, 3600))


def northstar(api: Api, people: dict[str, str], metric: str) -> list[dict[str, Any]]:
    """The 4 weeks of `metric`, chosen by the admin; the third is NOON's."""
    r = api.client.put("/api/v1/northstar", json={"metric": metric}, headers=as_(people["admin"]))
    assert r.status_code == 200, r.text
    weeks: list[dict[str, Any]] = api.get("/api/v1/northstar", weeks=4)["weeks"]
    return weeks


def sampled(seq: int, total: int, *, up_s: int, ts: float, rssi: float = -55, **kw: Any) -> Any:
    return telemetry(
        seq=seq, ts=ts, up_ms=up_s * 1000, rssi=rssi, sampling={"sampled_out": total}, **kw
    )


def test_the_north_star_adds_the_skipped_transactions_to_the_prompted_ones(
    api: Api, people: dict[str, str]
) -> None:
    prompted = feedback("nps-aaa111", 1, 9, ts=NOON)  # a `purchase`: a transaction prompted
    got = api.ingest([
        prompted,
        sampled(2, 4, up_s=600, ts=NOON + 60),
        sampled(3, 10, up_s=4000, ts=NOON + 3600, rssi=-85),  # weak Wi-Fi: degraded
    ])  # fmt: skip
    assert got["accepted"] == 3
    weeks = northstar(api, people, "transactions")
    assert [(w["value"], w["unprompted"]) for w in weeks] == [(0, 0), (0, 0), (11, 10), (0, 0)]
    healthy = northstar(api, people, "healthy_transactions")
    assert [(w["value"], w["unprompted"]) for w in healthy][2] == (5, 4)
    answers = northstar(api, people, "answers")
    assert [(w["value"], w["unprompted"]) for w in answers][2] == (1, 0)
    # Sent again (the gateway missed the answer): duplicates, nothing counted twice.
    again = api.ingest([sampled(2, 4, up_s=600, ts=NOON + 60),
                        sampled(3, 10, up_s=4000, ts=NOON + 3600, rssi=-85)])  # fmt: skip
    assert again["duplicates"] == 2
    assert northstar(api, people, "transactions")[2]["unprompted"] == 10
    # A reading delivered late, below the high mark, adds nothing; a reboot counts afresh.
    api.ingest([sampled(4, 7, up_s=3000, ts=NOON + 3000),
                sampled(1, 2, up_s=60, ts=NOON + DAY, boot=2)])  # fmt: skip
    assert northstar(api, people, "transactions")[2]["unprompted"] == 12


def test_another_sites_gateway_and_impossible_totals_add_nothing(
    api: Api, people: dict[str, str]
) -> None:
    api.ingest([sampled(1, 3, up_s=600, ts=NOON)])  # binds nps-aaa111 to store-1
    forged = api.ingest([sampled(2, 500, up_s=9000, ts=NOON + 60)], gateway="gw-2", site="store-2")
    assert forged["accepted"] == 0 and len(forged["rejected"]) == 1
    hostile = [
        sampled(3, 10**9, up_s=700, ts=NOON + 120),  # more than one a second of uptime
        sampled(4, 2**53 - 1, up_s=800, ts=NOON + 180),
    ]
    assert api.ingest(hostile)["accepted"] == 2  # the readings are kept, their counters not
    assert northstar(api, people, "transactions")[2]["unprompted"] == 3
    metrics = api.client.get("/metrics").text
    found = re.search(
        r'^nps_edge_unprompted_ignored_total{reason="implausible"} (\S+)$', metrics, re.M
    )
    assert found is not None and float(found.group(1)) == 2.0


def test_a_site_bound_viewer_counts_its_own_site_only(api: Api, people: dict[str, str]) -> None:
    api.ingest([sampled(1, 3, up_s=600, ts=NOON)])
    api.ingest([telemetry("nps-bbb222", 1, ts=NOON, site="store-2", up_ms=600_000,
                          sampling={"throttled": 5})])  # fmt: skip
    assert northstar(api, people, "transactions")[2]["unprompted"] == 8
    viewer = {"Authorization": f"Bearer {people['viewer-store-2']}"}
    got = api.client.get("/api/v1/northstar", params={"weeks": 4}, headers=viewer).json()
    assert got["site"] == "store-2" and got["weeks"][2]["unprompted"] == 5
    refused = api.client.get("/api/v1/northstar", params={"site": "store-1"}, headers=viewer)
    assert refused.status_code == 403


def test_two_batches_of_one_device_at_once_count_its_total_once(
    api: Api, engine: Engine, settings: Settings
) -> None:
    """Batch A holds the device's row (PostgreSQL) or the writer's lock (SQLite) and has
    counted a total of 3 when batch B, with a total of 5, comes in: B must wait and
    count 2. Counted before the device rows, B would add its whole 5."""
    api.ingest([telemetry(seq=1, ts=NOON)])  # the device's row exists, bound to store-1
    postgres = engine.dialect.name == "postgresql"
    done: list[Any] = []
    with write_session(engine) as a:
        if postgres:
            a.execute(text("SELECT 1 FROM device WHERE id = 'nps-aaa111' FOR UPDATE"))
        unprompted.add(a, [reading(3, 600)])
        b = threading.Thread(target=lambda: done.append(ingest_batch(
            engine, gateway="gw-1", events=[sampled(3, 5, up_s=700, ts=NOON + 60)],
            settings=settings, site="store-1",
        )))  # fmt: skip
        b.start()
        if postgres:  # B is seen waiting on a lock before A commits
            assert _waiting_on_a_lock(engine), "batch B never waited"
        else:
            time.sleep(0.5)
        a.commit()
    b.join(30)
    assert done and done[0].accepted == 1
    with Session(engine) as s:
        rows = s.execute(select(table_of(UnpromptedDay).c["count"])).scalars().all()
    assert sum(rows) == 5


def _waiting_on_a_lock(engine: Engine) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as c:
            if c.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )).scalar():  # fmt: skip
                return True
        time.sleep(0.05)
    return False


def test_the_reasons_counted_are_the_firmwares() -> None:
    source = (Path(__file__).parents[2] / "firmware/device/sampling.py").read_text()
    named = dict(re.findall(r'^(SAMPLED_OUT|THROTTLED|EXPIRED) = "(\w+)"$', source, re.M))
    assert tuple(named[k] for k in ("SAMPLED_OUT", "THROTTLED", "EXPIRED")) == unprompted.REASONS
