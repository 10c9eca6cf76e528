# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_backup: names, retention, the pause and the copies. Images are copied by the lab's vmctl (tests/lab);
only vmd's pause/unpause are recorded here (they need a running vmd: tests/integration/targets/playbook_backup_restore)."""

from __future__ import annotations

import calendar
import errno
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image, vm_backup
from ansible_collections.openbsd.vmm.plugins.module_utils.vm_backup import BackupError
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import VmctlError, VmStatus
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_disk_image import LAB_BIN, lab_init

MIB = 1024 * 1024
NOW = calendar.timegm((2026, 12, 1, 3, 0, 0))   # 2026-12-01T03:00:00Z

pytestmark = pytest.mark.skipif(not os.access(os.path.join(LAB_BIN, 'vmctl'), os.X_OK), reason='the lab (tests/lab) is not present')


def lab_vmctl(tmp_path):
    """The product's Vmctl running the lab's vmctl; pause and unpause recorded (with what the disks' directory holds then)."""
    from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl

    class Recording(Vmctl):
        def __init__(self, env, watch, unpause_fails=False):
            super().__init__(binary=os.path.join(LAB_BIN, 'vmctl'), environ=env)
            self.events, self.watch, self.unpause_fails = [], watch, unpause_fails
            self.backups = os.path.join(os.path.dirname(watch), 'backups')
            if not os.path.isdir(self.backups):
                self.backups = os.path.join(os.path.dirname(os.path.dirname(watch)), 'backups')

        def pause(self, name):
            self.events.append(('pause', name, sorted(os.listdir(self.watch))))
            self.marker = None
            for entry in os.listdir(self.backups):
                if entry.endswith('.vmm_backup-paused'):
                    with open(os.path.join(self.backups, entry)) as handle:
                        self.marker = handle.read()

        def unpause(self, name):
            self.events.append(('unpause', name, sorted(os.listdir(self.watch))))
            self.copy_modes = [os.stat(os.path.join(self.watch, entry)).st_mode & 0o777
                               for entry in os.listdir(self.watch) if entry.endswith('.tmp')]
            if self.unpause_fails:
                raise VmctlError('unpause vm command failed: Invalid argument')

    return Recording, lab_init(tmp_path / 'lab')


@pytest.fixture
def host(tmp_path):
    """A host: a disk directory, vm.conf defining web1 on a raw disk with data, a backup directory."""
    disks = tmp_path / 'vmm'
    disks.mkdir()
    dest = tmp_path / 'backups'
    dest.mkdir()
    disk = disks / 'web1.raw'
    with open(disk, 'wb') as image:
        image.truncate(8 * MIB)
        image.seek(3 * MIB)
        image.write(b'data written by the guest')
    conf = tmp_path / 'vm.conf'
    conf.write_text('vm "web1" {\n\tmemory 64M\n\tdisk "%s"\n\tlocal interface { lladdr fe:e1:ba:d0:01:02 }\n}\n'
                    'vm "web1" instance "web1i" {\n}\n'
                    'vm "nodisk" {\n\tmemory 64M\n}\n' % disk)
    recording, env = lab_vmctl(tmp_path)
    return dict(tmp=tmp_path, disks=disks, dest=dest, disk=disk, conf=conf, recording=recording, env=env)


def request_for(host, **overrides):
    params = dict(name='web1', dest=str(host['dest']), vm_conf=str(host['conf']), if_running='pause', keep=None, max_age_days=None)
    params.update(overrides)
    return vm_backup.validate_request(params)


def status(state):
    return VmStatus(id=1, pid=4242, vcpus=1, maxmem=64 * MIB, curmem=64 * MIB, tty='ttyp0', owner='root', owner_group=None,
                    state=state, name='web1')


def make_backup(dest, name, manifest=True):
    path = dest / name
    path.mkdir()
    if manifest:
        (path / 'manifest.json').write_text('{}')
    return str(path)


# -- parameters ----------------------------------------------------------------

@pytest.mark.parametrize('overrides, message', [
    (dict(name='web 1'), "name: a VM name may contain only letters, digits, \".\", \"_\" and \"-\" (got 'web 1')"),
    (dict(name='-web1'), "name: a VM name must not start with \".\", \"-\" or \"_\" (got '-web1')"),
    (dict(dest='backups'), "dest: must be an absolute path (got 'backups')"),
    (dict(keep=0), 'keep: must be at least 1 (got 0); leave it out to keep every backup'),
    (dict(max_age_days=0), 'max_age_days: must be at least 1 (got 0); leave it out to keep every backup'),
])
def test_bad_parameters_name_the_parameter_and_the_rule(host, overrides, message):
    with pytest.raises(BackupError) as error:
        request_for(host, **overrides)
    assert str(error.value) == message


def test_dest_must_exist(host):
    missing = str(host['tmp'] / 'nowhere')
    with pytest.raises(BackupError, match=r'^dest: %s is not a directory; create it first' % missing):
        request_for(host, dest=missing)


def test_keep_one_and_a_day_are_accepted(host):
    request = request_for(host, keep=1, max_age_days=1)
    assert (request.keep, request.max_age_days) == (1, 1)


# -- the VM's definition -------------------------------------------------------------

def test_the_definition_and_its_disks_are_read_from_vm_conf(host):
    definition = vm_backup.read_definition(request_for(host))
    assert definition.memory == 64 * MIB and definition.lladdrs == ['fe:e1:ba:d0:01:02']
    (disk,) = vm_backup.source_disks(definition)
    assert (disk.index, disk.path, disk.format, disk.size, disk.chain, disk.file_name) == (
        0, str(host['disk']), 'raw', 8 * MIB, [str(host['disk'])], 'disk0.raw')


@pytest.mark.parametrize('name, message', [
    ('db1', "name: no VM 'db1' is defined in %(conf)s (or the files it includes)"),
    ('web1i', "name: 'web1i' is an instance of 'web1'; vmm_backup backs up VMs defined whole in vm.conf, not instances"),
    ('nodisk', "name: VM 'nodisk' has no disk in %(conf)s; there is nothing to back up"),
])
def test_vms_that_cannot_be_backed_up(host, name, message):
    with pytest.raises(BackupError) as error:
        vm_backup.read_definition(request_for(host, name=name))
    assert str(error.value) == message % dict(conf=host['conf'])


def test_a_missing_disk_is_named(host):
    definition = vm_backup.read_definition(request_for(host))
    os.unlink(host['disk'])
    with pytest.raises(BackupError, match=r'^disk 0 of VM web1, %s, does not exist$' % host['disk']):
        vm_backup.source_disks(definition)


def test_a_disk_whose_base_is_missing_cannot_be_read_whole(host):
    overlay = host['disks'] / 'web1.qcow2'
    subprocess.run([os.path.join(LAB_BIN, 'vmctl'), 'create', '-s', '8M', 'base.qcow2'], cwd=str(host['disks']), env=host['env'],
                   check=True, capture_output=True)
    subprocess.run([os.path.join(LAB_BIN, 'vmctl'), 'create', '-b', 'base.qcow2', 'web1.qcow2'], cwd=str(host['disks']),
                   env=host['env'], check=True, capture_output=True)
    os.unlink(host['disks'] / 'base.qcow2')
    host['conf'].write_text('vm "web1" {\n\tdisk "%s"\n}\n' % overlay)
    definition = vm_backup.read_definition(request_for(host))
    with pytest.raises(BackupError, match=r'^disk 0 of VM web1 cannot be read whole: base .*base.qcow2 of .*web1.qcow2 does not exist'):
        vm_backup.source_disks(definition)


# -- names and retention -------------------------------------------------------------

def test_backups_are_this_vms_complete_ones_in_time_order(host):
    dest = host['dest']
    later = make_backup(dest, 'web1-20261201T020000Z')
    same_second = make_backup(dest, 'web1-20261201T010000Z-1')
    earliest = make_backup(dest, 'web1-20261201T010000Z')
    tenth = make_backup(dest, 'web1-20261201T010000Z-10')
    make_backup(dest, 'web10-20261201T000000Z')           # another VM
    make_backup(dest, 'web1-20261201T000000Z', manifest=False)   # not complete
    make_backup(dest, 'web1-yesterday')
    make_backup(dest, 'web1-20261201T000000Zjunk')
    make_backup(dest, '.web1-20261201T000000Z.partial')
    assert vm_backup.existing_backups(request_for(host)) == [earliest, same_second, tenth, later]


def test_keep_counts_the_new_backup(host):
    dest = host['dest']
    old = [make_backup(dest, 'web1-2026110%dT000000Z' % day) for day in (1, 2, 3)]
    backups = vm_backup.existing_backups(request_for(host))
    assert vm_backup.expired(request_for(host, keep=3), backups, NOW) == old[:1]
    assert vm_backup.expired(request_for(host, keep=4), backups, NOW) == []
    assert vm_backup.expired(request_for(host, keep=5), backups, NOW) == []
    assert vm_backup.expired(request_for(host, keep=1), backups, NOW) == old
    assert vm_backup.expired(request_for(host), backups, NOW) == []


def test_max_age_days_removes_what_is_older(host):
    dest = host['dest']
    two_days = make_backup(dest, 'web1-20261129T030000Z')
    just_over_a_day = make_backup(dest, 'web1-20261130T025959Z')
    make_backup(dest, 'web1-20261130T030000Z')     # exactly a day: kept
    make_backup(dest, 'web1-20261201T020000Z')
    backups = vm_backup.existing_backups(request_for(host))
    assert vm_backup.expired(request_for(host, max_age_days=1), backups, NOW) == [two_days, just_over_a_day]
    # both rules: a backup that both would remove is listed once
    assert vm_backup.expired(request_for(host, max_age_days=1, keep=4), backups, NOW) == [two_days, just_over_a_day]
    assert vm_backup.expired(request_for(host, max_age_days=2, keep=3), backups, NOW) == [two_days, just_over_a_day]


def test_a_new_backup_never_takes_a_name_in_use(host):
    dest = host['dest']
    request = request_for(host)
    assert vm_backup.new_backup_path(request, NOW) == str(dest / 'web1-20261201T030000Z')
    make_backup(dest, 'web1-20261201T030000Z')
    (dest / '.web1-20261201T030000Z-1.partial').mkdir()
    assert vm_backup.new_backup_path(request, NOW) == str(dest / 'web1-20261201T030000Z-2')


def test_leftovers_are_this_vms_only(host):
    dest, disks = host['dest'], host['disks']
    request = request_for(host)
    disk = vm_backup.source_disks(vm_backup.read_definition(request))
    partial = dest / '.web1-20261201T030000Z.partial'
    partial.mkdir()
    (dest / '.web10-20261201T030000Z.partial').mkdir()
    (dest / '.web1-20261201T030000Z.partials').mkdir()
    (dest / 'x.web1-20261201T030000Z.partial').mkdir()
    copy = disks / '.web1.raw.vmm_backup-0badf00d.tmp'
    copy.write_bytes(b'')
    (disks / '.web10.raw.vmm_backup-0badf00d.tmp').write_bytes(b'')
    assert vm_backup.leftovers(request, disk) == sorted([str(partial), str(copy)])
    marker = vm_backup.pause_marker(request)
    open(marker, 'w').close()
    assert vm_backup.leftovers(request, disk) == sorted([str(partial), str(copy), marker])


# -- state ---------------------------------------------------------------------

def test_a_vm_paused_by_a_killed_run_counts_as_running(host):
    request = request_for(host)
    assert vm_backup.vm_state(request, None) == 'stopped'
    assert vm_backup.vm_state(request, status('paused')) == 'paused'
    open(vm_backup.pause_marker(request), 'w').close()
    assert vm_backup.vm_state(request, status('paused')) == 'running'
    assert vm_backup.vm_state(request, status('running')) == 'running'


def test_leftovers_removed_and_the_vm_unpaused_only_if_paused(host):
    request = request_for(host)
    vmctl = host['recording'](host['env'], str(host['disks']))
    marker = vm_backup.pause_marker(request)
    partial = host['dest'] / '.web1-20261201T030000Z.partial'
    partial.mkdir()
    (partial / 'disk0.raw').write_bytes(b'x')
    open(marker, 'w').close()
    vm_backup.remove_leftovers(request, [str(partial), marker], status('running'), vmctl)
    assert vmctl.events == [] and not os.path.exists(marker) and not partial.exists()
    open(marker, 'w').close()
    vm_backup.remove_leftovers(request, [marker], status('paused'), vmctl)
    assert [event[:2] for event in vmctl.events] == [('unpause', 'web1')] and not os.path.exists(marker)


@pytest.mark.parametrize('state, if_running, message', [
    ('stopping', 'pause', 'VM web1 is stopping; back it up when it is running, paused or stopped'),
    ('running', 'fail', 'VM web1 is running and if_running is fail: stop it first, or use if_running: pause'),
])
def test_states_that_are_refused(host, state, if_running, message):
    request = request_for(host, if_running=if_running)
    with pytest.raises(BackupError) as error:
        vm_backup.plan_backup(request, vm_backup.read_definition(request), state, NOW)
    assert str(error.value).startswith(message)


# -- taking the backup -----------------------------------------------------------

def plan(host, state, **overrides):
    request = request_for(host, **overrides)
    return vm_backup.plan_backup(request, vm_backup.read_definition(request), state, NOW)


def read_back(path, offset, length):
    with open(path, 'rb') as image:
        image.seek(offset)
        return image.read(length)


def test_a_stopped_vm_is_copied_whole_without_a_pause(host):
    the_plan = plan(host, 'stopped')
    vmctl = host['recording'](host['env'], str(host['disks']))
    manifest, removed, paused = vm_backup.take_backup(the_plan, vmctl, now=NOW, hostname='vmm1.example')
    backup = the_plan.backup
    assert (removed, paused, vmctl.events) == ([], None, [])
    assert os.listdir(str(host['dest'])) == ['web1-20261201T030000Z']
    assert sorted(os.listdir(backup)) == ['disk0.raw', 'manifest.json']
    image = os.path.join(backup, 'disk0.raw')
    assert os.path.getsize(image) == 8 * MIB and read_back(image, 3 * MIB, 25) == b'data written by the guest'
    with open(image, 'rb') as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with open(os.path.join(backup, 'manifest.json')) as handle:
        assert json.load(handle) == manifest
    assert manifest == dict(
        version=1, vm='web1', created_at='2026-12-01T03:00:00Z', host='vmm1.example', vm_conf=str(host['conf']),
        state='stopped', consistency='stopped', paused_seconds=None,
        definition=dict(name='web1', instance_of=None, enabled=True, memory=64 * MIB, boot=None, boot_device=None, cdrom=None,
                        disks=[dict(path=str(host['disk']), format=None)],
                        interfaces=[dict(switch=None, lladdr='fe:e1:ba:d0:01:02', locked=False, group=None, rdomain=None, local=True)],
                        owner=None, allow_instance=[], allow_instance_owner=None),
        disks=[dict(index=0, source=str(host['disk']), file='disk0.raw', format='raw', virtual_size=8 * MIB,
                    bytes=8 * MIB, sha256=digest, source_chain=[str(host['disk'])])])
    assert (os.stat(backup).st_mode & 0o777, os.stat(image).st_mode & 0o777) == (0o700, 0o600)
    assert [call[:2] for call in vmctl.calls] == [['vmctl', 'create']]


def test_a_stopped_vm_that_holds_its_disk_is_not_copied(host):
    the_plan = plan(host, 'stopped')
    vmctl = host['recording'](host['env'], str(host['disks']))
    with open(host['disk'], 'rb') as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)     # what vmd holds while the VM runs
        with pytest.raises(BackupError, match=r'^disk 0, %s, is held by a running VM although vmctl status showed the VM '
                                              r'stopped; nothing was backed up$' % host['disk']):
            vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert os.listdir(str(host['dest'])) == [] and vmctl.calls == []


def test_a_running_vm_is_paused_only_while_its_top_image_is_copied(host):
    the_plan = plan(host, 'running', keep=1)
    old = make_backup(host['dest'], 'web1-20261130T030000Z')
    the_plan.expire = [old]
    vmctl = host['recording'](host['env'], str(host['disks']))
    manifest, removed, paused = vm_backup.take_backup(the_plan, vmctl, now=NOW)
    (pause, unpause) = vmctl.events
    assert pause == ('pause', 'web1', ['web1.raw'])
    # at unpause the copy is there beside the disk, and vmctl has not run yet
    assert unpause[:2] == ('unpause', 'web1') and len(unpause[2]) == 2
    assert unpause[2][0].startswith('.web1.raw.vmm_backup-') and unpause[2][0].endswith('.tmp')
    assert [call[:3] for call in vmctl.calls] == [['vmctl', 'create', '-i']]
    assert vmctl.calls[0][3] == os.path.join(str(host['disks']), unpause[2][0])
    assert os.listdir(str(host['disks'])) == ['web1.raw']              # the copy is gone
    assert not os.path.exists(vm_backup.pause_marker(the_plan.request))
    assert isinstance(paused, float) and 0 <= paused < 60 and manifest['paused_seconds'] == paused
    assert vmctl.marker == '%d\n' % os.getpid() and vmctl.copy_modes == [0o600]
    assert (manifest['state'], manifest['consistency']) == ('running', 'paused')
    assert removed == [old] and not os.path.exists(old)
    assert read_back(os.path.join(the_plan.backup, 'disk0.raw'), 3 * MIB, 25) == b'data written by the guest'


def test_a_vm_paused_by_someone_else_is_copied_and_left_paused(host):
    the_plan = plan(host, 'paused')
    vmctl = host['recording'](host['env'], str(host['disks']))
    manifest, _removed, paused = vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert vmctl.events == [] and paused is None and manifest['consistency'] == 'paused'
    assert vmctl.calls[0][3].startswith(os.path.join(str(host['disks']), '.web1.raw.vmm_backup-'))


def test_a_failed_unpause_says_the_vm_is_still_paused_and_leaves_the_marker(host):
    the_plan = plan(host, 'running')
    vmctl = host['recording'](host['env'], str(host['disks']), unpause_fails=True)
    with pytest.raises(BackupError, match=r'^VM web1 is still paused: vmctl unpause failed \(unpause vm command failed: '
                                          r'Invalid argument\); run vmctl unpause web1$'):
        vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert os.path.exists(vm_backup.pause_marker(the_plan.request))   # the next run unpauses it
    assert os.listdir(str(host['disks'])) == ['web1.raw']
    assert os.listdir(str(host['dest'])) == ['.web1.vmm_backup-paused']


def test_a_failed_copy_leaves_no_partial_backup(host):
    the_plan = plan(host, 'running')

    class FailingCreate(host['recording']):
        def create(self, path, size=None, base=None, source=None, fmt=None):
            with open(path, 'wb') as half:
                half.write(b'half')
            raise VmctlError('failed to write to destination')

    vmctl = FailingCreate(host['env'], str(host['disks']))
    with pytest.raises(VmctlError):
        vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert os.listdir(str(host['dest'])) == [] and os.listdir(str(host['disks'])) == ['web1.raw']
    assert [event[0] for event in vmctl.events] == ['pause', 'unpause']


def test_a_copy_whose_source_changed_is_made_again(host, monkeypatch):
    copies = []
    real_copy = disk_image._copy_sparse  # pylint: disable=protected-access

    def copy_while_written(source, target, size, chunk=MIB):
        real_copy(source, target, size, chunk)
        copies.append(size)
        if len(copies) == 1:
            time.sleep(0.01)
            with open(host['disk'], 'r+b') as disk:    # a write that was in flight lands now
                disk.seek(5 * MIB)
                disk.write(b'late')
    monkeypatch.setattr(disk_image, '_copy_sparse', copy_while_written)
    copy = vm_backup._stable_copy(str(host['disk']))  # pylint: disable=protected-access
    assert len(copies) == 2 and read_back(copy, 5 * MIB, 4) == b'late'
    assert sorted(os.listdir(str(host['disks']))) == sorted(['web1.raw', os.path.basename(copy)])


def test_a_source_that_keeps_changing_is_not_backed_up(host, monkeypatch):
    real_copy = disk_image._copy_sparse  # pylint: disable=protected-access
    writes = []

    def copy_while_written(source, target, size, chunk=MIB):
        real_copy(source, target, size, chunk)
        time.sleep(0.01)
        with open(host['disk'], 'r+b') as disk:
            disk.write(b'%d' % len(writes))
        writes.append(1)
    monkeypatch.setattr(disk_image, '_copy_sparse', copy_while_written)
    with pytest.raises(BackupError, match=r'^%s kept changing while the VM was paused \(3 copies\); nothing was backed up$'
                       % host['disk']):
        vm_backup._stable_copy(str(host['disk']))  # pylint: disable=protected-access
    assert len(writes) == vm_backup.COPY_ATTEMPTS == 3
    assert os.listdir(str(host['disks'])) == ['web1.raw']


@pytest.mark.skipif(not shutil.which('qemu-io'), reason='qemu-io (qemu-utils) is not installed')
def test_an_overlay_is_copied_with_its_base(host):
    disks = host['disks']
    vmctl_bin = os.path.join(LAB_BIN, 'vmctl')
    subprocess.run([vmctl_bin, 'create', '-s', '8M', 'base.qcow2'], cwd=str(disks), env=host['env'], check=True, capture_output=True)
    subprocess.run(['qemu-io', '-c', 'write -P 0x11 0 64k', 'base.qcow2'], cwd=str(disks), check=True, capture_output=True)
    subprocess.run([vmctl_bin, 'create', '-b', 'base.qcow2', 'web1.qcow2'], cwd=str(disks), env=host['env'], check=True,
                   capture_output=True)
    subprocess.run(['qemu-io', '-c', 'write -P 0x5a 1M 64k', 'web1.qcow2'], cwd=str(disks), check=True, capture_output=True)
    host['conf'].write_text('vm "web1" {\n\tdisk "%s"\n}\n' % (disks / 'web1.qcow2'))
    the_plan = plan(host, 'running')
    assert the_plan.disks[0].chain == [str(disks / 'web1.qcow2'), str(disks / 'base.qcow2')]
    vm_backup.take_backup(the_plan, host['recording'](host['env'], str(disks)), now=NOW)
    image = os.path.join(the_plan.backup, 'disk0.qcow2')
    info = json.loads(subprocess.run(['qemu-img', 'info', '--output=json', image], check=True, capture_output=True).stdout)
    assert info['format'] == 'qcow2' and 'backing-filename' not in info and info['virtual-size'] == 8 * MIB
    for pattern, offset in (('0x11', '0'), ('0x5a', '1M')):
        read = subprocess.run(['qemu-io', '-r', '-c', 'read -P %s %s 64k' % (pattern, offset), image], check=True,
                              capture_output=True, text=True)
        assert 'read 65536/65536' in read.stdout and 'Pattern verification failed' not in read.stdout


def test_diff_lists_the_backups_before_and_after(host):
    old = make_backup(host['dest'], 'web1-20261130T030000Z')
    kept = make_backup(host['dest'], 'web1-20261130T040000Z')
    the_plan = plan(host, 'stopped', keep=2)
    assert the_plan.expire == [old]
    assert vm_backup.diff(the_plan) == {
        'before': {'backups': ['web1-20261130T030000Z', 'web1-20261130T040000Z']},
        'after': {'backups': [os.path.basename(kept), 'web1-20261201T030000Z']},
        'before_header': str(host['dest']), 'after_header': str(host['dest'])}


@pytest.mark.skipif(not shutil.which('qemu-io'), reason='qemu-io (qemu-utils) is not installed')
def test_a_disk_named_through_a_link_is_copied_beside_the_file_it_is(host):
    """vmd reads a relative base from the disk's real directory (vioqcow2.c virtio_qcow2_get_base), so the copy
    made while paused must sit there too, not beside the link."""
    real, links = host['disks'] / 'real', host['disks'] / 'links'
    real.mkdir()
    links.mkdir()
    vmctl_bin = os.path.join(LAB_BIN, 'vmctl')
    subprocess.run([vmctl_bin, 'create', '-s', '8M', 'base.qcow2'], cwd=str(real), env=host['env'], check=True, capture_output=True)
    subprocess.run(['qemu-io', '-c', 'write -P 0x11 0 64k', 'base.qcow2'], cwd=str(real), check=True, capture_output=True)
    subprocess.run([vmctl_bin, 'create', '-b', 'base.qcow2', 'web1.qcow2'], cwd=str(real), env=host['env'], check=True,
                   capture_output=True)
    os.symlink('../real/web1.qcow2', str(links / 'web1.qcow2'))
    host['conf'].write_text('vm "web1" {\n\tdisk "%s"\n}\n' % (links / 'web1.qcow2'))
    the_plan = plan(host, 'running')
    vmctl = host['recording'](host['env'], str(real))
    vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert vmctl.events[1][2][0].startswith('.web1.qcow2.vmm_backup-')     # the copy, beside the real file
    read = subprocess.run(['qemu-io', '-r', '-c', 'read -P 0x11 0 64k', os.path.join(the_plan.backup, 'disk0.qcow2')],
                          check=True, capture_output=True, text=True)
    assert 'read 65536/65536' in read.stdout and 'Pattern verification failed' not in read.stdout
    leftover = real / '.web1.qcow2.vmm_backup-0badf00d.tmp'
    leftover.write_bytes(b'')
    assert vm_backup.leftovers(the_plan.request, the_plan.disks) == [str(leftover)]


def test_a_hundred_backups_in_one_second_is_the_limit(host):
    dest = host['dest']
    request = request_for(host)
    make_backup(dest, 'web1-20261201T030000Z')
    for suffix in range(1, 99):
        make_backup(dest, 'web1-20261201T030000Z-%d' % suffix)
    assert vm_backup.new_backup_path(request, NOW) == str(dest / 'web1-20261201T030000Z-99')
    make_backup(dest, 'web1-20261201T030000Z-99')
    with pytest.raises(BackupError) as error:
        vm_backup.new_backup_path(request, NOW)
    assert str(error.value) == 'dest: %s already holds 100 backups of web1 made in the same second' % dest


def test_runs_of_one_vm_take_turns(host):
    request = request_for(host)
    lock_file = os.path.join(str(host['dest']), '.web1.vmm_backup-lock')
    with vm_backup.vm_lock(request, 5):
        assert os.stat(lock_file).st_mode & 0o777 == 0o600
        with open(lock_file) as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)     # held
        with pytest.raises(BackupError) as error:
            with vm_backup.vm_lock(request, 1):
                pass
        assert str(error.value) == 'another vmm_backup run of web1 holds %s and did not finish within 1 s' % lock_file
    with open(lock_file) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)             # released when the run ends
        released = threading.Timer(0.3, lambda: fcntl.flock(other, fcntl.LOCK_UN))
        released.start()
        started = time.monotonic()
        with vm_backup.vm_lock(request, 5):                           # waits for the holder, then takes it
            assert time.monotonic() - started >= 0.25
        released.join()


def test_a_bad_vm_conf_is_named(host):
    host['conf'].write_text('vm "web1" {\n\tdisk\n')
    with pytest.raises(BackupError, match=r'^vm_conf: '):
        vm_backup.read_definition(request_for(host))


def test_a_disk_that_is_not_an_image_is_named(host):
    os.unlink(host['disk'])
    host['disk'].mkdir()
    with pytest.raises(BackupError, match=r'^disk 0 of VM web1 %s is a directory; give the path of an image file$' % host['disk']):
        vm_backup.source_disks(vm_backup.read_definition(request_for(host)))


def test_the_pause_is_measured_in_milliseconds(host, monkeypatch):
    clock = iter([1000.0, 1000.1234567])
    monkeypatch.setattr(vm_backup.time, 'monotonic', lambda: next(clock))
    the_plan = plan(host, 'running')
    vmctl = host['recording'](host['env'], str(host['disks']))
    assert vm_backup._copy_tops_paused(the_plan, vmctl, {}) == 0.123  # pylint: disable=protected-access


def test_the_manifest_is_a_json_text_file(host):
    the_plan = plan(host, 'stopped')
    vm_backup.take_backup(the_plan, host['recording'](host['env'], str(host['disks'])), now=NOW)
    with open(os.path.join(the_plan.backup, 'manifest.json')) as handle:
        text = handle.read()
    assert text.endswith('}\n') and text.startswith('{\n  "consistency": "stopped",\n')


def test_a_failed_copy_while_paused_leaves_no_copy(host, monkeypatch):
    def copy_fails(source, target, size, chunk=MIB):
        target.write(b'half')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(disk_image, '_copy_sparse', copy_fails)
    with pytest.raises(OSError, match='No space left on device'):
        vm_backup._stable_copy(str(host['disk']))  # pylint: disable=protected-access
    assert os.listdir(str(host['disks'])) == ['web1.raw']


class WrongImage:
    """What a faulty vmctl create -i could leave: nothing, another format, a smaller image, an overlay."""

    def __init__(self, recording, env, watch, kind):
        class Faulty(recording):
            def create(self, path, size=None, base=None, source=None, fmt=None):
                bare = path.split(':', 1)[-1]
                lab = os.path.join(LAB_BIN, 'vmctl')
                if kind == 'nothing':
                    return ''
                if kind == 'format':
                    args = ['create', '-s', '8M', 'qcow2:' + bare]
                elif kind == 'size':
                    args = ['create', '-s', '4M', 'raw:' + bare]
                else:
                    subprocess.run([lab, 'create', '-s', '8M', os.path.join(os.path.dirname(bare), 'b.qcow2')], env=env, check=True,
                                   capture_output=True)
                    args = ['create', '-b', 'b.qcow2', 'qcow2:' + bare]
                subprocess.run([lab] + args, cwd=os.path.dirname(bare), env=env, check=True, capture_output=True)
                return ''
        self.vmctl = Faulty(env, watch)


@pytest.mark.parametrize('kind, message', [
    ('nothing', r'^vmctl create -i reported success but .*/disk0\.raw does not exist$'),
    ('format', r'^the copy of %s is not a whole image: format qcow2 instead of raw$'),
    ('size', r"^the copy of %s is not a whole image: size 4194304, smaller than the disk's 8388608$"),
])
def test_a_copy_that_is_not_the_whole_disk_is_refused(host, kind, message):
    the_plan = plan(host, 'stopped')
    vmctl = WrongImage(host['recording'], host['env'], str(host['disks']), kind).vmctl
    pattern = message % host['disk'] if '%s' in message else message
    with pytest.raises(BackupError, match=pattern):
        vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert os.listdir(str(host['dest'])) == []


def test_a_copy_with_a_base_is_refused(host):
    overlay = host['disks'] / 'web1.qcow2'
    subprocess.run([os.path.join(LAB_BIN, 'vmctl'), 'create', '-s', '8M', str(overlay)], env=host['env'], check=True, capture_output=True)
    host['conf'].write_text('vm "web1" {\n\tdisk "%s"\n}\n' % overlay)
    the_plan = plan(host, 'stopped')
    vmctl = WrongImage(host['recording'], host['env'], str(host['disks']), 'base').vmctl
    with pytest.raises(BackupError, match=r'^the copy of %s is not a whole image: a base \(b\.qcow2\)$' % overlay):
        vm_backup.take_backup(the_plan, vmctl, now=NOW)
    assert os.listdir(str(host['dest'])) == []


def test_a_lock_error_other_than_held_is_not_taken_for_a_busy_lock(host, monkeypatch):
    def broken_flock(descriptor, operation):
        raise OSError(errno.EIO, 'Input/output error')
    monkeypatch.setattr(vm_backup.fcntl, 'flock', broken_flock)
    with pytest.raises(OSError, match='Input/output error'):
        with vm_backup.vm_lock(request_for(host), 5):
            pass
