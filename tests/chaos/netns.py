"""Network cuts for the chaos suite: network namespaces joined to the host by veth pairs.

Each site's devices run in one namespace and its gateway in another; the broker and the
server stay on the host, listening on two addresses of an `anchor` veth pair that no fault
touches. A gateway reaches the broker and the server over two different veth pairs, so
either path can be cut alone. A cut sets the host end of a pair down: packets vanish
(no reset, as when an uplink fails), the namespace keeps its routes, and setting the end
up again restores the path with every connection that survived the wait.

The host ends have no IPv6 link-local address (`addrgenmode none`), so a cut changes no
address of the host: Chromium, in the browser tests running beside this suite, aborts its
page loads on any such change. Making and removing the pairs does change addresses, so it
is done under `tests.conftest.host_network(changing=True)`.

    host: broker(s) on BROKER_IP, server on SERVER_IP (both on the anchor pair)
      <- dev<i>  -- devices of site i  (route to BROKER_IP)
      <- brk<i>  -- gateway of site i  (route to BROKER_IP)
      <- srv<i>  -- gateway of site i  (route to SERVER_IP)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import host_network


class NetnsUnavailable(RuntimeError):
    """This machine cannot make namespaces and veth pairs; the message names what is missing."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    """`ip ARGS`, its failure returned (for probing and cleaning up)."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _checked(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NetnsUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    return done


def probe() -> str | None:
    """None when namespaces and veth pairs can be made here, else what is missing."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return f"network namespaces need root (CAP_NET_ADMIN); this runs as uid {os.geteuid()}"
    name = f"ncp-{os.getpid()}"
    done = _ip("netns", "add", name)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    try:
        made = _ip("link", "add", f"ncp{os.getpid() % 100000}", "type", "veth", "peer", "name",
                   "eth0", "netns", name)  # fmt: skip
        if made.returncode != 0:
            return f"`ip link add ... type veth` failed: {made.stderr.strip()}"
    finally:
        _ip("netns", "del", name)  # takes its veth pair with it
    return None


@dataclass
class Link:
    """One veth pair: `host` end in the host namespace, `eth<n>` inside `ns`."""

    host: str
    ns: str
    cut_now: bool = False

    def cut(self) -> None:
        _checked(["ip", "link", "set", self.host, "down"])
        self.cut_now = True

    def restore(self) -> None:
        _checked(["ip", "link", "set", self.host, "up"])
        self.cut_now = False


@dataclass
class Network:
    """The namespaces, pairs and addresses of one chaos run; `close()` removes them all."""

    tag: str  # short and unique per run: interface names hold at most 15 characters
    octet: int  # the run's 10.<octet>.0.0/16
    namespaces: list[str] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)
    anchor: str | None = None
    wrappers: Path | None = None

    @property
    def broker_ip(self) -> str:
        return f"10.{self.octet}.250.1"

    @property
    def server_ip(self) -> str:
        return f"10.{self.octet}.251.1"

    @classmethod
    def create(cls, sites: int, wrappers: Path) -> Network:
        """Namespaces `dev<i>` and `gw<i>` for each site, wired as the module docstring says."""
        pid = os.getpid()
        net = cls(tag=f"{pid % 65536:04x}", octet=20 + pid % 200, wrappers=wrappers)
        with host_network(changing=True):
            try:
                net._build(sites)
            except NetnsUnavailable:
                net._remove()
                raise
        return net

    def _build(self, sites: int) -> None:
        self.anchor = f"nce{self.tag}a"
        _ip("link", "del", self.anchor)  # left by an earlier run of a process with our pid
        _checked(["ip", "link", "add", self.anchor, "type", "veth", "peer", "name",
                  f"nce{self.tag}z"])  # fmt: skip
        for end in (self.anchor, f"nce{self.tag}z"):
            _checked(["ip", "link", "set", end, "addrgenmode", "none"])
        for ip in (self.broker_ip, self.server_ip):
            _checked(["ip", "addr", "add", f"{ip}/32", "dev", self.anchor])
        for end in (self.anchor, f"nce{self.tag}z"):
            _checked(["ip", "link", "set", end, "up"])
        for i in range(sites):
            devices = self._namespace(f"dev{i}")
            self._pair(f"dev{i}", devices, 0, 10 * i + 1, self.broker_ip)
            gateway = self._namespace(f"gw{i}")
            self._pair(f"brk{i}", gateway, 0, 10 * i + 2, self.broker_ip)
            self._pair(f"srv{i}", gateway, 1, 10 * i + 3, self.server_ip)

    def ns_name(self, role: str) -> str:
        return f"nce-{os.getpid()}-{role}"

    def _namespace(self, role: str) -> str:
        name = self.ns_name(role)
        _checked(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _checked(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def _pair(self, role: str, ns: str, index: int, subnet: int, target: str) -> None:
        host, inner = f"nce{self.tag}{role}", f"eth{index}"
        _checked(["ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns])
        _checked(["ip", "link", "set", host, "addrgenmode", "none"])
        _checked(["ip", "addr", "add", f"10.{self.octet}.{subnet}.1/24", "dev", host])
        _checked(["ip", "link", "set", host, "up"])
        _checked(["ip", "-n", ns, "addr", "add", f"10.{self.octet}.{subnet}.2/24", "dev", inner])
        _checked(["ip", "-n", ns, "link", "set", inner, "up"])
        _checked(["ip", "-n", ns, "route", "add", f"{target}/32", "via",
                  f"10.{self.octet}.{subnet}.1"])  # fmt: skip
        self.links[role] = Link(host, ns)

    def prefix(self, role: str) -> tuple[str, ...]:
        """The command prefix that runs a program inside namespace `role`."""
        return ("ip", "netns", "exec", self.ns_name(role))

    def wrapper(self, role: str, program: str) -> str:
        """A script that runs `program` inside namespace `role` (same pid: both exec)."""
        assert self.wrappers is not None
        self.wrappers.mkdir(parents=True, exist_ok=True)
        path = self.wrappers / f"{role}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec {" ".join(self.prefix(role))} {program} "$@"\n')
        path.chmod(0o755)
        return str(path)

    def close(self) -> None:
        """Remove everything made (idempotent): a namespace takes its pairs with it."""
        with host_network(changing=True):
            self._remove()

    def _remove(self) -> None:
        for name in self.namespaces:
            _ip("netns", "del", name)
        self.namespaces.clear()
        if self.anchor is not None:
            _ip("link", "del", self.anchor)
            self.anchor = None


def sweep_stale() -> list[str]:
    """Remove namespaces left by chaos runs whose process is gone (a SIGKILLed pytest)."""
    done = _ip("netns", "list")
    removed = []
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "nce" and parts[1].isdigit():
            if not Path(f"/proc/{parts[1]}").exists():
                _ip("netns", "del", name)
                removed.append(name)
    return removed
