# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_restore_plan: a vmm_backup manifest turned into vmm_disk items and vmm_vm options; anything else refused."""

from __future__ import annotations

import copy

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_restore_plan import vmm_restore_plan

SHA_A = 'a' * 64
SHA_B = 'b' * 64
INTERFACE = dict(switch='uplink', lladdr='fe:e1:ba:d0:01:02', locked=False, group=None, rdomain=None, local=False)


def manifest():
    """What vmm_backup writes for a VM with a qcow2 and a raw disk (tests/unit/plugins/module_utils/test_vm_backup.py)."""
    return dict(
        version=1, vm='web1', created_at='2026-12-01T03:00:00Z', host='vmm1', vm_conf='/etc/vm.conf', state='running',
        consistency='paused', paused_seconds=0.05,
        definition=dict(name='web1', instance_of=None, enabled=True, memory=268435456, boot=None, boot_device='disk',
                        cdrom='/var/vmm/install78.iso', disks=[dict(path='/var/vmm/web1.qcow2', format=None),
                                                               dict(path='/data/web1-data.raw', format='raw')],
                        interfaces=[INTERFACE], owner='alice', allow_instance=[], allow_instance_owner=None),
        disks=[dict(index=0, source='/var/vmm/web1.qcow2', file='disk0.qcow2', format='qcow2', virtual_size=4294967296,
                    bytes=393216, sha256=SHA_A, source_chain=['/var/vmm/web1.qcow2', '/var/vmm/golden.qcow2']),
               dict(index=1, source='/data/web1-data.raw', file='disk1.raw', format='raw', virtual_size=1048576,
                    bytes=1048576, sha256=SHA_B, source_chain=['/data/web1-data.raw'])])


def test_back_where_they_were():
    assert vmm_restore_plan(manifest()) == dict(
        vm='web1',
        disks=[dict(path='/var/vmm/web1.qcow2', image='disk0.qcow2', format='qcow2', size=4294967296, sha256=SHA_A),
               dict(path='/data/web1-data.raw', image='disk1.raw', format='raw', size=1048576, sha256=SHA_B)],
        vm_options=dict(name='web1', memory='268435456', owner='alice', boot_device='disk',
                        disks=[dict(path='/var/vmm/web1.qcow2', format='qcow2'), dict(path='/data/web1-data.raw', format='raw')],
                        interfaces=[INTERFACE]))


def test_into_another_directory_from_an_image_directory():
    plan = vmm_restore_plan(manifest(), disk_dir='/var/vmm2', image_dir='/var/vmm2/.web1.restore')
    assert [disk['path'] for disk in plan['disks']] == ['/var/vmm2/web1.qcow2', '/var/vmm2/web1-data.raw']
    assert plan['vm_options']['disks'] == [dict(path='/var/vmm2/web1.qcow2', format='qcow2'),
                                           dict(path='/var/vmm2/web1-data.raw', format='raw')]
    assert plan['disk_options'] == [
        dict(path='/var/vmm2/web1.qcow2', source='/var/vmm2/.web1.restore/disk0.qcow2', format='qcow2', mode='0600'),
        dict(path='/var/vmm2/web1-data.raw', source='/var/vmm2/.web1.restore/disk1.raw', format='raw', mode='0600')]
    assert 'disk_options' not in vmm_restore_plan(manifest())


def test_options_the_backup_did_not_have_are_left_to_vmm_vm():
    bare = manifest()
    bare['definition'].update(memory=None, owner=None, boot_device=None)
    assert vmm_restore_plan(bare)['vm_options'] == dict(
        name='web1', disks=[dict(path='/var/vmm/web1.qcow2', format='qcow2'), dict(path='/data/web1-data.raw', format='raw')],
        interfaces=[INTERFACE])


def broken(change):
    value = manifest()
    change(value)
    return value


BROKEN = [
    (lambda m: m.update(version=2), 'is not a version 1 manifest'),
    (lambda m: m.update(vm='web2'), 'has no definition of its VM'),
    (lambda m: m.pop('definition'), 'has no definition of its VM'),
    (lambda m: m['disks'].pop(), 'does not have one image per disk of the VM'),
    (lambda m: m.update(disks=[]), 'does not have one image per disk of the VM'),
    (lambda m: m['disks'][0].update(source='web1.qcow2'), 'has no absolute source path for disk 0'),
    (lambda m: m['disks'].__setitem__(1, 'disk1.raw'), 'has no absolute source path for disk 1'),
    (lambda m: m['disks'][1].update(file='../disk1.raw'), "names disk 1's image '../disk1.raw', not disk1.<its format>"),
    (lambda m: m['disks'][1].update(file='disk0.raw'), "names disk 1's image 'disk0.raw', not disk1.<its format>"),
    (lambda m: m['disks'][1].update(file='disk1.qcow2'), "names disk 1's image 'disk1.qcow2', not disk1.<its format>"),
    (lambda m: m['disks'][1].update(file='disk1.raw\n'), "names disk 1's image 'disk1.raw\\n', not disk1.<its format>"),
    (lambda m: m['disks'][0].update(sha256=SHA_A.upper()), 'has no sha256 for disk 0'),
    (lambda m: m['disks'][0].update(sha256=SHA_A + '\n'), 'has no sha256 for disk 0'),
    (lambda m: m['disks'][0].update(virtual_size=0), 'has no virtual_size for disk 0'),
    (lambda m: m['disks'][0].update(virtual_size=True), 'has no virtual_size for disk 0'),
    (lambda m: m['definition']['disks'][1].update(path='/data/other.raw'),
     'has a definition whose disk 1 is not the disk it copied'),
]


@pytest.mark.parametrize('change, message', BROKEN)
def test_anything_but_a_vmm_backup_manifest_is_refused(change, message):
    with pytest.raises(AnsibleFilterError) as error:
        vmm_restore_plan(broken(change))
    assert str(error.value) == ('vmm_restore_plan: the manifest %s; it is not a backup made by openbsd.vmm.vmm_backup' % message)


def test_not_a_manifest_at_all():
    with pytest.raises(AnsibleFilterError, match='the manifest is not a version 1 manifest'):
        vmm_restore_plan(['web1'])


def test_directories_must_be_absolute_and_disks_must_not_collide():
    with pytest.raises(AnsibleFilterError, match=r"^vmm_restore_plan: disk_dir must be an absolute path \(got 'vmm'\)$"):
        vmm_restore_plan(manifest(), disk_dir='vmm')
    with pytest.raises(AnsibleFilterError, match=r"^vmm_restore_plan: image_dir must be an absolute path \(got 'in'\)$"):
        vmm_restore_plan(manifest(), image_dir='in')
    same_name = copy.deepcopy(manifest())
    for record, defined in zip(same_name['disks'], same_name['definition']['disks']):
        record['source'] = defined['path'] = '/%s/web1.raw' % record['file'][:5]
        record.update(format='raw', file=record['file'].split('.')[0] + '.raw')
    with pytest.raises(AnsibleFilterError, match=r'^vmm_restore_plan: two disks would go to the same path in /var/vmm2: '
                                                 r'/var/vmm2/web1.raw, /var/vmm2/web1.raw$'):
        vmm_restore_plan(same_name, disk_dir='/var/vmm2')


def test_the_smallest_size_is_one_byte():
    tiny = manifest()
    tiny['disks'][1]['virtual_size'] = 1
    assert vmm_restore_plan(tiny)['disks'][1]['size'] == 1
