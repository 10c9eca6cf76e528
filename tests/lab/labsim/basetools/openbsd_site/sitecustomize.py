"""Loaded by tests/lab/bin/python3-openbsd: make this Python report an OpenBSD 7.8/amd64 host.

Ansible's modules pick their OpenBSD code paths from platform.system() (service -> rcctl,
ansible.posix.sysctl -> `sysctl name=value`, group -> groupadd); the commands they then run are
found on PATH, where the lab's stand-ins come first. Nothing else about Python changes."""

import os
import platform

_REAL_UNAME = os.uname()
_OPENBSD_UNAME = os.uname_result(("OpenBSD", _REAL_UNAME.nodename, "7.8", "GENERIC.MP#0", "amd64"))


def _uname():
    return _OPENBSD_UNAME


def _system():
    return "OpenBSD"


def _release():
    return "7.8"


os.uname = _uname
platform.system = _system
platform.release = _release
platform._uname_cache = None  # pylint: disable=protected-access
