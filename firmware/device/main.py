"""Boot: choose the firmware folder to run, then start it (start.py in that folder).

The root main.py is never replaced by an update (docs/firmware.md, Updates): it
reads the pointer file fw.json, puts the active folder first on sys.path and
counts boots that did not reach health. A new firmware gets one boot to confirm
itself, the next boot goes back to the previous folder; after
update.max_failed_boots failed boots in a row the factory code at the root runs
in safe mode (no remote settings). Only builtins are imported here: a firmware
module imported before the switch would come from the wrong folder.
"""

import json
import os
import sys

POINTER = "fw.json"


def choose():
    """(folder, safe, pointer): where to run from; the pointer written back when changed."""

    def _usable(folder):
        if not folder:
            return True
        try:
            os.stat(folder + "/start.mpy")
            return True
        except OSError:
            try:
                os.stat(folder + "/start.py")
                return True
            except OSError:
                return False

    try:
        with open(POINTER) as f:
            ptr = json.load(f)
        ptr["active"]
    except (OSError, ValueError, KeyError, TypeError):
        return "", False, None  # never updated: the factory code at the root
    ptr["boots"] = ptr.get("boots", 0) + 1
    if ptr.get("pending") and ptr["boots"] > 1:
        # The new firmware did not confirm health in its boot: back to the previous one.
        ptr["rolled_back"] = ptr["active"]
        ptr["active"] = ptr.get("previous") or ""
        ptr["pending"] = False
        ptr["boots"] = 1
    elif ptr["boots"] > ptr.get("max", 3):
        ptr["safe"] = True  # crash loop on a confirmed firmware: factory code, no overrides
    if not _usable(ptr["active"]):
        ptr["rolled_back"] = ptr["active"]
        ptr["active"] = ptr.get("previous") or ""
        ptr["pending"] = False
    tmp = POINTER + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(ptr))
    os.rename(tmp, POINTER)
    safe = bool(ptr.get("safe"))
    return ("" if safe else ptr["active"]), safe, ptr


folder, safe, _ = choose()
del choose  # the boot loader's code goes back to the heap
if folder:
    sys.path.insert(0, folder)
import start  # noqa: E402  (from the active folder, now first on sys.path)

application = start.build(folder, safe)
del start, sys.modules["start"]
application.run()
