# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_guest_firstboot as a module: check mode on this machine changes nothing, bad input names the parameter."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.openbsd.vmm.plugins.modules import vmm_guest_firstboot
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.module_run import run_main

HASH = '$2b$10$' + 'a' * 53


def run_module(capsys, check_mode=False, **args):
    return run_main(vmm_guest_firstboot, capsys, check_mode=check_mode, **args)


def test_check_mode_reports_the_new_name_and_writes_nothing(capsys):
    if os.path.exists('/etc/myname'):
        pytest.skip('this machine has an /etc/myname')
    result = run_module(capsys, check_mode=True, hostname='vmm-unit-test.example.org')
    assert result['changed'] is True
    assert result['changes'] == ['write /etc/myname', 'hostname vmm-unit-test.example.org']
    assert result['created_users'] == []
    assert not os.path.exists('/etc/myname')


def test_nothing_asked_is_nothing_changed(capsys):
    result = run_module(capsys)
    assert (result['changed'], result['changes'], result['created_users']) == (False, [], [])


def test_bad_input_fails_naming_every_parameter_and_never_shows_a_secret(capsys):
    result = run_module(capsys, check_mode=True, hostname='web1;reboot', interface='vio0\n',
                        users=[dict(name='alice', password_hash=HASH, random_password='s3cr3tPassw0rd')])
    assert result['failed'] is True
    assert result['msg'] == ("hostname: 'web1;reboot' refused; must be a host name such as web1 or web1.example.org. "
                             "interface: 'vio0\\n' refused; must be an interface name such as vio0. "
                             "users[alice].random_password: needs its password_hash and update_password=on_create "
                             "(it is delivered only to a user created now).")
    assert 's3cr3tPassw0rd' not in json.dumps(result)
