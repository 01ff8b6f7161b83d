"""Small state files on flash, replaced atomically (write a temporary file, then rename)."""

import json
import os


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default
    except ValueError:
        # A torn write cannot happen with rename, but a hand-edited file can be bad.
        return default


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj))
    os.rename(tmp, path)


def ensure_dir(path):
    built = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        built = built + part if built in ("", "/") else built + "/" + part
        try:
            os.mkdir(built)
        except OSError:
            pass


def listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
