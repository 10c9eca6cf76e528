# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The manifest beside an installed disk (``<disk>.autoinstall.json``, mode 0600).

It records which inputs (by SHA-256) were installed onto which file (path,
device, inode), so the same inputs on the same disk are not installed again
and a replaced disk is. Where it lives and when it matches is in
installer.py (shared with the action plugin).
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.openbsd.vmm.plugins.module_utils.atomic_file import read_file, write_atomic
from ansible_collections.openbsd.vmm.plugins.module_utils.installer import MANIFEST_VERSION, manifest_path


def disk_identity(disk):
    """What identifies the disk file for the manifest (None if it does not exist)."""
    try:
        stat = os.stat(disk)
    except FileNotFoundError:
        return None
    return dict(path=os.path.realpath(disk), device=stat.st_dev, inode=stat.st_ino)


def read_manifest(disk):
    """The manifest beside ``disk`` as a dict, or None (missing or unreadable)."""
    text = read_file(manifest_path(disk))
    if text is None:
        return None
    try:
        manifest = json.loads(text)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(disk, inputs_sha256, hostname, mac, duration, password_hashes):
    """Record a completed install of ``inputs_sha256`` onto ``disk``."""
    manifest = dict(version=MANIFEST_VERSION, disk=disk_identity(disk), inputs_sha256=inputs_sha256,
                    hostname=hostname, mac=mac, installed_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                    duration=duration, password_hashes=password_hashes or {})
    write_atomic(manifest_path(disk), json.dumps(manifest, indent=2, sort_keys=True) + '\n', 0o600)
