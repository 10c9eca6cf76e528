# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_disk_delta as a module: the three operations through main(), check mode, refusals (the blocks themselves:
tests/unit/plugins/module_utils/test_disk_delta.py)."""

from __future__ import annotations

import hashlib
import os
import random

from ansible_collections.openbsd.vmm.plugins.modules import vmm_disk_delta
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main

BLOCK = 4096


def files(tmp_path):
    old = random.Random(1).randbytes(8 * BLOCK)
    new = old[:2 * BLOCK] + b'\xff' * 10 + old[2 * BLOCK + 10:] + b'tail'
    (tmp_path / 'copy').write_bytes(old)
    (tmp_path / 'image').write_bytes(new)
    return old, new


def test_digest_delta_apply(tmp_path, capsys):
    old, new = files(tmp_path)
    digest = run_main(vmm_disk_delta, capsys, operation='digest', path=str(tmp_path / 'copy'), block_size=BLOCK)
    assert digest['changed'] is False and digest['size'] == len(old) and len(digest['digests']) == 8
    delta = run_main(vmm_disk_delta, capsys, operation='delta', path=str(tmp_path / 'image'), block_size=BLOCK,
                     digests=digest['digests'], delta=str(tmp_path / 'delta'))
    assert delta['changed'] is True and delta['blocks_changed'] == 2 and delta['blocks'] == 9
    assert delta['sha256'] == hashlib.sha256(new).hexdigest() and delta['bytes'] == os.path.getsize(str(tmp_path / 'delta'))
    applied = run_main(vmm_disk_delta, capsys, operation='apply', path=str(tmp_path / 'copy'), delta=str(tmp_path / 'delta'),
                       dest=str(tmp_path / 'dest'), sha256=delta['sha256'], mode='0600')
    assert applied['changed'] is True and applied['block_size'] == BLOCK and applied['bytes'] == delta['bytes']
    assert (tmp_path / 'dest').read_bytes() == new
    assert sorted(os.listdir(str(tmp_path))) == ['dest', 'image']


def test_check_mode_writes_nothing(tmp_path, capsys):
    old, new = files(tmp_path)
    digest = run_main(vmm_disk_delta, capsys, operation='digest', path=str(tmp_path / 'copy'), block_size=BLOCK, check_mode=True)
    delta = run_main(vmm_disk_delta, capsys, check_mode=True, operation='delta', path=str(tmp_path / 'image'), block_size=BLOCK,
                     digests=digest['digests'], delta=str(tmp_path / 'delta'))
    assert delta['changed'] is True and delta['blocks_changed'] == 2
    assert sorted(os.listdir(str(tmp_path))) == ['copy', 'image']
    run_main(vmm_disk_delta, capsys, operation='delta', path=str(tmp_path / 'image'), block_size=BLOCK,
             digests=digest['digests'], delta=str(tmp_path / 'delta'))
    applied = run_main(vmm_disk_delta, capsys, check_mode=True, operation='apply', path=str(tmp_path / 'copy'),
                       delta=str(tmp_path / 'delta'), dest=str(tmp_path / 'dest'), sha256=delta['sha256'])
    assert applied['changed'] is True and applied['blocks_changed'] == 2
    assert sorted(os.listdir(str(tmp_path))) == ['copy', 'delta', 'image'] and (tmp_path / 'copy').read_bytes() == old


def test_refusals_name_the_parameter(tmp_path, capsys):
    files(tmp_path)
    result = run_main(vmm_disk_delta, capsys, operation='digest', path=str(tmp_path / 'copy'), block_size=5000)
    assert result['failed'] is True and result['msg'] == 'block_size: must be a power of two from 4096 to 16777216 (got 5000)'
    result = run_main(vmm_disk_delta, capsys, operation='delta', path=str(tmp_path / 'image'), digests=['x'],
                      delta=str(tmp_path / 'delta'))
    assert result['failed'] is True and result['msg'] == "digests: item 0 must be 64 lower-case hex digits (a sha256), got 'x'"
    result = run_main(vmm_disk_delta, capsys, operation='apply', path=str(tmp_path / 'copy'), delta=str(tmp_path / 'missing'),
                      dest=str(tmp_path / 'dest'), sha256='0' * 64)
    assert result['failed'] is True and result['msg'] == 'delta: %s is not a regular file' % (tmp_path / 'missing')
    assert sorted(os.listdir(str(tmp_path))) == ['copy', 'image']
