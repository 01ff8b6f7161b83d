"""Remote control of one device, wired to the application: signed commands (commands.py)
and firmware updates (ota.py). app.py calls on_message, step, and reads status and counts.

Both are rare, so their code is imported only while needed and dropped after: on the
64 KB heap of the unix port every resident line of bytecode costs (docs/firmware.md).
"""

import sys

import persist
from prompt import IDLE  # settings change only between prompts


def drop(name):
    if name in sys.modules:
        del sys.modules[name]


class Fleet:
    """remote: (folder, safe, override state) from start.py; app: the running App.

    status: the fields app.py adds to the retained status (cfg, cmd, cmd_error,
    update); counts: refusals for telemetry errors; todo: an accepted command's
    action waiting for the prompt to be idle; updater: ota.Updater while one runs.
    """

    def __init__(self, app, board, cfg, remote):
        self.app = app
        self.board = board
        self.folder, safe, state = remote
        self.device = cfg["device_id"]
        self.trust = cfg["trust"]
        self.update_cfg = cfg["update"]
        state = state or {}
        self.status = {
            "cfg": 0 if safe else state.get("cfg", 0),  # safe mode runs the factory settings
            "cmd": state.get("n", 0),
            "cmd_error": None,
            "update": persist.read_json("ota.json", {}).get("status"),
        }
        if safe:
            self.status["safe"] = True
        self.counts = {}
        self.todo = None
        self.updater = None
        pointer = persist.read_json("fw.json", {})
        # Unconfirmed firmware or failed boots: ota.py watches this boot's health.
        self.watch = pointer if pointer.get("pending") or pointer.get("boots") else None
        self.turns = 0
        if self.watch is not None or self.status["update"] in ("staging", "switched"):
            import ota

            ota.resume(self)

    def on_message(self, topic, payload):
        """A PUBLISH on the device's cmd topic: commands.py decides, then is dropped."""
        import commands

        commands.receive(self, payload)
        drop("commands")
        if self.updater is None and self.watch is None:
            drop("ota")  # an update refused at once
        self.app.on_up()  # status says cmd / cmd_error now

    def step(self, up):
        """Once per loop turn, after the network: apply, reboot, confirm, download."""
        self.turns += 1
        todo = self.todo
        if todo is not None and self.app.machine.state == IDLE:
            self.todo = None
            if todo[0] == "config":
                self.app.settings(todo[1])
                self.board.log("cmd: settings applied")
            else:
                self.reboot()
        if self.watch is not None or self.updater is not None:
            import ota

            ota.step(self, up, self.app.machine.state == IDLE)

    def reboot(self):
        self.app.outbox.close()
        self.board.reset()
