"""The contract v1 event envelope (docs/protocol.md), built as JSON bytes on the device."""

import json


def event(ident, seq, up_ms, ts_ms, kind, body, out=None):
    """One event: ident holds device, site, boot, fw; body the type's own fields.

    Written straight into out (the outbox's record buffer: json.dump streams
    into it), so no event-sized string is built; without out it is returned
    as a str (tests). ts is written from integer milliseconds: the ESP32 port
    has single-precision floats (about two minutes of resolution at today's
    unix time).
    """
    device = ident["device"]
    body["v"] = 1
    body["id"] = "%s:%d" % (device, seq)
    body["device"] = device
    body["site"] = ident["site"]
    body["seq"] = seq
    body["boot"] = ident["boot"]
    body["up_ms"] = up_ms
    body["fw"] = ident["fw"]
    body["type"] = kind
    ts = "null" if ts_ms is None else "%d.%03d" % (ts_ms // 1000, ts_ms % 1000)
    if out is None:
        return json.dumps(body)[:-1] + ', "ts": %s}' % ts
    json.dump(body, out)
    out.n -= 1  # over the closing brace
    out.write(', "ts": ')
    out.write(ts)
    out.write("}")
    return None


def feedback_body(result, prompt_key, rssi, battery_mv):
    """The feedback fields of a finished prompt (prompt.py's result)."""
    body = {
        "outcome": result["outcome"],
        "prompt": prompt_key,
        "trigger": {"kind": result["trigger"][0], "ref": result["trigger"][1]},
        "reason": result["reason"],
        "survey": result.get("survey", "transactional"),
        "role": result.get("role"),
        "answer_ms": result["answer_ms"],
        "ctx": {"rssi": rssi, "battery_mv": battery_mv},
    }
    if result["outcome"] == "answered":
        body["score"] = result["score"]
    return body


def status(online, fw=None, boot=None, more=None):
    """Retained presence; more: the remote-control fields (cfg, cmd, cmd_error, update)."""
    if not online:
        return '{"online": false}'
    body = {"online": True, "fw": fw, "boot": boot}
    if more:
        body.update(more)
    return json.dumps(body)
