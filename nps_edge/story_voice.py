"""The story's voice: what people wrote from their phones after answering (issue 15).

At the story's `service_site` (store-3) the detractors after service visits chose the
reasons "staff" and "wait_time"; their comments say what that means, so the themes
panel explains store-3. A few comments elsewhere keep the other themes honest.

`voice_comments` is pure and seeded (which answers, which words); `send_comments` is
the one I/O function: it posts them through the phone page, as a phone would, with
links made the device's way (server/voice/keys.py).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

STAFF = (
    "The technician was rude and nobody told us what was wrong.",
    "Staff ignored me at the desk; the service was unfriendly.",
    "Nobody from the staff helped, I had to find the manager myself.",
    "The attendant was impolite and did not explain anything.",
)
WAITING = (
    "Waited 40 minutes for the machine to be fixed.",
    "The queue took ages, over half an hour of waiting.",
    "Slow service, we waited forever for the technician.",
)
ELSEWHERE = {
    "price": "Too expensive for what it is, the price went up again.",
    "machine_fault": "The screen froze twice and showed an error.",
    "wait_time": "A bit of a wait at lunch time.",
}
ANSWER_REASONS = ("staff", "wait_time")


@dataclass(frozen=True)
class StoryComment:
    """A comment for the answer of `device` to the prompt with trigger ref `ref`."""

    device: str
    site: str
    ref: str
    at: float
    text: str
    contact: str | None


def voice_comments(
    scenarios: Sequence[dict[str, Any]],
    *,
    since: float,
    service_site: str = "store-3",
    limit: int = 12,
    seed: int = 7,
) -> list[StoryComment]:
    """Comments on answers at or after `since` (links expire: docs/server.md), newest
    first: up to `limit`, of which at most a quarter from sites other than `service_site`."""
    rng = random.Random(f"voice:{seed}")
    ours: list[StoryComment] = []
    others: list[StoryComment] = []
    for s in scenarios:
        for step in s["steps"]:
            ref = (step.get("trigger") or {}).get("ref")
            if step["action"] != "answer" or step["score"] > 6 or not ref or step["at"] < since:
                continue
            reason = step.get("reason")
            if s["site"] == service_site and reason in ANSWER_REASONS:
                text = rng.choice(STAFF if reason == "staff" else WAITING)
                contact = "+44 7700 900123" if rng.random() < 0.3 else None
                ours.append(StoryComment(s["device"], s["site"], ref, step["at"], text, contact))
            elif s["site"] != service_site and reason in ELSEWHERE:
                text = ELSEWHERE[reason]
                others.append(StoryComment(s["device"], s["site"], ref, step["at"], text, None))
    newest = sorted(others, key=lambda c: -c.at)[: limit // 4]
    return newest + sorted(ours, key=lambda c: -c.at)[: limit - len(newest)]


def send_comments(
    client: httpx.Client,
    comments: Sequence[StoryComment],
    *,
    seq_of: Callable[[StoryComment], int | None],
    link_of: Callable[[str, int], str],
) -> int:
    """POST each comment to its phone link (`link_of(device, seq)`, a path); the comments
    whose answer `seq_of` cannot find are skipped. Returns how many were stored."""
    stored = 0
    for c in comments:
        seq = seq_of(c)
        if seq is None:
            continue
        form = {"comment": c.text, **({"contact": c.contact} if c.contact else {})}
        if client.post(link_of(c.device, seq), data=form).status_code == 200:
            stored += 1
    return stored


def post_story_comments(url: str, token: str, history: Path, db: str, *, since: float) -> int:
    """The demo's step after its history is delivered: the story's comments (from the
    scenario files under `history`) through the phone page of the server at `url`."""
    from server.voice import keys

    scenarios = [json.loads(p.read_text()) for p in sorted(history.glob("*/*.json"))]
    comments = voice_comments(scenarios, since=since)
    secret = keys.load_secret(keys.secret_path(os.environ.get("NPS_EDGE_VOICE_SECRET"), db))
    seqs: dict[tuple[str, str | None], int] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for device in sorted({c.device for c in comments}):
            page = client.get(
                "/api/v1/feedback", params={"device": device, "limit": 1000},
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            for item in page.json().get("items", []) if page.status_code == 200 else []:
                seqs[(device, item["trigger_ref"])] = int(item["id"].rpartition(":")[2])
        return send_comments(
            client, comments, seq_of=lambda c: seqs.get((c.device, c.ref)),
            link_of=lambda d, n: keys.link("", keys.device_key(secret, d), d, n),
        )  # fmt: skip
