# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Firmware update: fetch a signed release into a staging folder, switch, confirm or roll back.

Flow (docs/firmware.md, Updates): manifest.json and manifest.sig from the
release URL; sha256(manifest.json) must equal the command's manifest_sha256 and
the signature must be the release key's (config trust.release_pub). Then each
file in HTTP Range chunks appended to fw/stage/, so a power cut resumes from
what staging holds; each file's SHA-256 is checked against the manifest. The
staging folder is renamed to fw/<version>, and the pointer file fw.json (read by
main.py) is replaced with one rename: the switch is atomic. After the reboot,
the application confirms the new folder once healthy (fleet.py); without that
main.py rolls back by itself.

Progress lives in ota.json ({"release", "status"}); status is what the device
reports as `update`: null, staging, applied, rolled_back or refused:<reason>.
"""

import gc
import hashlib
import json
import os
import sys
import time
from binascii import a2b_base64, hexlify

from http_range import Refused, Retry, http_get, open_tcp
from micropython import const
from persist import read_json, write_json

STATE = "ota.json"
POINTER = "fw.json"
FOLDERS = "fw"
STAGE = "fw/stage"
_CHUNK = const(4096)  # bytes per Range request
_MANIFEST_MAX = const(16384)
_DIR = const(0x4000)  # stat mode bit of a folder
_STEP_BUDGET_MS = const(200)
_NO_MEMORY_TRIES = const(20)  # download work per loop turn: the prompt stays responsive


def sha256_file(path, buf):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    return hexlify(h.digest()).decode()


def file_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def is_dir(path):
    try:
        return os.stat(path)[0] & _DIR != 0
    except OSError:
        return False


def rmtree(path):
    if is_dir(path):
        for name in os.listdir(path):
            rmtree(path + "/" + name)
        os.rmdir(path)
    elif file_size(path) >= 0:
        os.remove(path)


def makedirs(path):
    built = ""
    for part in path.split("/"):
        built = built + "/" + part if built else part
        if not is_dir(built):
            os.mkdir(built)


def safe_path(path):
    """A manifest path that stays inside the staging folder."""
    if not isinstance(path, str) or not path or path[0] == "/" or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


class Updater:
    """One release at a time, stepped from the application loop.

    folder: the folder this firmware runs from ("" = the factory code at the
    root); release_pub: base64 release key; verify(pub, msg, sig) checks an
    Ed25519 signature; opener(host, port) gives a connected socket.
    """

    def __init__(
        self, folder, release_pub, max_boots, verify, *, opener=open_tcp, log=print, counts=None
    ):
        self.folder = folder
        self.release_pub = release_pub
        self.max_boots = max_boots
        self.verify = verify
        self.opener = opener
        self.log = log
        self.buf = bytearray(512)  # the one read buffer of every download and hash
        self.state = read_json(STATE, None) or {}
        self.manifest = None
        self.done = {}  # staged paths whose hash checked
        self.errors = {} if counts is None else counts  # telemetry errors: ota_fetch
        pointer = read_json(POINTER, None) or {}
        pending = bool(pointer.get("pending"))
        release = self.state.get("release") or {}
        target = FOLDERS + "/" + release.get("version", "")
        status = self.state.get("status")
        if status in ("staging", "switched") and folder == target and pending:
            self.set_status("switched")  # first boot of the new folder: confirm() decides
        elif status == "switched":
            # main.py went back to the previous folder: the new one never confirmed.
            self.set_status("rolled_back")
            self.log("ota: %s did not confirm: rolled back" % release.get("version"))

    @property
    def status(self):
        s = self.state.get("status")
        return "staging" if s == "switched" else s

    def count(self, name):
        self.errors[name] = self.errors.get(name, 0) + 1

    def set_status(self, status):
        self.state["status"] = status
        write_json(STATE, self.state)

    def start(self, release):
        """An accepted update command: begin (or restart) staging this release."""
        if self.release_pub is None:
            self.state = {"release": release}
            self.set_status("refused:no_release_key")
            return
        if self.state.get("release") != release:
            rmtree(STAGE)  # another release's partial files
        self.state = {"release": release}
        self.manifest = None
        self.done = {}
        self.set_status("staging")

    @property
    def busy(self):
        return self.state.get("status") == "staging"

    def step(self):
        """One unit of work (a chunk, a hash, the switch). Returns True once switched."""
        if not self.busy:
            return False
        try:
            if self.manifest is None:
                self.manifest = self.fetch_manifest()
                return False
            for entry in self.manifest["files"]:
                path = entry["path"]
                if path in self.done:
                    continue
                self.stage_file(path, entry["size"], entry["sha256"])
                return False
            self.switch()
            return True
        except Retry as err:
            self.count("ota_fetch")
            self.log("ota: %s (retrying)" % err)
        except MemoryError:
            # Not now (the heap is busy): the prompt keeps working, a later turn retries.
            self.manifest = None
            self.count("ota_no_memory")
            gc.collect()
            if self.errors["ota_no_memory"] >= _NO_MEMORY_TRIES:
                self.log("ota: refused: no memory")
                rmtree(STAGE)
                self.set_status("refused:no_memory")
        except Refused as err:
            self.log("ota: refused: %s" % err.args[0])
            self.manifest = None
            rmtree(STAGE)
            self.set_status("refused:" + err.args[0])
        return False

    def url(self, path):
        return self.state["release"]["url"] + path

    def fetch_whole(self, path):
        parts = []
        size = [0]

        def keep(chunk):
            size[0] += len(chunk)
            if size[0] > _MANIFEST_MAX:
                raise Refused("manifest_size")
            parts.append(bytes(chunk))

        http_get(self.opener, self.url(path), 0, None, keep, self.buf)
        return b"".join(parts)

    def fetch_to_file(self, path, local):
        """GET a whole release file into `local` (bounded); returns its SHA-256 hex."""
        h = hashlib.sha256()
        size = [0]
        with open(local, "wb") as f:

            def keep(chunk):
                size[0] += len(chunk)
                if size[0] > _MANIFEST_MAX:
                    raise Refused("manifest_size")
                h.update(chunk)
                f.write(chunk)

            http_get(self.opener, self.url(path), 0, None, keep, self.buf)
        return hexlify(h.digest()).decode()

    def fetch_manifest(self):
        release = self.state["release"]
        staged = STAGE + "/manifest.json"
        text = None
        try:
            with open(staged, "rb") as f:
                text = f.read()
        except OSError:
            pass
        if (
            text is None
            or hexlify(hashlib.sha256(text).digest()).decode() != release["manifest_sha256"]
        ):
            text = None
            self.prune()
            makedirs(STAGE)
            part = staged + ".part"  # becomes manifest.json only once its signature checked
            if self.fetch_to_file("manifest.json", part) != release["manifest_sha256"]:
                raise Refused("manifest_hash")
            sig = self.fetch_whole("manifest.sig").strip()
            try:
                sig = a2b_base64(sig)
                key = a2b_base64(self.release_pub)
            except ValueError:
                raise Refused("signature") from None
            with open(part, "rb") as f:
                text = f.read()  # one piece, for the signature
            if not self.verify(key, text, sig):
                raise Refused("signature")
            os.rename(part, staged)
        try:
            manifest = json.loads(text)
            files = manifest["files"]
            version = manifest["firmware"]
        except (ValueError, KeyError, TypeError):
            raise Refused("manifest") from None
        if version != release["version"]:
            raise Refused("version")
        for entry in files:
            if not safe_path(entry.get("path")) or entry["path"] == "manifest.json":
                raise Refused("manifest")
        return {"files": files}

    def prune(self):
        """Remove old folders (not the one running, not staging) to make room on flash."""
        if not is_dir(FOLDERS):
            return
        for name in os.listdir(FOLDERS):
            path = FOLDERS + "/" + name
            if path not in (self.folder, STAGE):
                rmtree(path)

    def stage_file(self, path, size, digest):
        target = STAGE + "/" + path
        have = file_size(target)
        if have > size:
            os.remove(target)
            have = -1
        if have < size:
            if have < 0:
                slash = target.rfind("/")
                makedirs(target[:slash])
                open(target, "wb").close()
                have = 0
            if have < size:
                end = min(have + _CHUNK, size) - 1
                with open(target, "ab") as f:
                    status, total = http_get(
                        self.opener, self.url(path), have, end, f.write, self.buf
                    )
                if total is not None and total < size:
                    raise Refused("truncated")
                return
        if sha256_file(target, self.buf) != digest:
            os.remove(target)
            raise Refused("hash")
        self.done[path] = True

    def switch(self):
        """Staging complete: rename it to fw/<version>, then replace the pointer (atomic)."""
        version = self.state["release"]["version"]
        target = FOLDERS + "/" + version
        if target == self.folder:
            raise Refused("running")
        rmtree(target)
        os.rename(STAGE, target)
        write_json(
            POINTER,
            {
                "active": target,
                "previous": self.folder,
                "pending": True,
                "boots": 0,
                "max": self.max_boots,
            },
        )
        self.set_status("switched")  # after the pointer: __init__ copes with a cut in between
        self.log("ota: switched to %s, rebooting" % version)


def verify(key, message, signature):
    """Ed25519 (ed25519.py), loaded for one check and dropped."""
    import ed25519

    ok = ed25519.verify(key, message, signature)
    del ed25519
    del sys.modules["ed25519"]
    return ok


# fleet.py's hooks (fleet: the app's start.Remote state): this module is loaded only
# while an update runs or a boot is watched.


def updater_for(fleet):
    return Updater(
        fleet.folder,
        fleet.trust["release_pub"],
        fleet.update_cfg["max_failed_boots"],
        verify,
        opener=getattr(fleet.board, "open_tcp", open_tcp),
        log=fleet.board.log,
        counts=fleet.counts,
    )


def resume(fleet):
    """At boot: judge a switch that just happened, or go on staging after a power cut."""
    fleet.resume = False
    updater = updater_for(fleet)
    fleet.status["update"] = updater.status
    if updater.busy:
        fleet.updater = updater


def start(fleet, release):
    """An accepted update command."""
    updater = fleet.updater or updater_for(fleet)
    updater.start(release)
    fleet.status["update"] = updater.status
    fleet.updater = updater if updater.busy else None


def _reboot(fleet):
    fleet.app.outbox.close()
    fleet.board.reset()


def step(fleet, up, idle):
    """Each loop turn while watched or updating: confirm health, download in slices."""
    if fleet.resume:
        resume(fleet)
    pointer = fleet.watch
    if pointer is not None:
        if up and fleet.turns > 1:
            confirm(fleet)  # on the broker with the prompt loop running: healthy
        elif fleet.app.clock.ms() >= fleet.update_cfg["confirm_s"] * 1000:
            if pointer.get("pending"):
                fleet.board.log("ota: no broker within confirm_s: reboot to roll back")
                _reboot(fleet)
            confirm(fleet)  # a confirmed firmware that ran this long without a crash
    updater = fleet.updater
    if updater is not None and idle:
        t0 = time.ticks_ms()
        while updater.busy and time.ticks_diff(time.ticks_ms(), t0) < _STEP_BUDGET_MS:
            if updater.step():
                _reboot(fleet)
        if not updater.busy:
            fleet.status["update"] = updater.status
            fleet.updater = None
            fleet.app.on_up()  # refused: say so


def confirm(fleet):
    """This boot is healthy: a pending firmware becomes the good one, the counter clears."""
    pointer = read_json(POINTER, None)
    if isinstance(pointer, dict):
        pointer["pending"] = False
        pointer["boots"] = 0
        write_json(POINTER, pointer)
    if fleet.watch.get("pending"):
        state = read_json(STATE, None) or {}
        state["status"] = fleet.status["update"] = "applied"
        write_json(STATE, state)
        fleet.board.log("ota: firmware confirmed")
        fleet.app.on_up()
    fleet.watch = None
