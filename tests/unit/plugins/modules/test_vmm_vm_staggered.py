# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_vm staggered_start: the reload starts (or queues) the VMs, vmctl start is not called."""
from __future__ import annotations

# host is test_vmm_vm's pytest fixture (a scripted vmctl and vmd on PATH), used by name below
from ansible_collections.openbsd.vmm.tests.unit.plugins.modules.test_vmm_vm import (  # noqa: F401 pylint: disable=unused-import
    HEADER, calls, host, managed_conf, run,
)
from ansible_collections.openbsd.vmm.plugins.modules import vmm_vm

WAITING = '    1     -     1    512M       -       -         root  waiting web1\n'
STOPPED = '    1     -     1    512M       -       -         root  stopped web1\n'


def args(host, **more):
    return dict(dict(name='web1', state='running', memory='512M', disks=[str(host / 'disk.qcow2')],
                     vm_conf=str(host / 'vm.conf')), **more)


def test_a_new_vm_is_started_by_the_reload_not_by_vmctl_start(host):
    (host / 'vm.conf').write_text('# by hand\n')
    result = run(vmm_vm, args(host, staggered_start=True))
    assert not result.get('failed'), result
    assert result['changed']
    assert [call for call in calls(host) if not call.startswith('vmd ')] == ['status', 'reload', 'status']
    assert 'vm "web1" {\n\tenable\n' in (host / 'vm.conf').read_text(), 'written enabled: the reload starts it'
    assert result['vm']['steps'] == ['define', 'start (staggered)']


def test_a_stopped_vm_is_queued_by_a_reload(host):
    managed_conf(host, enabled=True)
    (host / 'status').write_text(HEADER + '\n' + STOPPED)
    result = run(vmm_vm, args(host, staggered_start=True))
    assert result['changed'] and calls(host) == ['status', 'reload', 'status']
    assert result['vm']['state'] == 'stopped'   # as the fake's status still shows it
    assert result['vm']['steps'] == ['start (staggered)']


def test_a_queued_vm_is_left_to_vmd_and_reported_waiting(host):
    managed_conf(host, enabled=True)
    (host / 'status').write_text(HEADER + '\n' + WAITING)
    result = run(vmm_vm, args(host, staggered_start=True))
    assert (result['changed'], calls(host)) == (False, ['status'])
    assert result['vm']['state'] == 'waiting' and result['vm']['steps'] == []


def test_without_the_option_a_queued_vm_is_started_at_once(host):
    managed_conf(host, enabled=True)
    (host / 'status').write_text(HEADER + '\n' + WAITING)
    result = run(vmm_vm, args(host))
    assert result['changed'] and calls(host) == ['status', 'start web1', 'status']


def test_a_vm_to_pause_is_still_started_with_vmctl(host):
    managed_conf(host, enabled=True)
    (host / 'status').write_text(HEADER + '\n' + STOPPED)
    result = run(vmm_vm, args(host, state='paused', staggered_start=True))
    assert calls(host) == ['status', 'start web1', 'pause web1', 'status'], result
