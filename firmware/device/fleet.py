"""Remote control, wired to the application: signed commands (commands.py) and firmware
updates (ota.py) acting on the app's `remote` state (start.Remote).

app.py imports this module only when a command arrives or `remote.due` says there is
work (a setting to apply, a reboot, a boot to confirm, a download); it drops itself
again when nothing is left: on the unix port's 64 KB heap every resident line of
bytecode costs (docs/firmware.md, Heap).
"""

import gc
import sys

from prompt import IDLE  # settings change only between prompts


def _drop(name):
    if name in sys.modules:
        del sys.modules[name]


def _settle(r):
    r.due = r.todo is not None or r.watch is not None or r.updater is not None or r.resume
    if not r.due:
        _drop("ota")
        _drop("fleet")


def on_message(r, payload):
    """A PUBLISH on the device's cmd topic: commands.py decides, then is dropped."""
    try:
        import commands

        commands.receive(r, payload)
    except MemoryError:
        # A signature check needs ~15 KB while it runs (docs/firmware.md, Heap). Refused,
        # not a crash: the PUBACK would never go out and the broker would deliver the same
        # command at every boot (a crash loop the boot counter does not see before an update).
        r.counts["cmd_no_memory"] = r.counts.get("cmd_no_memory", 0) + 1
        r.status["cmd_error"] = "cmd_no_memory"
        _drop("ed25519")
        _drop("sha512")
        gc.collect()
    _drop("commands")
    _settle(r)
    r.app.on_up()  # status says cmd / cmd_error now


def reboot(r):
    r.app.outbox.close()
    r.board.reset()


def step(r, up):
    """Once per loop turn while due, after the network: apply, reboot, confirm, download."""
    app = r.app
    r.turns += 1
    idle = app.machine.state == IDLE
    todo = r.todo
    if todo is not None and idle:
        r.todo = None
        if todo[0] == "config":
            app.settings(todo[1])
            r.board.log("cmd: settings applied")
        else:
            reboot(r)
    if r.resume or r.watch is not None or r.updater is not None:
        import ota

        ota.step(r, up, idle)
    _settle(r)
