"""`nps-edge firmware build|flash|provision|verify`: the field engineers' tools; `sim` is in sim.py.

Each command turns the library errors of bundle/serial_tools/provision into one clear
line on stderr and a non-zero exit; long steps print progress as they go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from firmware import bundle, sim

DEFAULT_OUT = Path("build/firmware")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def show_progress(index: int, total: int, name: str) -> None:
    width = len(str(total))
    typer.echo(f"[{index:>{width}}/{total}] {name}", err=True)


BoardOpt = Annotated[
    str,
    typer.Option(
        help="Hardware profile: a file firmware/device/boards/<BOARD>.py.",
        envvar="NPS_EDGE_BOARD",
    ),
]


def build(
    out: Annotated[
        Path,
        typer.Option(
            help="Bundle folder to (re)create; DIR.tar.gz is written beside it.",
            envvar="NPS_EDGE_BUNDLE",
        ),
    ] = DEFAULT_OUT,
    board: BoardOpt = bundle.DEFAULT_BOARD,
    arch: Annotated[
        str,
        typer.Option(
            help="mpy-cross -march: xtensawin for ESP32; x64 only to run a bundle on a PC.",
            envvar="NPS_EDGE_ARCH",
        ),
    ] = bundle.DEFAULT_ARCH,
    source: Annotated[
        Path,
        typer.Option(
            help="Device source folder.",
            envvar="NPS_EDGE_FIRMWARE_SOURCE",
            show_default="the firmware shipped with nps-edge",
        ),
    ] = bundle.DEVICE_DIR,
) -> None:
    """Compile the device firmware with mpy-cross into a bundle with a SHA-256 manifest.

    Every module becomes .mpy bytecode except main.py and boot.py, which MicroPython
    runs as source. Prints one progress line per file, then the bundle and archive paths.
    """
    try:
        manifest = bundle.build(
            out,
            compiler=bundle.MpyCross(),
            board=board,
            arch=arch,
            device_dir=source,
            progress=show_progress,
        )
        archive = bundle.write_archive(out, (f.path for f in manifest.files))
    except bundle.BuildError as err:
        fail(str(err))
    total = sum(f.size for f in manifest.files)
    typer.echo(
        f"built firmware {manifest.firmware} for {manifest.board} ({manifest.arch}): "
        f"{len(manifest.files)} files, {total} bytes"
    )
    typer.echo(f"bundle:  {out}")
    typer.echo(f"archive: {archive}")


def register(app: typer.Typer) -> None:
    fw = typer.Typer(
        help="Field engineers' tools: build, flash, provision, verify.", no_args_is_help=True
    )
    fw.command("build")(build)
    app.add_typer(fw, name="firmware")
    sim.register(app)
