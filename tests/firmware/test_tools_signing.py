"""`firmware keygen`, `firmware build --sign-key` and `firmware provision --release-pub
--command-pub`: keys made 0600, signatures the device's own verifier accepts, bad input
refused with a clear line and exit 2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from firmware.tools import bundle, signing
from nps_edge.cli import app

FIELD = ["--site", "s1", "--wifi-ssid", "shop", "--broker", "10.0.0.2:1883"]


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["firmware", *args])


def test_keygen_writes_a_private_file_and_prints_the_public_key(tmp_path: Path) -> None:
    out = tmp_path / "release.key"
    result = run("keygen", "--out", str(out))
    assert result.exit_code == 0, result.output
    public = result.stdout.strip()
    assert len(base64.b64decode(public)) == 32
    assert out.stat().st_mode & 0o777 == 0o600
    assert signing.public_b64(signing.load_key(out)) == public
    again = run("keygen", "--out", str(out))  # never replaces a key
    assert again.exit_code == 2 and "never overwritten" in again.output


def test_a_key_file_others_can_read_or_a_bad_one_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "release.key"
    signing.keygen(out)
    out.chmod(0o644)
    with pytest.raises(signing.SigningError, match="chmod 600"):
        signing.load_key(out)
    out.chmod(0o600)
    out.write_text("not a key\n")
    with pytest.raises(signing.SigningError, match="not a key"):
        signing.load_key(out)


@pytest.mark.slow
def test_build_sign_key_signs_what_the_device_verifies(
    tmp_path: Path, micropython_bin: str, firmware_code: Path
) -> None:
    key_file = tmp_path / "release.key"
    public = signing.public_b64(signing.keygen(key_file))
    out = tmp_path / "bundle"
    result = run("build", "--out", str(out), "--sign-key", str(key_file))
    assert result.exit_code == 0, result.output
    assert "signed:" in result.stdout and public in result.stdout
    assert signing.verify_bundle(out, public)
    assert not signing.verify_bundle(out, signing.public_b64(signing.keygen(tmp_path / "k2")))
    # The device's verifier (firmware/device/ed25519.py) agrees, inside micropython.
    sig = (out / signing.SIGNATURE).read_text().strip()
    script = tmp_path / "check.py"
    script.write_text(
        "from binascii import a2b_base64\nimport ed25519\n"
        f"m = open({str(out / bundle.MANIFEST)!r}, 'rb').read()\n"
        f"print(ed25519.verify(a2b_base64({public!r}), m, a2b_base64({sig!r})))\n"
        f"print(ed25519.verify(a2b_base64({public!r}), m + b' ', a2b_base64({sig!r})))\n"
    )
    done = subprocess.run(
        [micropython_bin, str(script)],
        env=dict(os.environ, MICROPYPATH=f"{firmware_code}:.frozen"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["True", "False"], done.stdout + done.stderr


def test_build_refuses_an_unusable_key_before_building(tmp_path: Path) -> None:
    result = run("build", "--out", str(tmp_path / "b"), "--sign-key", str(tmp_path / "none"))
    assert result.exit_code == 2 and "cannot read the signing key" in result.output
    assert not (tmp_path / "b").exists()


def test_provision_writes_trust_keys_and_refuses_bad_ones(tmp_path: Path) -> None:
    public = signing.public_b64(signing.keygen(tmp_path / "release.key"))
    save = tmp_path / "config.json"
    result = run(
        "provision",
        *FIELD,
        "--release-pub",
        public,
        "--command-pub",
        public,
        "--check-only",
        "--save",
        str(save),
    )
    assert result.exit_code == 0, result.output
    trust = json.loads(save.read_text())["trust"]
    assert trust == {"release_pub": public, "command_pub": public}
    for bad in ("abc", base64.b64encode(b"x" * 31).decode(), "@" * 44):
        result = run("provision", *FIELD, "--command-pub", bad, "--check-only")
        assert result.exit_code == 2, bad
        assert "--command-pub must be base64 of 32 bytes" in result.output
