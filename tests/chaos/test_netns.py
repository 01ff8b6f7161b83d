"""The chaos suite's network cuts change no address of the host: Chromium aborts the page
loads of the browser tests running beside it on any such change (net::ERR_NETWORK_CHANGED).
Needs root and `ip`, like the cuts themselves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chaos import netns
from tests.conftest import host_network

pytestmark = [pytest.mark.chaos]


def host_addresses() -> set[str]:
    """Every address of the host namespace, with its interface."""
    shown = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True)
    return {" ".join(line.split()[1:4]) for line in shown.stdout.splitlines()}


def test_cutting_and_restoring_every_link_leaves_the_host_addresses_as_they_were(
    tmp_path: Path,
) -> None:
    missing = netns.probe()
    if missing is not None:
        pytest.skip(f"network namespaces cannot be made here: {missing}")
    net = netns.Network.create(1, tmp_path / "netns")
    try:
        # Held steady while compared: a chaos run in another worker makes and removes
        # its own pairs (taking the lock alone), which would show here as a change.
        with host_network(changing=False):
            made = host_addresses()
            assert {f"{net.anchor} inet {net.broker_ip}/32"} <= made  # the pairs are there
            for link in net.links.values():
                link.cut()
                assert host_addresses() == made, link.host
                link.restore()
                assert host_addresses() == made, link.host
    finally:
        net.close()


def test_without_root_or_ip_the_probe_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cuts are skipped with a warning that says why (the other faults still run)."""
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    assert netns.probe() == "the `ip` command (iproute2) is not installed"
    monkeypatch.setattr(netns.shutil, "which", lambda name: "/usr/sbin/ip")
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    missing = netns.probe()
    assert missing is not None and "need root (CAP_NET_ADMIN)" in missing and "uid 1000" in missing
