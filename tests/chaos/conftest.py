"""Fixtures of the chaos suite: its settings, its network namespaces and the running system.

Everything made here is removed by a finalizer, also when the test fails: processes first,
then the namespaces and veth pairs, then the database (tests/conftest.py's postgres_url).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.sim.run import state_dir
from tests.broker.conftest import site_root  # noqa: F401  (fixture: a folder Mosquitto can read)
from tests.broker.site import needs_mosquitto
from tests.chaos import netns
from tests.chaos import schedule as sc
from tests.chaos.rig import Rig
from tests.conftest import host_network
from tests.firmware.conftest import firmware_code  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def chaos_settings() -> sc.Settings:
    try:
        return sc.settings_from()
    except sc.SettingsError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def network(tmp_path: Path, chaos_settings: sc.Settings) -> Iterator[netns.Network | None]:
    """The namespaces and pairs of the network cuts, or None (with a warning naming what is
    missing) when this machine cannot make them: the other faults still run."""
    wanted = sc.NETWORK_KINDS & set(chaos_settings.kinds)
    if not wanted:
        yield None
        return
    with host_network(changing=True):  # the browser tests' page loads are not in flight
        netns.sweep_stale()
        missing = netns.probe()
    if missing is None:
        try:
            net: netns.Network | None = netns.Network.create(sc.SITES, tmp_path / "netns")
        except netns.NetnsUnavailable as err:
            missing, net = str(err), None
    else:
        net = None
    if net is None:
        warnings.warn(
            f"chaos: skipping the faults {sorted(wanted)}: {missing}", UserWarning, stacklevel=1
        )
        yield None
        return
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def rig(
    chaos_settings: sc.Settings,
    network: netns.Network | None,
    postgres_url: str,
    site_root: Path,  # noqa: F811
    tmp_path: Path,
    firmware_code: Path,  # noqa: F811
    micropython_bin: str,
) -> Iterator[Rig]:
    """The system, built and running, devices answering; stopped at the end whatever happens."""
    needs_mosquitto()
    made = Rig(chaos_settings, tmp_path, site_root, postgres_url, network)
    with state_dir(None) as flash:
        try:
            made.build(firmware_code, micropython_bin, flash)
            yield made
        finally:
            made.close()
            for device in made.devices:  # the devices' consoles, kept with the other logs
                log = device.folder / "device.log"
                if log.exists():
                    shutil.copy(log, tmp_path / "devices" / f"{device.device}.log")
