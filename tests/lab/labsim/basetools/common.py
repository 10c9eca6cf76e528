"""Shared plumbing of the base-tool stand-ins: where the lab lives, state files, output."""

import contextlib
import fcntl
import json
import os
import sys
import tempfile


def lab_root():
    root = os.environ.get("VMM_LAB_ROOT")
    if not root:
        sys.stderr.write("VMM_LAB_ROOT is not set: the lab's base tools keep their state there\n")
        sys.exit(1)
    return root


def lab_path(*parts):
    """A path under the lab root; absolute host paths such as /etc/rc.conf.local map into it."""
    return os.path.join(lab_root(), *[p.lstrip("/") for p in parts])


def state_path(name):
    return lab_path("lab", "basetools", name)


@contextlib.contextmanager
def state_lock(name):
    """Held around a read-change-write of state file ``name`` (flock on <name>.lock beside it)."""
    path = state_path(name) + ".lock"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def load_state(name, default):
    try:
        with open(state_path(name), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def save_state(name, value):
    atomic_write(state_path(name), json.dumps(value, indent=1, sort_keys=True) + "\n")


def atomic_write(path, text, mode=None):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def err(message):
    sys.stderr.write(message + "\n")


def out(message):
    sys.stdout.write(message + "\n")


def read_text(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read()


def logical_lines(text):
    """(line number, text) pairs with backslash-newline continuations joined, as pf and httpd lexers do."""
    result = []
    pending, start = "", None
    for number, raw in enumerate(text.split("\n"), 1):
        if start is None:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        result.append((start, pending + raw))
        pending, start = "", None
    return result


def strip_comment(line):
    """Drop a `#` comment that is not inside double quotes."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:index]
    return line
