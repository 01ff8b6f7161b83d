"""Start the firmware of this folder: pick the board profile, load config.json, run the app.

main.py (the boot loader at the root) calls build(folder, safe), drops this module
and runs the application it returns. The board profile is
`boards/<name>.py`: the name comes from board.txt when present, else from the
platform (esp32 -> esp32_oled_encoder, linux -> unix_sim).
"""

import gc
import sys

DEFAULT_BOARDS = {"esp32": "esp32_oled_encoder", "linux": "unix_sim"}
# The last good remote settings, newest first (commands.py writes them).
OVERRIDES = ("cmd.json", "cmd.prev.json")


class Remote:
    """Remote-control state the application keeps (fleet.py acts on it, loaded only when
    due): folder, safe, device, trust, update_cfg, status (cfg, cmd, cmd_error, update),
    counts (telemetry errors), todo, watch (fw.json while a boot is unconfirmed),
    updater, turns, due (fleet.py has work), resume, board, app."""


def remote_for(folder, safe, state, cfg, board, persist):
    r = Remote()
    state = state or {}
    r.folder = folder
    r.safe = safe
    r.device = cfg["device_id"]
    r.trust = cfg["trust"]
    r.update_cfg = cfg["update"]
    r.status = {
        "cfg": 0 if safe else state.get("cfg", 0),  # safe mode runs the factory settings
        "cmd": state.get("n", 0),
        "cmd_error": None,
        "update": persist.read_json(board.root + "ota.json", {}).get("status"),
    }
    if safe:
        r.status["safe"] = True
    pointer = persist.read_json(board.root + "fw.json", {})
    # An unconfirmed firmware, or failed boots counted: ota.py watches this boot's health.
    r.watch = pointer if pointer.get("pending") or pointer.get("boots") else None
    r.resume = r.status["update"] in ("staging", "switched")
    r.counts = {}
    r.todo = None
    r.updater = None
    r.turns = 0
    r.due = r.watch is not None or r.resume
    r.board = board
    r.app = None
    return r


def board_name(folder):
    for path in (folder + "/board.txt" if folder else None, "board.txt"):
        if path is None:
            continue
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            pass
    return DEFAULT_BOARDS.get(sys.platform, "unix_sim")


def build(folder="", safe=False):
    module = __import__("boards." + board_name(folder), None, None, ["Board"])
    board = module.Board()
    import config
    import persist

    try:
        cfg = config.load(board.root + "config.json", board.default_device_id)
    except config.ConfigError as err:
        board.fatal("Bad config.json", str(err))  # shown on screen and console; does not return
        return
    paths = [board.root + p for p in OVERRIDES]
    if safe:  # factory settings; the last accepted n still guards against replays
        state = persist.read_json(paths[0], None) or persist.read_json(paths[1], None)
    else:
        cfg, state = config.with_override(cfg, paths, persist.read_json)
    # The checker is needed once per boot: give its code's heap back to the application.
    del config
    del sys.modules["config"]
    gc.collect()
    board.configure(cfg)
    import app

    application = app.App(board, cfg, remote_for(folder, safe, state, cfg, board, persist))
    del cfg  # what the application keeps of it, it holds itself
    gc.collect()
    return application
