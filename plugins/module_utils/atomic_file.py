# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Small files written whole: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile


def read_file(path, binary=False):
    """The content of ``path`` (text or bytes), or None if it does not exist."""
    try:
        with open(path, 'rb' if binary else 'r') as handle:
            return handle.read()
    except FileNotFoundError:
        pass
    return None


def write_atomic(path, data, mode, gid=None, uid=None):
    """Write ``data`` beside ``path`` and rename it into place (readers never see half a file)."""
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        if gid is not None or uid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data if isinstance(data, bytes) else data.encode('utf-8'))
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def file_state(path):
    """(content bytes, mode, gid) of ``path``, or (None, None, None) if it does not exist."""
    data = read_file(path, binary=True)
    if data is None:
        return None, None, None
    stat = os.stat(path)
    return data, stat.st_mode & 0o7777, stat.st_gid


def remove_file(path):
    """Remove ``path``; False if it was not there."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
