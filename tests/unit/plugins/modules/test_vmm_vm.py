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
start)
    if [ -e "$FAKE_DIR/start_fails" ]; then echo "vmctl: start vm command failed: No such file or directory" >&2; exit 1; fi
    echo "vmctl: started vm 1 successfully, tty /dev/ttyp0" >&2 ;;
esac
exit 0
'''
# `vmd -n -f FILE`: refuses (like parse.y's yyerror, naming the file) while $FAKE_DIR/vmd_refuses exists.
FAKE_VMD = '''#!/bin/sh
echo "vmd $*" >> "$FAKE_DIR/calls"
if [ -e "$FAKE_DIR/vmd_refuses" ]; then echo "$3:7: syntax error" >&2; exit 1; fi
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


def leftovers(host):
    """Files of a run beside vm.conf, but the host lock (which stays, empty, for the next run)."""
    return [name for name in os.listdir(str(host)) if name.startswith(('.vm.conf', 'vm.conf.')) and name != '.vm.conf.lock']


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def managed_conf(host, enabled=True):
    text = 'switch "uplink" {\n\tinterface veb0\n}\n# mine\n\n' + c.render_managed_block(
        [c.VmDefinition(name='web1', enabled=enabled, memory=512 * 1048576, disks=[c.Disk(str(host / 'disk.qcow2'))])])
    (host / 'vm.conf').write_text(text)
    return host / 'vm.conf'


def test_noop_is_one_status_call_and_no_write(host):
    conf = managed_conf(host)
    # vmctl status shows a running VM of 512M as 516M: vmm(4) counts vmd's memory ranges (x86_vm.c create_memory_map)
    (host / 'status').write_text(HEADER + '\n    1 72014     1    516M    100M   ttyp0         root  running web1\n')
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
    assert leftovers(host) == []


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


@pytest.mark.parametrize('check_mode', [False, True])
def test_a_vm_conf_vmd_refuses_is_never_committed(host, check_mode):
    conf = managed_conf(host)
    before = (digest(conf), conf.stat().st_mtime_ns)
    (host / 'vmd_refuses').write_text('')
    result = run(vmm_vm, dict(name='app', state='running', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf), backup=True,
                              _ansible_check_mode=check_mode))
    if check_mode:
        # check mode never runs vmd -n (it would need the candidate file on disk); it predicts only.
        assert result['changed'] and not result.get('failed') and calls(host) == ['status']
    else:
        assert result['failed']
        assert result['msg'] == 'vmd -n refused the new %s, nothing was changed: %s:7: syntax error' % (conf, conf)
        assert [call.split()[:3] for call in calls(host)] == [['status'], ['vmd', '-n', '-f']]
    assert (digest(conf), conf.stat().st_mtime_ns) == before
    assert leftovers(host) == [] and not result.get('backup_file')


def test_info_reports_status_and_definitions(host):
    conf = managed_conf(host, enabled=False)
    (host / 'status').write_text(HEADER + '\n    1     -     1    512M       -       -         root  stopped web1\n')
    result = run(vmm_vm_info, dict(vm_conf=str(conf)))
    assert (result['vms'][0]['memory'], result['vms'][0]['maxmem']) == (512 * 1048576, 512 * 1048576)
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
    assert conf.read_text() == ('# BEGIN openbsd.vmm managed VMs (edits between these markers are overwritten)\n'
                                'vm "first" {\n\tdisable\n\tdisk "%s"\n}\n'
                                '# END openbsd.vmm managed VMs\n' % (host / 'disk.qcow2'))


def test_failed_reload_leaves_no_backup_unless_asked(host):
    conf = managed_conf(host)
    (host / 'reload_fails').write_text('1\n2\n')
    result = run(vmm_vm, dict(name='app', state='present', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['failed'] and 'reloading the previous configuration failed too' in result['msg']
    assert result['backup_file'] is None
    # vmd read neither file: the marker stays, so the next run reloads.
    assert leftovers(host) == ['.vm.conf.reload-pending']


RUNNING_516M = HEADER + '\n    1 72014     1    516M    100M   ttyp0         root  running web1\n'


def web1(host, **options):
    args = dict(name='web1', state='running', memory='512M', disks=[str(host / 'disk.qcow2')], vm_conf=str(host / 'vm.conf'))
    args.update(options)
    return args


def test_unchanged_running_vm_never_needs_a_restart_nor_gets_one(host):
    managed_conf(host)
    (host / 'status').write_text(RUNNING_516M)
    result = run(vmm_vm, web1(host, restart_on_change=True))
    assert (result['changed'], result['restart_required'], calls(host)) == (False, False, ['status'])
    assert (result['vm']['memory'], result['vm']['maxmem'], result['vm']['memory_text']) == (512 * 1048576, 516 * 1048576, '516M')
    info = run(vmm_vm_info, dict(vm_conf=str(host / 'vm.conf')))
    assert (info['vms'][0]['memory'], info['vms'][0]['maxmem']) == (512 * 1048576, 516 * 1048576)


def test_a_real_memory_change_of_a_running_vm_still_needs_the_restart(host):
    managed_conf(host)
    (host / 'status').write_text(RUNNING_516M)
    result = run(vmm_vm, web1(host, memory='1G'))
    assert result['changed'] and result['restart_required'] and 'stop' not in ' '.join(calls(host))
    # vm.conf says 1G now: the next run still sees vmd running the 512M definition (1.0G would be shown)
    (host / 'calls').write_text('')
    again = run(vmm_vm, web1(host, memory='1G'))
    assert (again['changed'], again['restart_required'], calls(host)) == (False, True, ['status'])


def test_check_mode_takes_a_missing_disk_as_made_by_an_earlier_task(host, monkeypatch):
    # --check after a vmm_disk task that would create the disk: vmm_vm says what it would do, with a warning
    warned = []
    monkeypatch.setattr(vmm_vm.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    args = web1(host, disks=[str(host / 'new.qcow2')])
    checked = run(vmm_vm, dict(args, _ansible_check_mode=True))
    assert checked.get('failed') is not True and checked['changed'] is True, checked
    assert checked['vm']['steps'] == ['define', 'start']
    assert ('check mode: %s does not exist yet; taken as made by an earlier task (a real run fails while it is missing)'
            % (host / 'new.qcow2')) in warned
    assert not (host / 'vm.conf').exists() or 'new.qcow2' not in (host / 'vm.conf').read_text()
    # for real, the missing disk is refused before vmctl is asked anything
    (host / 'calls').write_text('')
    result = run(vmm_vm, args)
    assert result['failed'] is True
    assert '%s does not exist (create it with openbsd.vmm.vmm_disk first)' % (host / 'new.qcow2') in result['msg']
    assert calls(host) == []


def test_the_record_has_the_definition_of_a_defined_vm_only(host):
    absent = run(vmm_vm, web1(host, state='absent'))
    assert (absent['changed'], absent['vm']['config']) == (False, None)
    present = run(vmm_vm, web1(host, state='stopped'))
    assert present['vm']['config']['disks'] == [{'path': str(host / 'disk.qcow2'), 'format': None}]


def test_stopping_a_hand_written_enabled_vm_warns_that_vmd_starts_it_again(host, monkeypatch):
    warned = []
    monkeypatch.setattr(vmm_vm.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    conf = host / 'vm.conf'
    conf.write_text('vm "web1" {\n\tdisk "%s"\n}\n' % (host / 'disk.qcow2'))
    result = run(vmm_vm, dict(name='web1', state='stopped', vm_conf=str(conf)))
    assert not result.get('failed'), result
    assert warned == ['vm \'web1\' is enabled in the hand-written part of %s (%s:1): vmd starts it again at the next '
                      'vmctl reload or boot; write "disable" there to keep it stopped' % (conf, conf)]


def test_removing_a_managed_vm_rewrites_vm_conf_without_it(host):
    conf = managed_conf(host)
    result = run(vmm_vm, web1(host, state='absent'))
    assert not result.get('failed'), result
    assert (result['changed'], result['vm']['steps'], result['vm']['config']) == (True, ['undefine'], None)
    assert 'web1' not in conf.read_text() and 'reload' in calls(host)


def test_steps_are_reported_in_the_order_they_run(host):
    managed_conf(host)
    (host / 'status').write_text(RUNNING_516M)
    result = run(vmm_vm, web1(host, memory='1G', restart_on_change=True))
    assert result['changed'] and result['vm']['steps'] == ['stop', 'define', 'start'], result['vm']['steps']
    # stop, then the new vm.conf (checked with vmd -n before) and vmd's reload, which starts it (the fake's status says running)
    assert [call.split()[0] for call in calls(host)] == ['status', 'vmd', 'stop', 'reload', 'status', 'status']


def test_waiting_with_a_pid_is_running(host):
    managed_conf(host)
    (host / 'status').write_text(HEADER + '\n    1 72014     1    516M    100M   ttyp0         root  waiting web1\n')
    result = run(vmm_vm, web1(host))
    assert (result['changed'], calls(host), result['vm']['state'], result['vm']['pid']) == (False, ['status'], 'running', 72014)
    stopped = run(vmm_vm, web1(host, state='stopped'))
    assert 'stop -w web1' in calls(host), stopped


def test_a_stopped_vm_that_vmd_knows_with_an_older_definition_is_reloaded(host):
    # a reload was killed after vm.conf was written: vmd still has the old 256M definition of the stopped VM
    managed_conf(host, enabled=False)
    (host / 'status').write_text(HEADER + '\n    1     -     1    256M       -       -         root  stopped web1\n')
    result = run(vmm_vm, web1(host, state='stopped'))
    assert result['changed'] and 'reload' in calls(host), result


def test_a_reload_owed_by_an_interrupted_run_is_made_though_status_shows_no_difference(host):
    # vm.conf was rewritten (a disk changed, which vmctl status cannot show), then the run was killed before the reload
    managed_conf(host, enabled=False)
    (host / 'status').write_text(HEADER + '\n    1     -     1    512M       -       -         root  stopped web1\n')
    (host / '.vm.conf.reload-pending').write_text('4242\n')
    result = run(vmm_vm, web1(host, state='stopped'))
    assert result['changed'] and calls(host) == ['status', 'reload', 'status'], result
    assert leftovers(host) == []


def test_the_owed_reload_removes_the_rollback_copies_the_marker_names_beside_vm_conf_only(host, tmp_path_factory):
    managed_conf(host, enabled=False)
    (host / 'status').write_text(HEADER + '\n    1     -     1    512M       -       -         root  stopped web1\n')
    beside = host / 'vm.conf.4242.2026-11-30@14:00:00~'
    beside.write_text('old\n')
    elsewhere = tmp_path_factory.mktemp('elsewhere') / 'vm.conf.1.2026-11-30@14:00:00~'
    elsewhere.write_text('not ours\n')
    (host / '.vm.conf.reload-pending').write_text(json.dumps(dict(pid=4242, backups=[str(beside), str(elsewhere)])))
    result = run(vmm_vm, web1(host, state='stopped'))
    assert result['changed'] and 'reload' in calls(host), result
    assert not beside.exists() and elsewhere.exists()
    assert leftovers(host) == []


def test_without_the_marker_the_same_host_is_a_noop(host):
    managed_conf(host, enabled=False)
    (host / 'status').write_text(HEADER + '\n    1     -     1    512M       -       -         root  stopped web1\n')
    result = run(vmm_vm, web1(host, state='stopped'))
    assert not result['changed'] and calls(host) == ['status'], result


def tap_dir(host, count):
    dev = host / 'dev'
    dev.mkdir()
    for index in range(count):
        (dev / ('tap%d' % index)).write_text('')
    return dev


def test_stop_timeout_0_is_refused_naming_the_option_not_read_as_60(host):
    conf = managed_conf(host)
    before = digest(conf)
    result = run(vmm_vm, dict(name='web1', state='stopped', stop_timeout=0, disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['failed'] and calls(host) == [] and digest(conf) == before
    assert result['problems'] == ["vm 'web1': stop_timeout: must be a positive number of seconds"]


def test_too_few_taps_is_refused_before_any_change(host):
    conf = managed_conf(host)
    before = digest(conf)
    dev = tap_dir(host, 2)
    (dev / 'tap3').write_text('')           # after the gap at tap2: vmd never gets there
    vms = [dict(name='f%d' % index, disks=[str(host / 'disk.qcow2')], interfaces=[dict(local=True)]) for index in range(3)]
    result = run(vmm_vm, dict(vms=vms, state='running', vm_conf=str(conf), dev_dir=str(dev)))
    assert result['failed'] and calls(host) == ['status'] and digest(conf) == before
    assert 'nothing was changed' in result['msg'] and '1 missing' in result['msg'], result['msg']
    assert 'cd %s && sh MAKEDEV tap2' % dev in result['msg']
    (dev / 'tap2').write_text('')
    assert not run(vmm_vm, dict(vms=vms, state='running', vm_conf=str(conf), dev_dir=str(dev))).get('failed')


def test_taps_held_by_running_vms_count(host):
    text = c.render_managed_block([c.VmDefinition(name='web1', memory=512 * 1048576, disks=[c.Disk(str(host / 'disk.qcow2'))],
                                                  interfaces=[c.Interface(local=True), c.Interface(local=True)])])
    (host / 'vm.conf').write_text(text)
    (host / 'status').write_text(RUNNING_516M)
    dev = tap_dir(host, 2)
    result = run(vmm_vm, dict(name='app', state='running', disks=[str(host / 'disk.qcow2')], interfaces=[dict(local=True)],
                              vm_conf=str(host / 'vm.conf'), dev_dir=str(dev)))
    assert result['failed'] and '2 of them held by running VMs; 1 missing' in result['msg'], result['msg']


def test_a_reload_with_a_running_instance_is_refused_before_any_change(host):
    parent = c.VmDefinition(name='tmpl', enabled=False, disks=[c.Disk(str(host / 'disk.qcow2'))])
    child = c.VmDefinition(name='child', instance_of='tmpl', enabled=True, disks=[c.Disk(str(host / 'other.qcow2'))])
    (host / 'other.qcow2').write_bytes(b'')
    conf = host / 'vm.conf'
    conf.write_text(c.render_managed_block([parent, child]))
    before = digest(conf)
    (host / 'status').write_text(HEADER + '\n    2 72014     1    516M    100M   ttyp0         root  running child\n'
                                 '    1     -     1    512M       -       -         root  stopped tmpl\n')
    result = run(vmm_vm, dict(name='app', state='present', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['failed'] and calls(host) == ['status'] and digest(conf) == before
    assert "vm 'child': this run must reload vmd" in result['msg'] and 'EPROCLIM' in result['msg']
    # stopping the instance in the same run makes the reload possible: the stop comes before it
    result = run(vmm_vm, dict(vms=[dict(name='app', state='present', disks=[str(host / 'disk.qcow2')]),
                                   dict(name='child', state='stopped')], vm_conf=str(conf)))
    assert not result.get('failed'), result
    assert [call.split()[0] for call in calls(host)][-4:] == ['vmd', 'stop', 'reload', 'status']


def test_an_instance_lladdr_other_than_the_parents_is_refused(host):
    parent = c.VmDefinition(name='tmpl', enabled=False, disks=[c.Disk(str(host / 'disk.qcow2'))], interfaces=[c.Interface(local=True)])
    (host / 'vm.conf').write_text(c.render_managed_block([parent]))
    (host / 'other.qcow2').write_bytes(b'')
    result = run(vmm_vm, dict(name='child', instance_of='tmpl', disks=[str(host / 'other.qcow2')],
                              interfaces=[dict(local=True, lladdr='fe:e1:ba:d0:00:07')], vm_conf=str(host / 'vm.conf')))
    assert result['failed'] and 'lladdr cannot be reused' in result['msg'] and calls(host) == ['status']


def test_a_failed_start_after_the_reload_reports_changed_and_names_both_causes(host):
    conf = managed_conf(host)
    (host / 'start_fails').write_text('')
    result = run(vmm_vm, dict(name='app', state='running', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf)))
    assert result['failed'] and result['changed'], result
    assert "vm 'app' could not be started" in result['msg']
    assert '/dev/tapN' in result['msg'] and 'boot image' in result['msg']
    assert 'vm "app"' in conf.read_text(), 'vm.conf keeps the definition vmd now has'


def test_vm_conf_in_a_missing_directory_is_a_clear_error(host):
    result = run(vmm_vm, dict(name='app', disks=[str(host / 'disk.qcow2')], vm_conf=str(host / 'nosuch' / 'vm.conf')))
    assert result['failed'] and 'vm_conf: the directory of' in result['msg'] and 'does not exist' in result['msg']
    assert not result.get('changed') and calls(host) == []


def test_leftovers_of_an_interrupted_run_are_removed(host, monkeypatch):
    warned = []
    monkeypatch.setattr(vmm_vm.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    conf = managed_conf(host)
    (host / '.vm.conf.k3_x9q.tmp').write_text('half')
    (host / '.vm.conf.zz1.restore').write_text('half')
    (host / '.vm.conf.notours').write_text('keep')
    (host / 'status').write_text(RUNNING_516M)
    result = run(vmm_vm, web1(host))
    assert not result['changed'] and calls(host) == ['status']
    assert sorted(leftovers(host)) == ['.vm.conf.notours']
    expected = ['removed %s, left behind by an interrupted earlier run' % (host / name) for name in ('.vm.conf.k3_x9q.tmp', '.vm.conf.zz1.restore')]
    assert [text for text in warned if 'interrupted' in text] == expected


def test_check_mode_takes_no_host_lock_and_removes_nothing(host):
    managed_conf(host)
    (host / '.vm.conf.k3_x9q.tmp').write_text('half')
    (host / 'status').write_text(RUNNING_516M)
    result = run(vmm_vm, web1(host, _ansible_check_mode=True))
    assert not result['changed'] and calls(host) == ['status']
    assert sorted(name for name in os.listdir(str(host)) if name.startswith('.vm.conf')) == ['.vm.conf.k3_x9q.tmp']


def test_a_held_host_lock_makes_the_run_wait_then_fail_naming_the_holder(host):
    import fcntl
    conf = managed_conf(host)
    before = digest(conf)
    with open(host / '.vm.conf.lock', 'w') as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write('pid 4242: ansible-playbook site.yml\n')
        held.flush()
        result = run(vmm_vm, dict(name='app', disks=[str(host / 'disk.qcow2')], vm_conf=str(conf), lock_timeout=0))
    assert result['failed'] and 'held by pid 4242: ansible-playbook site.yml' in result['msg'] and 'lock_timeout=0' in result['msg']
    assert calls(host) == [] and digest(conf) == before
