# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_disk as a module: results, check mode, failures (vmctl is never reached in these cases)."""

from __future__ import annotations

import os

from ansible_collections.openbsd.vmm.plugins.modules import vmm_disk
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_qcow2 import write_vmctl_qcow2

GIB = 1024 * 1024 * 1024


def run_module(capsys, monkeypatch, check_mode=False, **args):
    # No vmctl on PATH: any attempt to run it would fail the module.
    monkeypatch.setenv('PATH', '/nonexistent')
    return run_main(vmm_disk, capsys, check_mode=check_mode, **args)


def test_no_op_reports_the_virtual_size_not_the_file_length(tmp_path, capsys, monkeypatch):
    path = write_vmctl_qcow2(str(tmp_path / 'disk.qcow2'), 20 * GIB)
    result = run_module(capsys, monkeypatch, path=path, size='20G')
    assert result['changed'] is False and result.get('failed') is not True
    assert (result['size'], result['size_human'], result['format'], result['base']) == (20 * GIB, '20.0G', 'qcow2', None)
    assert result['commands'] == []
    assert os.path.getsize(path) == 4 * 65536  # the file itself stays small
    assert result['mode'] == '0600'  # file attributes are still reported


def test_check_mode_create_changes_nothing(tmp_path, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, check_mode=True, path=str(tmp_path / 'new.raw'), size='1G', _ansible_diff=True)
    assert result['changed'] is True and result['created'] is True
    assert result['commands'] == [] and result['size'] == GIB and result['format'] == 'raw'
    assert result['diff']['before'] == {'state': 'absent'}
    assert os.listdir(str(tmp_path)) == []


def test_bad_input_fails_naming_the_parameter(tmp_path, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, path=str(tmp_path / 'new.raw'), size='-1G')
    assert result['failed'] is True
    assert result['msg'] == "size: invalid size '-1G': a size cannot be negative"
    assert result['commands'] == []
    assert os.listdir(str(tmp_path)) == []


def test_a_change_without_vmctl_fails_cleanly(tmp_path, capsys, monkeypatch):
    result = run_module(capsys, monkeypatch, path=str(tmp_path / 'new.raw'), size='1G')
    assert result['failed'] is True
    assert 'vmctl not found on PATH' in result['msg']
    assert os.listdir(str(tmp_path)) == []


def test_absent_needs_no_vmctl(tmp_path, capsys, monkeypatch):
    path = write_vmctl_qcow2(str(tmp_path / 'old.qcow2'), GIB)
    result = run_module(capsys, monkeypatch, path=path, state='absent')
    assert result['changed'] is True and result['commands'] == []
    assert result['format'] is None and result['size'] is None
    assert not os.path.exists(path)


def test_a_no_op_run_removes_a_killed_runs_leftovers(tmp_path, capsys, monkeypatch):
    path = write_vmctl_qcow2(str(tmp_path / 'disk.qcow2'), GIB)
    leftover = tmp_path / '.disk.qcow2.vmm_disk-0badc0de.tmp'
    leftover.write_bytes(b'QFI\xfb half a copy')
    checked = run_module(capsys, monkeypatch, check_mode=True, path=path, size='1G')
    assert checked['changed'] is True and checked['removed_leftovers'] == [str(leftover)] and leftover.exists()
    result = run_module(capsys, monkeypatch, path=path, size='1G')
    assert result['changed'] is True and result['removed_leftovers'] == [str(leftover)]
    assert result['commands'] == [] and result['created'] is False
    assert sorted(os.listdir(str(tmp_path))) == ['disk.qcow2']
    again = run_module(capsys, monkeypatch, path=path, size='1G')
    assert again['changed'] is False and again['removed_leftovers'] == []


def test_a_second_run_on_a_busy_image_names_the_other_run(tmp_path, capsys, monkeypatch):
    from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image
    path = write_vmctl_qcow2(str(tmp_path / 'disk.qcow2'), GIB)
    with disk_image.run_lock(path, timeout=0):
        result = run_module(capsys, monkeypatch, path=path, state='absent', lock_timeout=0)
    assert result['failed'] is True
    assert result['msg'].startswith('%s is busy: another vmm_disk run (pid %d) holds its lock' % (path, os.getpid()))
    assert 'running VM' not in result['msg']
    assert os.path.exists(path)


def test_absent_refuses_a_disk_of_a_vm_in_vm_conf(tmp_path, capsys, monkeypatch):
    path = write_vmctl_qcow2(str(tmp_path / 'disk.qcow2'), GIB)
    vm_conf = tmp_path / 'vm.conf'
    vm_conf.write_text('vm "web1" {\n\tmemory 64M\n\tdisk "%s"\n}\n' % path)
    result = run_module(capsys, monkeypatch, path=path, state='absent', vm_conf=str(vm_conf))
    assert result['failed'] is True and result.get('changed') is not True
    assert 'is a disk of VM web1 (disk %s) in %s' % (path, vm_conf) in result['msg']
    assert os.path.exists(path)
    forced = run_module(capsys, monkeypatch, path=path, state='absent', vm_conf=str(vm_conf), force=True)
    assert forced['changed'] is True and not os.path.exists(path)
