"""The fleet chapter of the demo's story (issue 14): firmware 1.5.0 went out to a cohort
and its NPS canary halts the rollout.

`nps_edge.story` already writes the history (1.5.0 reaches part of the fleet mid-period,
hurting Wi-Fi and scores). `chapter` reads from those scenarios who got it and when (pure);
`seed` stores a signed release 1.5.0 and that rollout on the server, so the server's
periodic rollout check (server/fleet/watch.py) halts it once the answers show the drop,
raising a `canary` alert and showing the comparison on the releases page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_BOARD = "esp32_oled_encoder"
STEP_ANSWERS = 200


@dataclass(frozen=True)
class Chapter:
    version: str
    cohort: list[str]
    population: int
    started_at: float


def chapter(scenarios: list[dict[str, Any]], version: str = "1.5.0") -> Chapter | None:
    """Who runs `version` in the story and since when; None when nobody does."""
    firsts = {
        s["device"]: min(st["at"] for st in s["steps"] if st.get("fw") == version)
        for s in scenarios
        if any(st.get("action") == "set" and st.get("fw") == version for st in s["steps"])
    }
    if not firsts:
        return None
    return Chapter(version, sorted(firsts), len(scenarios), min(firsts.values()))


def _bundle(folder: Path, version: str) -> str:
    """A small signed bundle of `version` in `folder`; the public key of its one-off release key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate()
    data = f"# nps-edge demo firmware {version}\n".encode()
    (folder / "main.py").write_bytes(data)
    entry = {"path": "main.py", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = {
        "format": 1, "firmware": version, "board": DEMO_BOARD, "arch": "xtensawin",
        "built_at": "demo", "mpy_cross": "demo", "flags": [], "files": [entry],
    }  # fmt: skip
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (folder / "manifest.json").write_bytes(raw)
    (folder / "manifest.sig").write_text(base64.b64encode(key.sign(raw)).decode() + "\n")
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def seed(db: str, scenarios: list[dict[str, Any]], version: str = "1.5.0") -> Chapter | None:
    """Store the release and its rollout on the server's database (once; migrated)."""
    from sqlalchemy import select
    from sqlmodel import Session

    from server.db.engine import make_engine
    from server.fleet import releases, rollout
    from server.models import Release, Rollout

    story = chapter(scenarios, version)
    if story is None:
        return None
    engine = make_engine(db)
    try:
        with Session(engine) as session, tempfile.TemporaryDirectory() as tmp:
            if session.get(Release, version) is None:
                pub = _bundle(Path(tmp), version)
                releases.create(session, bundle=Path(tmp), release_pub=pub, now=story.started_at)
            if session.execute(select(Rollout).where(Rollout.version == version)).first() is None:  # type: ignore[arg-type]
                rollout.adopt(
                    session, version=version, cohort=story.cohort, population=story.population,
                    started_at=story.started_at, step_answers=STEP_ANSWERS, by="demo",
                )  # fmt: skip
            session.commit()
    finally:
        engine.dispose()
    return story


def seed_folder(db: str, folder: Path, version: str = "1.5.0") -> Chapter | None:
    """`seed` from the scenario files the demo wrote (`demo.write_scenarios`)."""
    scenarios = [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]
    return seed(db, scenarios, version)
