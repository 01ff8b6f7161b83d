"""`nps-edge firmware build|flash|provision|verify`: the field engineers' tools; `sim` is in sim.py.

Each command turns the errors of bundle/serial_tools/provision/verify into one clear line
on stderr and a non-zero exit (1: the device or a tool failed, 2: bad input); long steps
print progress as they go. Every serial command takes --dry-run to print what it would run.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from firmware import bundle, install, sim
from firmware import provision as prov
from firmware import serial_tools as st
from firmware import verify as ver

DEFAULT_OUT = Path("build/firmware")
RunnerFactory = Callable[[bool], st.Runner]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def unwrap(doc: str) -> str:
    """A docstring as help: paragraphs kept, line breaks inside them removed."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


def say(message: str) -> None:
    typer.echo(message, err=True)


def show_progress(index: int, total: int, name: str) -> None:
    say(f"[{index:>{len(str(total))}}/{total}] {name}")


def default_runner(dry_run: bool) -> st.Runner:
    return st.DryRunRunner(echo=typer.echo) if dry_run else st.SubprocessRunner()


def load_manifest(path: Path, *, check_files: bool = False) -> bundle.Manifest:
    """The bundle's manifest; with `check_files`, also that the folder still matches it."""
    try:
        manifest = bundle.Manifest.load(path)
        if check_files:
            manifest.check_files(path)
    except bundle.ManifestError as err:
        fail(str(err), 2)
    return manifest


Port = Annotated[
    str,
    typer.Option(
        help="Serial port of the board, e.g. /dev/ttyUSB0 or COM3.", envvar="NPS_EDGE_PORT"
    ),
]
BundleDir = Annotated[
    Path,
    typer.Option(
        "--bundle", help="Bundle folder made by `firmware build`.", envvar="NPS_EDGE_BUNDLE"
    ),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the esptool/mpremote commands; touch nothing.")
]
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
    ] = DEFAULT_OUT,
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
            source_lines=source_lines,
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


def config_from(config_file: Path | None, settings: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The config to write and its exact text, checked by the device's rules (exit 2 if bad)."""
    try:
        base = prov.read_file(config_file) if config_file is not None else {}
        config = prov.with_settings(base, settings)
        prov.validate(config)
    except prov.ConfigInvalid as err:
        fail(f"config: {err}", 2)
    return config, prov.render(config)


def report(checks: list[ver.Check]) -> bool:
    """Print one line per file; True when the device matches the bundle."""
    for check in checks:
        detail = f"  ({check.detail})" if check.detail else ""
        typer.echo(f"{check.status:<9} {check.path}{detail}")
    failed = [c for c in checks if c.status in ver.FAILURES]
    matched = sum(c.status == ver.OK for c in checks)
    typer.echo(f"{matched} ok, {len(failed)} wrong, {len(checks) - matched - len(failed)} extra")
    return not failed


def check_device(runner: st.Runner, port: str, manifest: bundle.Manifest) -> None:
    """Read the device's files and compare them with the manifest; exit 1 on a mismatch."""
    try:
        listing = install.read_listing(runner, port)
    except (st.ToolError, ver.ListingError) as err:
        fail(str(err))
    typer.echo(
        f"device on {port}: MicroPython {listing.micropython}, loads .mpy v{listing.mpy_version}"
    )
    problem = ver.bytecode_problem(manifest, listing)
    ok = report(ver.compare(manifest, listing))
    if problem:
        fail(problem)
    if not ok:
        fail(f"the device does not match firmware {manifest.firmware} ({manifest.board})")
    typer.echo(f"device on {port} runs firmware {manifest.firmware} ({manifest.board}) exactly")


def firmware_app(make_runner: RunnerFactory = default_runner) -> typer.Typer:
    """The `firmware` command group; tests hand in a runner factory instead of real tools."""
    fw = typer.Typer(
        help="Field engineers' tools: build, flash, provision, verify.",
        no_args_is_help=True,
    )

    def flash(
        port: Port,
        firmware: Annotated[
            Path | None,
            typer.Option(
                help="MicroPython image (.bin) for the board; erases the flash and writes it "
                "first. Leave out to update only the bundle.",
                envvar="NPS_EDGE_MICROPYTHON_IMAGE",
            ),
        ] = None,
        bundle_dir: BundleDir = DEFAULT_OUT,
        config: Annotated[
            Path | None,
            typer.Option(
                help="A config.json to provision before main.py is copied.",
                envvar="NPS_EDGE_DEVICE_CONFIG",
            ),
        ] = None,
        chip: Annotated[
            str, typer.Option(help="esptool --chip.", envvar="NPS_EDGE_CHIP")
        ] = st.DEFAULT_CHIP,
        baud: Annotated[
            int, typer.Option(help="esptool baud rate for writing.", envvar="NPS_EDGE_BAUD")
        ] = st.DEFAULT_BAUD,
        dry_run: DryRun = False,
    ) -> None:
        """Install MicroPython with esptool (erase, write), then copy the bundle with mpremote.

        Removes the old code (main.py first; config.json and queued answers stay), copies
        the bundle with main.py last so an interrupted copy never boots half an app, checks
        every file against the manifest, then resets the board into the firmware.
        """
        manifest = load_manifest(bundle_dir, check_files=True)
        if firmware is not None and not firmware.is_file():
            fail(f"no MicroPython image at {firmware}", 2)
        text = config_from(config, {})[1] if config is not None else None
        runner = make_runner(dry_run)
        with tempfile.TemporaryDirectory(prefix="nps-edge-") as workdir:
            try:
                if firmware is not None:
                    install.write_micropython(runner, port, firmware, chip=chip, baud=baud, say=say)
                say(f"copying firmware {manifest.firmware} ({len(manifest.files)} files)")

                def provision_first() -> None:
                    if text is not None:
                        say("writing config.json")
                        install.write_config(runner, port, text, workdir=Path(workdir))

                install.copy_bundle(
                    runner,
                    port,
                    bundle_dir,
                    manifest,
                    progress=show_progress,
                    before_main=provision_first,
                )
                if not dry_run:
                    check_device(runner, port, manifest)
                st.check(runner.run(st.reset_device(port)), "resetting the board")
            except st.ToolError as err:
                fail(str(err))
        say("done: the board restarts into the firmware")

    def provision(
        port: Annotated[
            str | None,
            typer.Option(help="Serial port of the board.", envvar="NPS_EDGE_PORT"),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                help="A config.json to start from; the options below override its values.",
                envvar="NPS_EDGE_DEVICE_CONFIG",
            ),
        ] = None,
        device_id: Annotated[
            str | None,
            typer.Option(
                help="Device id; leave out to use nps- + the last six hex digits of the MAC.",
                envvar="NPS_EDGE_DEVICE_ID",
            ),
        ] = None,
        site: Annotated[
            str | None, typer.Option(help="Site name, e.g. store-042.", envvar="NPS_EDGE_SITE")
        ] = None,
        wifi_ssid: Annotated[
            str | None, typer.Option(help="Wi-Fi network name.", envvar="NPS_EDGE_WIFI_SSID")
        ] = None,
        wifi_password: Annotated[
            str | None,
            typer.Option(
                help="Wi-Fi password (prefer the environment variable).",
                envvar="NPS_EDGE_WIFI_PASSWORD",
            ),
        ] = None,
        broker: Annotated[
            str | None,
            typer.Option(help="MQTT broker as HOST or HOST:PORT.", envvar="NPS_EDGE_BROKER"),
        ] = None,
        tls: Annotated[
            bool | None,
            typer.Option(
                "--tls/--no-tls",
                help="Connect to the broker over TLS.",
                envvar="NPS_EDGE_BROKER_TLS",
            ),
        ] = None,
        username: Annotated[
            str | None,
            typer.Option(help="MQTT username for this device.", envvar="NPS_EDGE_MQTT_USERNAME"),
        ] = None,
        password: Annotated[
            str | None,
            typer.Option(
                help="MQTT password (prefer the environment variable).",
                envvar="NPS_EDGE_MQTT_PASSWORD",
            ),
        ] = None,
        prompt_text: Annotated[
            str | None,
            typer.Option(help="The question shown on the screen.", envvar="NPS_EDGE_PROMPT_TEXT"),
        ] = None,
        language: Annotated[
            str | None,
            typer.Option(
                help="Language code of the prompt text, e.g. en, de.",
                envvar="NPS_EDGE_PROMPT_LANGUAGE",
            ),
        ] = None,
        reason: Annotated[
            list[str] | None,
            typer.Option(
                help="Follow-up reason for scores 0-6 as CODE=LABEL; repeat up to 4 times."
            ),
        ] = None,
        save: Annotated[
            Path | None, typer.Option(help="Also write the config to this local file.")
        ] = None,
        check_only: Annotated[
            bool,
            typer.Option("--check-only", help="Only check the config; no board needed."),
        ] = False,
        dry_run: DryRun = False,
    ) -> None:
        """Write config.json to the board over serial, after checking it with the device's rules.

        Builds the config from --config and the options, checks it exactly as the
        firmware will at boot, copies it with mpremote, reads it back by SHA-256 and
        resets the board so it starts with the new settings.
        """
        try:
            host, broker_port = prov.split_broker(broker) if broker else (None, None)
            reasons = prov.parse_reasons(reason) if reason else None
        except prov.ConfigInvalid as err:
            fail(f"config: {err}", 2)
        settings = {
            "device_id": device_id,
            "site": site,
            "wifi.ssid": wifi_ssid,
            "wifi.password": wifi_password,
            "broker.host": host,
            "broker.port": broker_port,
            "broker.tls": tls,
            "broker.username": username,
            "broker.password": password,
            "prompt.text": prompt_text,
            "prompt.lang": language,
            "reasons": reasons,
        }
        values, text = config_from(config, settings)
        typer.echo(json.dumps(prov.masked(values), indent=1, sort_keys=True))
        if save is not None:
            save.write_text(text, encoding="utf-8")
            save.chmod(0o600)
        if check_only:
            typer.echo("config ok")
            return
        if port is None:
            fail("--port is required to write the config (or use --check-only)", 2)
        runner = make_runner(dry_run)
        with tempfile.TemporaryDirectory(prefix="nps-edge-") as workdir:
            try:
                say(f"writing config.json to {port}")
                install.write_config(runner, port, text, workdir=Path(workdir))
                if not dry_run:
                    say("reading it back")
                    if not install.config_on_device_matches(
                        install.read_listing(runner, port), text
                    ):
                        fail("config.json on the device differs from what was written; retry")
                st.check(runner.run(st.reset_device(port)), "resetting the board")
            except (st.ToolError, ver.ListingError) as err:
                fail(str(err))
        say("done: the board restarts with the new config")

    def verify(port: Port, bundle_dir: BundleDir = DEFAULT_OUT, dry_run: DryRun = False) -> None:
        """Compare the board's files with a bundle's manifest by SHA-256.

        Prints ok, missing, different or shadowed (a stale .py that MicroPython would
        import instead of the bundle's .mpy) for every file; exits 1 on any mismatch.
        """
        manifest = load_manifest(bundle_dir)
        runner = make_runner(dry_run)
        if dry_run:
            st.check(
                runner.run(st.exec_on_device(port, ver.DEVICE_LISTING), capture=True), "dry run"
            )
            return
        check_device(runner, port, manifest)

    for command in (build, flash, provision, verify):
        fw.command(help=unwrap(command.__doc__ or ""))(command)
    return fw


def register(app: typer.Typer) -> None:
    app.add_typer(firmware_app(), name="firmware")
    sim.register(app)
