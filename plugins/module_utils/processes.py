# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Whether a process runs: for the records and locks that name the process holding them (vmm_autoinstall's
publication records on the host, the controller's run lock)."""

from __future__ import annotations

import os


def process_alive(pid):
    try:
        os.kill(pid, 0)     # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                # it exists, as another user's process
    return True
