"""What the outbox unit scripts share: a folder of their own, a wipe, a payload."""

import json
import os

ROOT = "ob-test"


def wipe(path=ROOT):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        full = path + "/" + name
        if os.stat(full)[0] & 0x4000:
            wipe(full)
        else:
            os.remove(full)
    os.rmdir(path)


def payload(seq, kind="f", pad=0):
    return json.dumps({"seq": seq, "kind": kind, "pad": "x" * pad})
