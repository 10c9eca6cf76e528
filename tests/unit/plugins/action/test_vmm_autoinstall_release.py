# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an installed release relies on: passlib 1.7 with bcrypt >= 4.1 fails with a clear error naming the cause
before anything is hashed or sent; the internal payload option is neither documented nor settable."""

from __future__ import annotations

import importlib.metadata
import json

import passlib
import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.openbsd.vmm.plugins.action import vmm_autoinstall as action
from ansible_collections.openbsd.vmm.plugins.module_utils.autoinstall_spec import module_argument_spec
from ansible_collections.openbsd.vmm.plugins.module_utils.secret_seal import seal
from ansible_collections.openbsd.vmm.tests.unit.plugins.action.test_vmm_autoinstall import fake_target, make_action


@pytest.mark.parametrize('passlib_version, bcrypt_version', [
    ('1.7.4', '4.1.0'), ('1.7.4', '4.1.3'), ('1.7.4', '5.0.0'), ('1.7.2', '4.2.1'), ('1.7.4', '5.0.0rc1'),
])
def test_passlib_17_with_bcrypt_41_or_later_names_the_cause(passlib_version, bcrypt_version):
    problem = action.passlib_problem(passlib_version, bcrypt_version)
    assert 'passlib %s does not support bcrypt %s' % (passlib_version, bcrypt_version) in problem
    assert 'install libpass' in problem


@pytest.mark.parametrize('passlib_version, bcrypt_version', [
    ('1.7.4', '4.0.1'), ('1.7.4', '3.2.2'),  # passlib 1.7 still works with the bcrypt of its time
    ('1.9.4', '5.0.0'), ('1.9.0', '4.1.0'),  # libpass
    (None, '5.0.0'), ('1.7.4', None), ('unknown', '5.0.0'),  # nothing known: no guess
])
def test_working_or_unknown_combinations_are_not_refused(passlib_version, bcrypt_version):
    assert action.passlib_problem(passlib_version, bcrypt_version) is None


def test_the_versions_come_from_the_imported_passlib_and_the_installed_bcrypt():
    assert action.installed_versions() == (passlib.__version__, importlib.metadata.version('bcrypt'))


def test_hashing_with_passlib_17_and_bcrypt_5_fails_naming_libpass(monkeypatch):
    monkeypatch.setattr(action.passlib, '__version__', '1.7.4')
    monkeypatch.setattr(importlib.metadata, 'version', lambda name: {'bcrypt': '5.0.0'}[name])
    with pytest.raises(action.AutoinstallError, match=r'passlib 1\.7\.4 does not support bcrypt 5\.0\.0.*install libpass'):
        action.hash_password('ninechars', 10)
    # A hash already given needs no hashing: no error.
    given = '$2b$10$' + 'a' * 53
    assert action.hash_password(given, 10) == given


def test_the_task_fails_before_the_target_is_touched(monkeypatch):
    monkeypatch.setattr(action.passlib, '__version__', '1.7.4')
    monkeypatch.setattr(importlib.metadata, 'version', lambda name: {'bcrypt': '4.1.2'}[name])
    remote = fake_target(monkeypatch, lambda args, payload: pytest.fail('the module must not run'))
    plugin = make_action(dict(state='published', name='web1', mac='fe:e1:bb:d1:00:01', root_password='ninechars',
                              install_server='192.0.2.1'))
    with pytest.raises(AnsibleActionFail, match=r'vmm_autoinstall: passlib 1\.7\.4 does not support bcrypt 4\.1\.2.*install libpass'):
        plugin.run(task_vars={})
    assert remote['args'] == [] and remote['files'] == {}


def test_payload_is_passed_to_the_module_outside_its_spec(monkeypatch):
    assert 'payload' not in module_argument_spec()
    calls = []

    def module(args, payload):
        if payload['phase'] == 'inspect':
            return dict(changed=False, existing_sealed=seal(payload['seal_key'], json.dumps({})))
        return dict(changed=True)

    remote = fake_target(monkeypatch, module)
    faked_execute = action.ActionModule._execute_module

    def execute(self, **kwargs):
        calls.append(kwargs.get('ignore_unknown_opts'))
        return faked_execute(self, **kwargs)

    monkeypatch.setattr(action.ActionModule, '_execute_module', execute)
    plugin = make_action(dict(state='published', name='web1', mac='fe:e1:bb:d1:00:01', root_password='ninechars',
                              install_server='192.0.2.1'))
    plugin.run(task_vars={})
    assert calls == [True, True]
    assert all('payload' in args for args in remote['args'])


def test_a_task_cannot_set_payload(monkeypatch):
    fake_target(monkeypatch, lambda args, payload: pytest.fail('the module must not run'))
    plugin = make_action(dict(state='published', name='web1', mac='fe:e1:bb:d1:00:01', root_password='ninechars',
                              install_server='192.0.2.1', payload='/tmp/mine.json'))
    with pytest.raises(AnsibleActionFail, match='payload'):
        plugin.run(task_vars={})
