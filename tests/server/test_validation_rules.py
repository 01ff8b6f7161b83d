"""The server's decisions: the contract's, plus the storage bounds written out in plain Python."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from server.ingest.validation import validate
from tests.common.test_protocol_rules import (
    FIELDS,
    contract_accepts,
    mutated,
    mutations,
    names_the_fault,
)

TIME_MAX = 4102444800  # 2100-01-01
INT_MAX = 2**53 - 1


def storage_accepts(event: dict[str, Any]) -> bool:
    """Times from 1970 to 2100, integers at most 2^53 - 1 in magnitude (also the errors'
    sum), no NUL in text (PostgreSQL cannot store it)."""
    times = [event.get("ts"), event["rx_ts"]]
    integers = [event["seq"], event["boot"], event["up_ms"]]
    if event["type"] == "feedback":
        ctx = event.get("ctx", {})
        integers += [event.get("answer_ms"), ctx.get("rssi"), ctx.get("battery_mv")]
    else:
        counts = list(event.get("errors", {}).values())
        integers += [*counts, sum(counts)]
    texts = [event.get("fw")]
    if event["type"] == "feedback":
        trigger = event.get("trigger") or {}
        texts += [event.get("reason"), event.get("prompt"), trigger.get("kind"), trigger.get("ref")]
    else:
        texts += [event.get("reset_cause"), *event.get("errors", {})]
    return (
        all(t is None or 0 <= float(t) < TIME_MAX for t in times)
        and all(n is None or abs(n) <= INT_MAX for n in integers)
        and not any(isinstance(t, str) and "\x00" in t for t in texts)
    )


@settings(max_examples=500, derandomize=True, deadline=None)
@given(mutation=mutations)
def test_server_decides_as_contract_and_storage(mutation: tuple[dict[str, Any], Any, bool]) -> None:
    valid, value, id_follows = mutation
    events = [mutated(valid, field, value, id_follows=id_follows) for field in FIELDS]
    good, bad, repeats = validate(events)
    for i, event in enumerate(events):
        expected = contract_accepts(event, forwarded=True) and storage_accepts(event)
        assert (i not in {r.index for r in bad}) == expected, (FIELDS[i], value)
    # The contract's generator draws integers up to 2^53: a base event past the
    # storage bound (2^53 - 1) is at fault elsewhere than the mutated field.
    if storage_accepts(valid):
        for rejected in bad:
            assert names_the_fault(rejected.error, FIELDS[rejected.index]), rejected.error
    assert len(good) + repeats == len(events) - len(bad)
