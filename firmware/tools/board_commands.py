"""`flash`, `provision` and `verify`: the firmware commands that talk to a board.

Module-level Typer commands, registered by firmware/cli.py. They reach the board only
through a `serial_tools.Runner`, made from --dry-run by the factory in the context's
`Tools`, so tests hand in a stand-in board and see the exact commands.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from firmware.tools import bundle, install
from firmware.tools import provision as prov
from firmware.tools import serial_tools as st
from firmware.tools import verify as ver
from firmware.tools.console import fail, say, show_progress

RunnerFactory = Callable[[bool], st.Runner]


def default_runner(dry_run: bool) -> st.Runner:
    return st.DryRunRunner(echo=typer.echo) if dry_run else st.SubprocessRunner()


@dataclass(frozen=True)
class Tools:
    """What the board commands reach the board with; the `firmware` group puts it in ctx.obj."""

    make_runner: RunnerFactory = default_runner


def runner_for(ctx: typer.Context, dry_run: bool) -> st.Runner:
    """The runner of the group's Tools (tests hand in a stand-in board), else the real tools."""
    tools = ctx.find_object(Tools) or Tools()
    return tools.make_runner(dry_run)


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
    mac = f", MAC {listing.mac}" if listing.mac else ""
    typer.echo(
        f"device on {port}: MicroPython {listing.micropython}, "
        f"loads .mpy v{listing.mpy_version}{mac}"
    )
    problem = ver.bytecode_problem(manifest, listing)
    ok = report(ver.compare(manifest, listing))
    if problem:
        fail(problem)
    if not ok:
        fail(f"the device does not match firmware {manifest.firmware} ({manifest.board})")
    typer.echo(f"device on {port} runs firmware {manifest.firmware} ({manifest.board}) exactly")


def flash(
    ctx: typer.Context,
    port: Port,
    firmware: Annotated[
        Path | None,
        typer.Option(
            help="MicroPython image (.bin) for the board; erases the flash and writes it "
            "first. Leave out to update only the bundle.",
            envvar="NPS_EDGE_MICROPYTHON_IMAGE",
        ),
    ] = None,
    bundle_dir: BundleDir = bundle.DEFAULT_BUNDLE,
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
    runner = runner_for(ctx, dry_run)
    try:
        if firmware is not None:
            install.write_micropython(runner, port, firmware, chip=chip, baud=baud, say=say)
        say(f"copying firmware {manifest.firmware} ({len(manifest.files)} files)")
        install.copy_bundle(
            runner, port, bundle_dir, manifest, progress=show_progress, config=text, say=say
        )
        if not dry_run:
            check_device(runner, port, manifest)
        st.check(runner.run(st.reset_device(port)), "resetting the board")
    except st.ToolError as err:
        fail(str(err))
    say("done: the board restarts into the firmware")


def provision(
    ctx: typer.Context,
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
    ca: Annotated[
        Path | None,
        typer.Option(
            help="PEM file of the CA that signed the broker's certificate; without it a "
            "TLS connection does not check who the broker is.",
            envvar="NPS_EDGE_BROKER_CA",
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option(help="MQTT username for this device.", envvar="NPS_EDGE_MQTT_USERNAME"),
    ] = None,
    login: Annotated[
        str | None,
        typer.Option(
            help="The device's broker login: the JSON line `nps-edge device add` printed, "
            "in a file or `-` for stdin. Sets device id, site, username and password.",
            envvar="NPS_EDGE_LOGIN",
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
        typer.Option(help="Follow-up reason for scores 0-6 as CODE=LABEL; repeat up to 4 times."),
    ] = None,
    release_pub: Annotated[
        str | None,
        typer.Option(
            help="Release public key (base64, from `firmware keygen`): the device installs "
            "only updates it signed.",
            envvar="NPS_EDGE_RELEASE_PUB",
        ),
    ] = None,
    command_pub: Annotated[
        str | None,
        typer.Option(
            help="Command public key (base64, from `nps-edge fleet key`): the device obeys "
            "only commands it signed.",
            envvar="NPS_EDGE_COMMAND_PUB",
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
    resets the board so it starts with the new settings. Passwords are never
    options (every user sees a command line in ps): they come from --login,
    --config or the environment, NPS_EDGE_WIFI_PASSWORD and NPS_EDGE_MQTT_PASSWORD.
    """
    wifi_password = os.environ.get(prov.WIFI_PASSWORD_ENV) or None
    password = os.environ.get(prov.MQTT_PASSWORD_ENV) or None
    try:
        host, broker_port = prov.split_broker(broker) if broker else (None, None)
        ca_text = prov.read_ca(ca) if ca is not None else None
        reasons = prov.parse_reasons(reason) if reason else None
        device_login = prov.read_login(login, sys.stdin) if login is not None else None
        trust = prov.trust_keys(release_pub, command_pub)
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
        "broker.ca": ca_text,
        "broker.username": username,
        "broker.password": password,
        "prompt.text": prompt_text,
        "prompt.lang": language,
        "reasons": reasons,
        **trust,
    }
    if device_login is not None:
        try:
            settings = prov.merge_login(settings, device_login)
        except prov.ConfigInvalid as err:
            fail(f"config: {err}", 2)
    values, text = config_from(config, settings)
    typer.echo(json.dumps(prov.masked(values), indent=1, sort_keys=True))
    if prov.get_path(values, "broker.tls") and not prov.get_path(values, "broker.ca"):
        say("warning: TLS without --ca encrypts but does not check the broker's identity")
    if save is not None:
        save.touch(mode=0o600)
        save.chmod(0o600)  # before the passwords go in, also for an existing file
        save.write_text(text, encoding="utf-8")
    if check_only:
        typer.echo("config ok")
        return
    if port is None:
        fail("--port is required to write the config (or use --check-only)", 2)
    runner = runner_for(ctx, dry_run)
    try:
        say(f"writing config.json to {port}")
        install.write_config(runner, port, text)
        if not dry_run:
            say("reading it back")
            listing = install.read_listing(runner, port)
            if not install.config_on_device_matches(listing, text):
                fail("config.json on the device differs from what was written; retry")
            given = values.get("device_id")
            shown = given or listing.default_device_id() or "the board's default"
            typer.echo(f"device id: {shown}" + ("" if given else " (from the MAC)"))
        st.check(runner.run(st.reset_device(port)), "resetting the board")
    except (st.ToolError, ver.ListingError) as err:
        fail(str(err))
    say("done: the board restarts with the new config")


def verify(
    ctx: typer.Context,
    port: Port,
    bundle_dir: BundleDir = bundle.DEFAULT_BUNDLE,
    dry_run: DryRun = False,
) -> None:
    """Compare the board's files with a bundle's manifest by SHA-256.

    Prints ok, missing, different or shadowed (a stale .py that MicroPython would
    import instead of the bundle's .mpy) for every file; exits 1 on any mismatch.
    """
    manifest = load_manifest(bundle_dir)
    runner = runner_for(ctx, dry_run)
    if dry_run:
        st.check(runner.run(st.exec_on_device(port, ver.DEVICE_LISTING), capture=True), "dry run")
        return
    check_device(runner, port, manifest)
