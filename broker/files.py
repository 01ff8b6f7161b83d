"""Writing the broker's files so that only the broker can read them.

Mosquitto 2 started as root reads its config as root, then switches to the
`mosquitto` user before it opens anything else: password file, ACL, TLS files,
persistence folder (changelog of 2.0.0, "drop privileges as soon as the
configuration file has been read"). So when we run as root and that user exists,
what the broker reads is given to it; everything stays 0600 or 0700.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

BROKER_USER = "mosquitto"


@dataclass(frozen=True)
class Owner:
    """The user the broker runs as after dropping root."""

    name: str
    uid: int
    gid: int


def broker_owner(user: str = BROKER_USER) -> Owner | None:
    """The broker's user when we are root and it exists; None: files stay ours."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return Owner(user, entry.pw_uid, entry.pw_gid)


def write_private(path: Path, data: bytes, *, owner: Owner | None, mode: int = 0o600) -> None:
    """Replace path atomically (a broker reloading mid-write reads the old or the new file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits off
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
            out.flush()
            os.fsync(fd)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    os.replace(tmp, path)


def broker_dir(path: Path, *, owner: Owner | None) -> None:
    """A folder the broker can enter but not change: root:mosquitto 0750, else ours 0700."""
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, 0, owner.gid)
        path.chmod(0o750)
    else:
        path.chmod(0o700)


def data_dir(path: Path, *, owner: Owner | None) -> None:
    """The persistence folder: the broker writes its database there (0700, its own)."""
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    path.chmod(0o700)


def closed_parents(path: Path, owner: Owner) -> list[Path]:
    """The folders above path that owner cannot enter (the broker would not find its files)."""
    groups = {owner.gid} | {g.gr_gid for g in _groups_of(owner.name)}
    closed = []
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid == owner.uid:
            ok = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            ok = info.st_mode & stat.S_IXGRP
        else:
            ok = info.st_mode & stat.S_IXOTH
        if not ok:
            closed.append(parent)
    return closed


def _groups_of(user: str) -> list[grp.struct_group]:
    return [g for g in grp.getgrall() if user in g.gr_mem]
