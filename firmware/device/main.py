"""Boot: choose the firmware folder to run, then start it (start.py in that folder).

This boot loader is never replaced by an update (docs/firmware.md, Updates): it
reads the pointer file fw.json and puts the active folder first on sys.path: an
installed release `fw/<version>` on flash, or else the factory firmware, /rom
(the romfs image) when the board has one and the flash root when it has not.
It counts boots that did not reach health. A new firmware gets one boot to
confirm itself, the next boot goes back to the previous folder; after
update.max_failed_boots failed boots in a row the factory code runs in safe
mode (no remote settings). Only builtins are imported here: a firmware module
imported before the switch would come from the wrong folder.
"""

import gc
import json
import os
import sys

POINTER = "fw.json"
ROM = "/rom"  # the romfs image, mounted by the board (the simulator models it)


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
    sys.path.insert(0, folder)  # an installed release, on flash
elif ROM in sys.path:
    sys.path.remove(ROM)
    sys.path.insert(0, ROM)  # the factory firmware, ahead of any stray file on flash
gc.collect()
# Next, while the heap is still in one piece: these modules (from the folder just
# chosen) allocate the application's fixed buffers (about 5.3 KB in blocks of
# 1-1.3 KB) when they load; loading other code first would leave no free block
# that large (docs/firmware.md, Heap).
import mqtt  # noqa: E402, F401
import outbox  # noqa: E402, F401
import start  # noqa: E402

application = start.build(folder, safe)
del start, sys.modules["start"]
application.run()
