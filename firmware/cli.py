"""`nps-edge firmware build|keygen|flash|provision|verify` and `nps-edge sim`: registration.

Each command turns library errors into one clear line on stderr and a non-zero exit
(1: the board or a tool failed, 2: bad input); long steps print progress as they go.
`build` is here; the commands that talk to a board are in tools/board_commands.py,
`sim` in sim/run.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from firmware.sim import run as sim_run
from firmware.tools import bundle, signing
from firmware.tools.board_commands import (
    RunnerFactory,
    Tools,
    default_runner,
    flash,
    provision,
    verify,
)
from firmware.tools.console import fail, show_progress, unwrap

Board = Annotated[
    str,
    typer.Option(
        help="Hardware profile: a file firmware/device/boards/<BOARD>.py.", envvar="NPS_EDGE_BOARD"
    ),
]


def build(
    out: Annotated[
        Path,
        typer.Option(
            help="Bundle folder to (re)create; DIR.tar.gz is written beside it.",
            envvar="NPS_EDGE_BUNDLE",
        ),
    ] = bundle.DEFAULT_BUNDLE,
    board: Board = bundle.DEFAULT_BOARD,
    arch: Annotated[
        str,
        typer.Option(
            help="mpy-cross -march: xtensawin for ESP32; x64 only to run a bundle on a PC.",
            envvar="NPS_EDGE_ARCH",
        ),
    ] = bundle.DEFAULT_ARCH,
    source_lines: Annotated[
        bool,
        typer.Option(
            "--source-lines/--no-source-lines",
            help="Keep line numbers in tracebacks (a debug build: about 0.9 KB less free heap).",
            envvar="NPS_EDGE_SOURCE_LINES",
        ),
    ] = False,
    source: Annotated[
        Path,
        typer.Option(
            help="Device source folder.",
            envvar="NPS_EDGE_FIRMWARE_SOURCE",
            show_default="the firmware shipped with nps-edge",
        ),
    ] = bundle.DEVICE_DIR,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            help="Release key file from `firmware keygen`: writes manifest.sig, without "
            "which devices refuse the bundle as an update.",
            envvar="NPS_EDGE_SIGN_KEY",
        ),
    ] = None,
) -> None:
    """Compile the device firmware with mpy-cross into a bundle with a SHA-256 manifest.

    Every module becomes .mpy bytecode except main.py and boot.py, which MicroPython
    runs as source. Prints one progress line per file, then the bundle and archive paths.
    With --sign-key, also manifest.sig: the release key's Ed25519 signature over
    manifest.json, which a device checks before it installs an update.
    """
    try:
        key = signing.load_key(sign_key) if sign_key is not None else None
    except signing.SigningError as err:
        fail(str(err), 2)
    try:
        manifest = bundle.build(
            out,
            compiler=bundle.MpyCross(),
            board=board,
            arch=arch,
            source_lines=source_lines,
            device_dir=source,
            progress=show_progress,
        )
        names = [f.path for f in manifest.files]
        if key is not None:
            names.append(signing.sign_bundle(out, key).name)
        archive = bundle.write_archive(out, names)
    except (bundle.BuildError, signing.SigningError) as err:
        fail(str(err))
    total = sum(f.size for f in manifest.files)
    typer.echo(
        f"built firmware {manifest.firmware} for {manifest.board} ({manifest.arch}): "
        f"{len(manifest.files)} files, {total} bytes"
    )
    typer.echo(f"bundle:  {out}")
    typer.echo(f"archive: {archive}")
    if key is not None:
        typer.echo(f"signed:  {out / signing.SIGNATURE} (release key {signing.public_b64(key)})")


def keygen(
    out: Annotated[
        Path,
        typer.Option(
            help="Private key file to create (0600; never overwritten).",
            envvar="NPS_EDGE_KEY_OUT",
        ),
    ],
) -> None:
    """Make an Ed25519 release key: the private key into --out, the public key on stdout.

    Give the public key to every device (`firmware provision --release-pub`); keep the
    file offline and backed up (docs/field-guide.md, Release signing key): whoever holds
    it can sign firmware that every device will install.
    """
    try:
        key = signing.keygen(out)
    except signing.SigningError as err:
        fail(str(err), 2)
    typer.echo(signing.public_b64(key))


def firmware_app(make_runner: RunnerFactory = default_runner) -> typer.Typer:
    """The `firmware` command group; tests hand in a runner factory instead of real tools."""
    fw = typer.Typer(
        help="Field engineers' tools: build, keygen, flash, provision, verify.",
        no_args_is_help=True,
        context_settings={"obj": Tools(make_runner)},
    )
    for command in (build, keygen, flash, provision, verify):
        fw.command(help=unwrap(command.__doc__ or ""))(command)
    return fw


def register(app: typer.Typer) -> None:
    app.add_typer(firmware_app(), name="firmware")
    app.command()(sim_run.sim)
