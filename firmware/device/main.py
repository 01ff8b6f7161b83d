"""Device entry point: pick the board profile, load config.json, run the application.

The board profile is `boards/<name>.py`: the name comes from board.txt on
flash when present, else from the platform (esp32 -> esp32_oled_encoder,
linux -> unix_sim).
"""

import gc
import sys

# First, while the heap is still in one piece: these modules allocate the
# application's fixed buffers (about 5.3 KB in blocks of 1-1.3 KB) when they
# load; loading other code first would leave no free block that large
# (docs/firmware.md, Heap).
import mqtt  # noqa: F401
import outbox  # noqa: F401

DEFAULT_BOARDS = {"esp32": "esp32_oled_encoder", "linux": "unix_sim"}


def board_name():
    try:
        with open("board.txt") as f:
            return f.read().strip()
    except OSError:
        return DEFAULT_BOARDS.get(sys.platform, "unix_sim")


def main():
    name = board_name()
    module = __import__("boards." + name, None, None, ["Board"])
    board = module.Board()
    import config

    try:
        cfg = config.load(board.root + "config.json", board.default_device_id)
    except config.ConfigError as err:
        board.fatal("Bad config.json", str(err))  # shown on screen and console; does not return
        return
    # The checker is needed once per boot: give its code's heap back to the application.
    del config
    del sys.modules["config"]
    gc.collect()
    board.configure(cfg)
    import app

    application = app.App(board, cfg)
    del cfg  # what the application keeps of it, it holds itself
    gc.collect()
    application.run()


main()
