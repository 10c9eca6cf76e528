# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_vm's main() end to end against a scripted vmctl/vmd on PATH: no-op, check mode, validation, rollback."""
from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.openbsd.vmm.plugins.module_utils import vmconf as c
from ansible_collections.openbsd.vmm.plugins.modules import vmm_vm, vmm_vm_info

HEADER = '   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME'

# A tiny vmctl: logs its argv; `status` prints $FAKE_DIR/status; `reload` fails while $FAKE_DIR/reload_fails has lines left.
FAKE_VMCTL = '''#!/bin/sh
echo "$*" >> "$FAKE_DIR/calls"
case "$1" in
status) cat "$FAKE_DIR/status" ;;
reload)
    if [ -s "$FAKE_DIR/reload_fails" ]; then
        sed -i 1d "$FAKE_DIR/reload_fails"; echo "vmctl: command failed" >&2; exit 1
    fi ;;
start) echo "vmctl: started vm 1 successfully, tty /dev/ttyp0" >&2 ;;
esac
exit 0
'''
FAKE_VMD = '''#!/bin/sh
echo "vmd $*" >> "$FAKE_DIR/calls"
echo "configuration OK" >&2
'''


class Exited(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


@pytest.fixture
def host(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('vmctl', FAKE_VMCTL), ('vmd', FAKE_VMD)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', '%s:%s' % (bin_dir, os.environ['PATH']))
    monkeypatch.setenv('FAKE_DIR', str(tmp_path))
    (tmp_path / 'status').write_text(HEADER + '\n')
    (tmp_path / 'disk.qcow2').write_bytes(b'')
    (tmp_path / 'calls').write_text('')

    def exit_json(self, **result):
        raise Exited(result)

    def fail_json(self, msg, **result):
        raise Exited(dict(result, failed=True, msg=msg))

    monkeypatch.setattr(vmm_vm.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(vmm_vm.AnsibleModule, 'fail_json', fail_json)
    return tmp_path


def run(module, args):
    with patch_module_args(args):
        with pytest.raises(Exited) as info:
            module.main()
    return info.value.result


def calls(host):
    return (host / 'calls').read_text().splitlines()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def managed_conf(host, enabled=True):
    text = 'switch "uplink" {\n\tinterface veb0\n}\n# mine\n\n' + c.render_managed_block(
        [c.VmDefinition(name='web1', enabled=enabled, memory=512 * 1048576, disks=[c.Disk(str(host / 'disk.qcow2'))])])
    (host / 'vm.conf').write_text(text)
    return host / 'vm.conf'


def test_noop_is_one_status_call_and_no_write(host):
    conf = managed_conf(host)
    (host / 'status').write_text(HEADER + '\n    1 72014     1    512M    100M   ttyp0         root  running web1\n')
    before = (digest(conf), conf.stat().st_mtime_ns)
    result = run(vmm_vm, dict(name='web1', state='running', memory='512M', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert not result.get('failed'), result
    assert (result['changed'], result['commands'], calls(host)) == (False, [['vmctl', 'status']], ['status'])
    assert (digest(conf), conf.stat().st_mtime_ns) == before
    assert result['vm']['state'] == 'running' and result['vm']['pid'] == 72014 and not result['restart_required']


def test_check_mode_predicts_without_acting(host):
    conf = host / 'vm.conf'
    conf.write_text('# by hand\n')
    result = run(vmm_vm, dict(name='new1', state='running', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf),
                              _ansible_check_mode=True, _ansible_diff=True))
    assert result['changed'] and calls(host) == ['status']
    assert conf.read_text() == '# by hand\n'
    assert result['diff']['before'] == '# by hand\n' and 'vm "new1" {\n\tenable\n' in result['diff']['after']


def test_validation_fails_before_any_vmctl_call(host):
    conf = managed_conf(host)
    before = digest(conf)
    result = run(vmm_vm, dict(vms=[dict(name='ok1', disks=[str(host / 'disk.qcow2')]), dict(name='bad', memory='100G', cpus=3)],
                              vm_conf=str(conf)))
    assert result['failed'] and calls(host) == [] and digest(conf) == before
    assert result['problems'] == ["vm 'bad': cpus: the host's vmd does not support setting the number of CPUs (vm.conf has no cpu option "
                                  "and vmctl always starts VMs with 1 vCPU); use cpus: 1 or leave it out",
                                  "vm 'bad': disks: a VM needs at least one disk or a cdrom (vmd refuses a VM without devices)"]


def test_define_and_start_checks_then_reloads_then_starts(host):
    conf = managed_conf(host)
    hand = conf.read_text().split(c.BEGIN_MARKER)[0]
    result = run(vmm_vm, dict(name='app', state='running', memory='1G', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['changed'], result
    assert [call.split()[0] for call in calls(host)] == ['status', 'vmd', 'reload', 'status', 'start', 'status']
    assert calls(host)[1].startswith('vmd -n -f %s/.vm.conf.' % host)
    text = conf.read_text()
    assert text.startswith(hand) and 'vm "web1" {' in text and 'vm "app" {\n\tenable\n\tmemory "1G"\n' in text
    # The backup made for the rollback is gone after a good reload; no temporary file is left.
    assert [name for name in os.listdir(str(host)) if name.startswith(('.vm.conf', 'vm.conf.'))] == []


def test_failed_reload_restores_the_previous_file_and_reloads_it(host):
    conf = managed_conf(host)
    original = conf.read_text()
    (host / 'reload_fails').write_text('1\n')
    result = run(vmm_vm, dict(name='app', state='present', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf), backup=True))
    assert result['failed']
    assert 'vmctl reload failed' in result['msg'] and 'restored the previous' in result['msg']
    assert 'vmd reloaded the previous configuration' in result['msg']
    assert conf.read_text() == original
    with open(result['backup_file']) as backup:          # backup: true keeps it
        assert backup.read() == original
    assert [call.split()[0] for call in calls(host)] == ['status', 'vmd', 'reload', 'reload']


def test_info_reports_status_and_definitions(host):
    conf = managed_conf(host, enabled=False)
    (host / 'status').write_text(HEADER + '\n    1     -     1    512M       -       -         root  stopped web1\n')
    result = run(vmm_vm_info, dict(vm_conf=str(conf)))
    assert result['commands'] == [['vmctl', 'status']]
    web1, = result['vms']
    assert (web1['state'], web1['managed'], web1['config']['enabled'], web1['config']['disks']) == (
        'stopped', True, False, [dict(path=str(host / 'disk.qcow2'), format=None)])
    json.dumps(result)


def test_a_new_vm_conf_is_created_readable(host):
    conf = host / 'etc' / 'vm.conf'
    conf.parent.mkdir()
    result = run(vmm_vm, dict(name='first', state='present', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['changed'] and not result.get('failed')
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert conf.read_text() == c.render_managed_block([c.VmDefinition(name='first', enabled=False, disks=[c.Disk(str(host / 'disk.qcow2'))])])


def test_failed_reload_leaves_no_backup_unless_asked(host):
    conf = managed_conf(host)
    (host / 'reload_fails').write_text('1\n2\n')
    result = run(vmm_vm, dict(name='app', state='present', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['failed'] and 'reloading the previous configuration failed too' in result['msg']
    assert result['backup_file'] is None
    assert [name for name in os.listdir(str(host)) if name.startswith(('.vm.conf', 'vm.conf.'))] == []
