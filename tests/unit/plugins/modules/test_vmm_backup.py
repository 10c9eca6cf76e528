# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_backup as a module: what it refuses before it runs vmctl (backups themselves:
tests/unit/plugins/module_utils/test_vm_backup.py and tests/integration/targets/playbook_backup_restore)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.openbsd.vmm.plugins.modules import vmm_backup
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', '/nonexistent')   # no vmctl: reaching it would fail the module otherwise
    (tmp_path / 'backups').mkdir()
    conf = tmp_path / 'vm.conf'
    conf.write_text('vm "web1" {\n\tdisk "%s"\n}\n' % (tmp_path / 'web1.qcow2'))
    return tmp_path


@pytest.mark.parametrize('args, message', [
    (dict(name='web1', keep=0), 'keep: must be at least 1 (got 0); leave it out to keep every backup'),
    (dict(name='web 1'), "name: a VM name may contain only letters, digits, \".\", \"_\" and \"-\" (got 'web 1')"),
    (dict(name='db1'), "name: no VM 'db1' is defined in %(conf)s (or the files it includes)"),
])
def test_refused_before_vmctl_runs(host, capsys, args, message):
    conf = str(host / 'vm.conf')
    result = run_main(vmm_backup, capsys, dest=str(host / 'backups'), vm_conf=conf, **args)
    assert result['failed'] is True and result['commands'] == []
    assert result['msg'] == message % dict(conf=conf)
    assert os.listdir(str(host / 'backups')) == []


def test_without_vmctl_the_run_fails_cleanly(host, capsys):
    result = run_main(vmm_backup, capsys, name='web1', dest=str(host / 'backups'), vm_conf=str(host / 'vm.conf'))
    assert result['failed'] is True and result['commands'] == []
    assert result['msg'].startswith('vmctl not found on PATH (/nonexistent)')
    assert os.listdir(str(host / 'backups')) == []
