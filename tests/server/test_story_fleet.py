"""The demo's fleet chapter (nps_edge/story_fleet.py): with the demo's own story settings,
the 1.5.0 rollout it seeds is halted by its NPS canary once the history is in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from nps_edge import story_fleet
from nps_edge.demo import SITES
from nps_edge.story import Story, generate, scenario_events, site_names
from server.app import create_app
from server.db.engine import make_engine
from server.fleet import keys, rollout
from server.identity.tokens import create_token
from server.models import Rollout
from server.settings import Settings


def test_the_demo_rollout_is_halted_by_its_canary(tmp_path: Path, sqlite_template: Path) -> None:
    story = Story(end=1_795_000_000.0, days=30, seed=1, sites=SITES, devices_per_site=4,
                  prompts_per_day=14.0, telemetry_minutes=(60.0, 90.0))  # fmt: skip
    scenarios = generate(story)
    folder = tmp_path / "history"
    for scenario in scenarios:
        site_folder = folder / scenario["site"]
        site_folder.mkdir(parents=True, exist_ok=True)
        (site_folder / f"{scenario['device']}.json").write_text(json.dumps(scenario))
    db_path = tmp_path / "server.db"
    shutil.copyfile(sqlite_template, db_path)
    settings = Settings(db=f"sqlite:///{db_path}", command_key=str(tmp_path / "command.key"))
    chapter = story_fleet.seed_folder(settings.db, folder)
    assert chapter is not None and 0 < len(chapter.cohort) < len(scenarios)
    assert story_fleet.seed_folder(settings.db, folder) == chapter  # a rerun adds nothing

    engine = make_engine(settings.db)
    events = sorted((e for s in scenarios for e in scenario_events(s)), key=lambda e: e["rx_ts"])
    with TestClient(create_app(settings, engine=engine)) as client:
        for site in site_names(story):
            with Session(engine) as db:
                token = create_token(db, name=f"gw-{site}", role="gateway", site=site)
            mine = [e for e in events if e["site"] == site]
            for i in range(0, len(mine), 1000):
                r = client.post(
                    "/api/v1/ingest", json={"gateway": f"gw-{site}", "events": mine[i : i + 1000]},
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip
                assert r.status_code == 200 and not r.json()["rejected"], r.text[:300]
    with Session(engine) as session:
        rollout.tick(session, key=keys.load_or_create(Path(str(settings.command_key))),
                     now=story.end)  # fmt: skip
        session.commit()
        [row] = session.execute(select(Rollout)).scalars().all()
    engine.dispose()
    assert row.state == "halted", row.canary
    assert row.canary["cohort"]["nps"]["n"] >= 20 and row.canary["diff"] < 0
