"""Compare what is on a device with a bundle manifest.

A short MicroPython snippet, run on the device with `mpremote exec`, lists every file
with its size and SHA-256 (hashlib.sha256 exists on the ESP32 port) plus the bytecode
version the device loads; `compare` turns that listing and the manifest into one verdict
per file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from firmware.tools.bundle import Manifest

# Runs on the device: hashes code, JSON and text files, lists the rest by size (data files
# such as the outbox can be large and are not part of the bundle). Kept small: it is
# sent over the serial line on every verify.
DEVICE_LISTING = """\
import os,sys,hashlib,binascii
def h(p):
 d=hashlib.sha256();n=0
 f=open(p,'rb')
 while 1:
  b=f.read(1024)
  if not b:break
  d.update(b);n+=len(b)
 f.close()
 return n,binascii.hexlify(d.digest()).decode()
def w(d):
 for e in os.ilistdir(d or '.'):
  p=d+'/'+e[0] if d else e[0]
  if e[1]==0x4000:w(p)
  elif p.rsplit('.',1)[-1] in ('py','mpy','json','txt'):
   n,x=h(p);print('F',n,x,p)
  else:print('F',e[3] if len(e)>3 else -1,'-',p)
i=sys.implementation
print('I',getattr(i,'_mpy',0),'.'.join(str(v) for v in i.version[:3]))
try:
 import network
 print('M',binascii.hexlify(network.WLAN(network.STA_IF).config('mac')).decode())
except (ImportError,OSError):
 pass
w('')
print('END')
"""


class ListingError(Exception):
    """The device's answer was not a complete file listing."""


@dataclass(frozen=True)
class DeviceFile:
    path: str
    size: int
    sha256: str | None  # None for data files the snippet does not hash


@dataclass(frozen=True)
class Listing:
    files: dict[str, DeviceFile]
    mpy_version: int  # sys.implementation._mpy & 0xff: the .mpy format the device loads
    micropython: str
    mac: str | None = None  # Wi-Fi MAC as hex, where the port has Wi-Fi

    def default_device_id(self) -> str | None:
        """The contract's default id: `nps-` and the last six hex digits of the MAC."""
        return None if self.mac is None else f"nps-{self.mac[-6:]}"


def parse_listing(text: str) -> Listing:
    files: dict[str, DeviceFile] = {}
    info: tuple[int, str] | None = None
    mac = None
    complete = False
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith("F "):
            _, size, digest, path = line.split(" ", 3)
            files[path] = DeviceFile(path, int(size), None if digest == "-" else digest)
        elif line.startswith("I "):
            _, mpy, version = line.split(" ", 2)
            info = (int(mpy) & 0xFF, version)
        elif line.startswith("M "):
            mac = line[2:].strip().lower()
        elif line == "END":
            complete = True
    if info is None or not complete:
        tail = text.strip().splitlines()[-1:] or ["no output"]
        raise ListingError(f"the device did not answer with a full file listing: {tail[0]}")
    return Listing(files, info[0], info[1], mac)


OK, MISSING, DIFFERENT, SHADOWED, EXTRA = "ok", "missing", "different", "shadowed", "extra"
FAILURES = frozenset({MISSING, DIFFERENT, SHADOWED})


@dataclass(frozen=True)
class Check:
    path: str
    status: str
    detail: str = ""


def is_module(path: str) -> bool:
    return path.endswith((".py", ".mpy"))


def compare(manifest: Manifest, listing: Listing) -> list[Check]:
    """One check per manifest file, then the device's modules that should not be there."""
    checks = []
    for entry in manifest.files:
        found = listing.files.get(entry.path)
        if found is None:
            checks.append(Check(entry.path, MISSING, "not on the device"))
        elif (found.size, found.sha256) != (entry.size, entry.sha256):
            checks.append(
                Check(entry.path, DIFFERENT, f"device has {found.size} bytes, bundle {entry.size}")
            )
        else:
            checks.append(Check(entry.path, OK))
    expected = {entry.path for entry in manifest.files}
    for path in sorted(set(listing.files) - expected):
        if not is_module(path):
            continue
        shadows = str(PurePosixPath(path).with_suffix(".mpy"))
        if path.endswith(".py") and shadows in expected:
            # MicroPython imports X.py before X.mpy: a stale source file wins.
            checks.append(Check(path, SHADOWED, f"imported instead of {shadows}; remove it"))
        else:
            checks.append(Check(path, EXTRA, "not in the bundle"))
    return checks


_MPY = re.compile(r"mpy v(\d+)\.(\d+)")


def bytecode_problem(manifest: Manifest, listing: Listing) -> str | None:
    """Why the device cannot load this bundle's .mpy files, or None when it can."""
    match = _MPY.search(manifest.mpy_cross)
    if match is None or listing.mpy_version == 0:
        return None
    if int(match.group(1)) != listing.mpy_version:
        return (
            f"the bundle is .mpy v{match.group(1)} but MicroPython {listing.micropython} "
            f"on the device loads v{listing.mpy_version}: flash a matching MicroPython image"
        )
    return None
