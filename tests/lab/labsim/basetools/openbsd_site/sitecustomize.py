"""Loaded by tests/lab/bin/python3-openbsd: make this Python report an OpenBSD 7.8/amd64 host.

Ansible's modules pick their OpenBSD code paths from platform.system() (service -> rcctl,
ansible.posix.sysctl -> `sysctl name=value`, group -> groupadd); the commands they then run are
found on PATH, where the lab's stand-ins come first. Commands started with a
scrubbed environment (the service module starts daemons with only LANG/LC_*) still belong to the
same lab host, so they keep VMM_LAB_ROOT, as a real host's processes keep its filesystem."""

import os
import platform
import subprocess

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


_REAL_POPEN_INIT = subprocess.Popen.__init__


def _popen_init(self, *args, **kwargs):
    env = kwargs.get("env")
    if env is not None and "VMM_LAB_ROOT" in os.environ:
        keys = {k.decode() if isinstance(k, bytes) else k for k in env}
        if "VMM_LAB_ROOT" not in keys:
            env = dict(env)
            env["VMM_LAB_ROOT" if not any(isinstance(k, bytes) for k in env) else b"VMM_LAB_ROOT"] = (
                os.environ["VMM_LAB_ROOT"])
            kwargs["env"] = env
    _REAL_POPEN_INIT(self, *args, **kwargs)


subprocess.Popen.__init__ = _popen_init
