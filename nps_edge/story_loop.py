"""The demo's team closing the loop: a first admin, two operators, routing rules, and the
month's cases worked the way a team would have, so the inbox opens with what is left
to do (the last day's cases, and store-3's site case on top) and the "what did we
change" report has a month of closes in it.

`plan` is pure (cases in, bulk steps out); `first_admin` and `settle` run the command
and the API, as an operator would.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import typer

from nps_edge.processes import ProcessError, create_token, nps_edge_command

ADMIN = "admin@demo.example"
TEAM = (("maria@demo.example", "operator", None), ("sam@demo.example", "operator", "store-3"))
ROUTES = ({"site": "store-3", "assignee": "sam@demo.example"}, {"assignee": "maria@demo.example"})
STILL_OPEN = 5  # the team works oldest first: the cases of the latest answers are still to do
# What the team did, by what the customers answered after: (action taken, note).
ACTIONS: dict[str, tuple[str, str]] = {
    "service_visit": ("Briefed technicians on the hand-over", "Customers waited after visits"),
    "cycle_complete": ("Checked the machine and called back", "Customer called back"),
    "walkup": ("Moved the screen to eye height", "Walk-up answers were misread"),
    "offline": ("Power cycled the access point", "Device back online"),
    "battery": ("Replaced the battery", "Battery swapped on the next round"),
}


def _start(case: Mapping[str, Any]) -> float:
    return float(case.get("answered_at") or case.get("started_at") or case["created_at"])


def plan(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Bulk steps (`POST /api/v1/alerts/bulk` bodies): close what a team working oldest
    first would have closed by now (all but the `STILL_OPEN` latest device cases), with
    its action; give what is left an owner by the routing rules. A site's NPS case
    stays open: the site still has to recover."""
    closes: dict[tuple[str, str], list[int]] = defaultdict(list)
    owners: dict[str, list[int]] = defaultdict(list)
    devices = sorted((c for c in cases if c["kind"] != "site_nps"), key=_start, reverse=True)
    worked = {c["id"] for c in devices[STILL_OPEN:]}
    for case in cases:
        trigger = (case.get("detail") or {}).get("trigger", {}).get("kind") or case["kind"]
        if case["id"] in worked:
            closes[ACTIONS.get(trigger, ACTIONS["cycle_complete"])].append(case["id"])
        elif case.get("assignee") is None:
            owners[_owner(case.get("site"))].append(case["id"])
    steps = [
        {"ids": ids, "action": "close", "action_taken": action, "note": note}
        for (action, note), ids in sorted(closes.items())
    ]
    steps += [
        {"ids": ids, "action": "assign", "assignee": owner} for owner, ids in sorted(owners.items())
    ]
    return steps


def _owner(site: str | None) -> str:
    return next(r["assignee"] for r in ROUTES if r.get("site") in (None, site))


def first_admin(workdir: Path) -> str:
    """`nps-edge user add` for the demo's first admin; prints the login (stdout only)."""
    db = f"sqlite:///{workdir / 'server.db'}"
    done = subprocess.run(
        [*nps_edge_command(), "user", "add", "--db", db, "--email", ADMIN, "--role", "admin"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise ProcessError(f"user add failed ({done.returncode}): {done.stderr.strip()}")
    password = done.stdout.strip()
    typer.echo(f"  Login (admin):  {ADMIN} / {password}")
    return password


def settle(url: str, workdir: Path) -> int:
    """`work_the_month` on the demo's server, as an admin; the cases left open."""
    admin = create_token(f"sqlite:///{workdir / 'server.db'}", "admin", "demo-loop")
    with httpx.Client(base_url=f"{url}/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {admin}"}) as api:  # fmt: skip
        return work_the_month(api)


def work_the_month(api: httpx.Client) -> int:
    """The team, the routing rules, then the month's cases worked (`api`: an admin's
    client on /api/v1); the cases left open."""
    for email, role, site in TEAM:
        api.post("/people", json={"email": email, "role": role, "site": site})
    for rule in ROUTES:
        api.post("/routing", json=rule).raise_for_status()
    cases = api.get("/alerts", params={"status": "active", "limit": 1000}).json()["items"]
    for step in plan(cases):
        api.post("/alerts/bulk", json=step).raise_for_status()
    left: int = api.get("/alerts", params={"status": "active", "limit": 1}).json()["total"]
    return left
