# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=absent with archive_dir: archive names, never overwriting, moves across file systems, refusals;
and the up-front validation of mode, owner and group."""

from __future__ import annotations

import calendar
import errno
import fcntl
import os

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image
from ansible_collections.openbsd.vmm.plugins.module_utils.disk_image import (
    DiskError, DiskInUse, apply_plan, archive_candidates, archive_image, archive_name, diff, inspect_image, plan_change,
    validate_file_attributes, validate_request,
)
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_qcow2 import write_vmctl_qcow2

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
NOW = calendar.timegm((2026, 11, 30, 15, 45, 7, 0, 0, 0))  # 2026-11-30 15:45:07 UTC


@pytest.fixture
def dirs(tmp_path):
    images, archive = tmp_path / 'disks', tmp_path / 'archive'
    images.mkdir()
    archive.mkdir()
    return str(images), str(archive)


def absent_plan(path, archive_dir, vm_conf=None, force=False):
    request = validate_request(dict(path=path, state='absent', archive_dir=archive_dir, vm_conf=vm_conf, force=force))
    return plan_change(request, inspect_image(request.path))


def write_raw(path, size=64 * MIB, data=b'boot block'):
    with open(path, 'wb') as image:
        image.write(data)
        image.truncate(size)
    return path


# -- names -------------------------------------------------------------------

@pytest.mark.parametrize('name, fmt, expected', [
    ('web1.qcow2', 'qcow2', 'web1-20261130T154507Z.qcow2'),
    ('db.img', 'raw', 'db-20261130T154507Z.img'),
    ('db.img', 'qcow2', 'db-20261130T154507Z.img'),
    ('plain.raw', 'raw', 'plain-20261130T154507Z.raw'),
    ('UP.QCOW2', 'qcow2', 'UP-20261130T154507Z.QCOW2'),
    ('disk', 'raw', 'disk-20261130T154507Z.raw'),
    ('v1.disk', 'qcow2', 'v1.disk-20261130T154507Z.qcow2'),
])
def test_archive_name_is_the_stem_the_utc_stamp_and_the_extension(name, fmt, expected):
    first = next(archive_candidates('/var/vmm/' + name, '/var/vmm/archive', fmt, now=NOW))
    assert first == '/var/vmm/archive/' + expected


def test_a_taken_name_gets_a_counter(dirs):
    images, archive = dirs
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    for taken in ('web1-20261130T154507Z.qcow2', 'web1-20261130T154507Z-1.qcow2'):
        open(os.path.join(archive, taken), 'w').close()
    assert archive_name(path, archive, 'qcow2', now=NOW) == os.path.join(archive, 'web1-20261130T154507Z-2.qcow2')


def test_an_existing_archive_of_the_same_second_is_never_overwritten(dirs, tmp_path):
    images, archive = dirs
    other_dir = tmp_path / 'other'
    other_dir.mkdir()
    # Two images called web1.qcow2 in two directories, archived into one directory in the same second.
    first = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    second = write_vmctl_qcow2(str(other_dir / 'web1.qcow2'), 2 * GIB)
    with open(first, 'rb') as handle:
        first_bytes = handle.read()
    assert archive_image(first, archive, 'qcow2', now=NOW) == os.path.join(archive, 'web1-20261130T154507Z.qcow2')
    assert archive_image(second, archive, 'qcow2', now=NOW) == os.path.join(archive, 'web1-20261130T154507Z-1.qcow2')
    with open(os.path.join(archive, 'web1-20261130T154507Z.qcow2'), 'rb') as handle:
        assert handle.read() == first_bytes  # the first archive is intact
    assert inspect_image(os.path.join(archive, 'web1-20261130T154507Z-1.qcow2')).size == 2 * GIB
    assert not os.path.exists(first) and not os.path.exists(second)


def test_every_name_of_the_second_taken_is_an_error_not_an_overwrite(dirs, monkeypatch):
    images, archive = dirs
    monkeypatch.setattr(disk_image, '_MAX_SAME_SECOND', 2)
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    for taken in ('web1-20261130T154507Z.qcow2', 'web1-20261130T154507Z-1.qcow2'):
        open(os.path.join(archive, taken), 'w').close()
    with pytest.raises(DiskError) as error:
        archive_image(path, archive, 'qcow2', now=NOW)
    assert str(error.value) == ('archive_dir: %s already holds 2 archives of web1.qcow2 made in the same second; '
                                'wait a second or clear them' % archive)
    assert os.path.exists(path)
    assert all(os.path.getsize(os.path.join(archive, name)) == 0 for name in os.listdir(archive))


# -- moving ------------------------------------------------------------------

def test_same_file_system_moves_the_inode_without_a_copy(dirs):
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'))
    inode = os.stat(path).st_ino
    archived = archive_image(path, archive, 'raw', now=NOW)
    assert os.stat(archived).st_ino == inode and os.stat(archived).st_nlink == 1
    assert not os.path.exists(path)


def test_across_file_systems_the_image_is_copied_synced_and_then_removed(dirs, monkeypatch):
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'), size=64 * MIB, data=b'\x01' * MIB)
    with open(path, 'r+b') as handle:
        handle.seek(40 * MIB)
        handle.write(b'tail data')
    os.chmod(path, 0o640)
    with open(path, 'rb') as handle:
        content = handle.read()
    inode = os.stat(path).st_ino
    real_link, synced = os.link, []

    def link(source, target):
        if source == path:  # the image itself lives on "another file system"
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_link(source, target)

    real_fsync = os.fsync

    def fsync(descriptor):
        synced.append(descriptor)
        return real_fsync(descriptor)

    monkeypatch.setattr(os, 'link', link)
    monkeypatch.setattr(os, 'fsync', fsync)
    archived = archive_image(path, archive, 'raw', now=NOW)
    assert archived == os.path.join(archive, 'plain-20261130T154507Z.raw')
    assert not os.path.exists(path)
    assert os.listdir(archive) == ['plain-20261130T154507Z.raw']  # no temporary copy left
    with open(archived, 'rb') as handle:
        assert handle.read() == content
    assert oct(os.stat(archived).st_mode & 0o7777) == oct(0o640)
    assert os.stat(archived).st_ino != inode and len(synced) >= 3  # a copy; the copy and both directories synced
    # The zeros were not written: the copy stays sparse like the image.
    assert os.stat(archived).st_blocks * 512 < 8 * MIB


def test_a_failed_copy_across_file_systems_keeps_the_image_and_leaves_no_copy(dirs, monkeypatch):
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'))
    real_link = os.link

    def link(source, target):
        if source == path:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_link(source, target)

    def fsync(descriptor):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, 'link', link)
    monkeypatch.setattr(os, 'fsync', fsync)
    with pytest.raises(OSError):
        archive_image(path, archive, 'raw', now=NOW)
    assert os.path.exists(path) and os.listdir(archive) == []


def test_another_error_than_exdev_is_not_a_reason_to_copy(dirs, monkeypatch):
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'))

    def link(source, target):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    copies = []
    monkeypatch.setattr(os, 'link', link)
    monkeypatch.setattr(disk_image, '_copy_to_archive', lambda *args: copies.append(args))
    with pytest.raises(OSError) as error:
        archive_image(path, archive, 'raw', now=NOW)
    assert error.value.errno == errno.EACCES and copies == []
    assert os.path.exists(path) and os.listdir(archive) == []


# -- planning and refusals ---------------------------------------------------------

def test_plan_names_the_archive_and_the_diff_shows_it(dirs):
    images, archive = dirs
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    plan = absent_plan(path, archive)
    assert plan.action == 'archive' and plan.after() is None
    assert plan.archived_to.startswith(os.path.join(archive, 'web1-')) and plan.archived_to.endswith('Z.qcow2')
    shown = diff(plan)
    assert shown['before'] == {'state': 'present', 'format': 'qcow2', 'size': '1.0G', 'base': None}
    assert shown['after'] == {'state': 'absent', 'archived_to': plan.archived_to}
    assert os.listdir(archive) == []  # planning moves nothing
    apply_plan(plan, None)
    assert not os.path.exists(path) and os.path.dirname(plan.archived_to) == archive
    assert inspect_image(plan.archived_to).size == GIB
    again = absent_plan(path, archive)
    assert again.action == 'none' and again.archived_to is None


def test_without_archive_dir_absent_still_deletes(dirs):
    images, archive = dirs
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    plan = absent_plan(path, None)
    assert plan.action == 'delete' and plan.archived_to is None


def test_an_image_held_by_a_running_vm_is_not_archived(dirs):
    images, archive = dirs
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    descriptor = os.open(path, os.O_RDONLY)  # what vmd does for a running VM's disk
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DiskInUse) as error:
            absent_plan(path, archive)
    finally:
        os.close(descriptor)
    assert str(error.value).startswith('%s is in use: a running VM holds it' % path)
    assert os.path.exists(path) and os.listdir(archive) == []


def test_a_disk_of_a_vm_in_vm_conf_is_not_archived(dirs, tmp_path):
    images, archive = dirs
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    vm_conf = tmp_path / 'vm.conf'
    vm_conf.write_text('vm "web1" {\n\tmemory 64M\n\tdisk "%s"\n}\n' % path)
    with pytest.raises(DiskError) as error:
        absent_plan(path, archive, vm_conf=str(vm_conf))
    assert str(error.value).startswith('state=absent: %s is a disk of VM web1 (disk %s) in %s' % (path, path, vm_conf))
    forced = absent_plan(path, archive, vm_conf=str(vm_conf), force=True)
    assert forced.action == 'archive'
    assert forced.reasons[1] == 'force: archiving although vm.conf uses it for web1 (disk %s)' % path


def test_the_base_of_an_image_beside_it_is_not_archived(dirs):
    images, archive = dirs
    base = write_vmctl_qcow2(os.path.join(images, 'golden.qcow2'), GIB)
    write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB, base='golden.qcow2')
    with pytest.raises(DiskError) as error:
        absent_plan(base, archive)
    assert str(error.value) == ('state=absent: %s is the base of %s; deleting it would break them. '
                                'Remove them first or set force: true' % (base, os.path.join(images, 'web1.qcow2')))
    assert os.listdir(archive) == []


def test_an_overlay_with_a_relative_base_is_archived_with_a_warning(dirs):
    images, archive = dirs
    write_vmctl_qcow2(os.path.join(images, 'golden.qcow2'), GIB)
    overlay = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB, base='golden.qcow2')
    plan = absent_plan(overlay, archive)
    assert plan.action == 'archive'
    assert plan.request.warnings == [
        "%s is an overlay on %s (stored as 'golden.qcow2'); from %s that name does not exist, so the archived image "
        "can only be used once moved back beside its base (the data is kept)"
        % (overlay, os.path.join(images, 'golden.qcow2'), archive)]
    same_dir = absent_plan(overlay, images)  # archived beside its base: the base is still found
    assert same_dir.request.warnings == []


@pytest.mark.parametrize('archive_dir, message', [
    ('archive', "archive_dir: 'archive' is not an absolute path; give the directory archived images are moved to, "
                "e.g. /var/vmm/archive"),
    ('/tmp/a\nb', "archive_dir: '/tmp/a\\nb' contains a control character (a line break, a tab, ...); no disk image "
                  "vmd reads is named like that (vm.conf cannot even quote it)"),
])
def test_a_bad_archive_dir_is_refused(dirs, archive_dir, message):
    images, archive = dirs
    path = write_vmctl_qcow2(os.path.join(images, 'web1.qcow2'), GIB)
    with pytest.raises(DiskError) as error:
        validate_request(dict(path=path, state='absent', archive_dir=archive_dir))
    assert str(error.value) == message


def test_a_missing_archive_dir_is_refused_only_when_there_is_an_image_to_archive(dirs):
    images, archive = dirs
    path = os.path.join(images, 'web1.qcow2')
    assert absent_plan(path, '/nonexistent/archive').action == 'none'
    write_vmctl_qcow2(path, GIB)
    with pytest.raises(DiskError) as error:
        absent_plan(path, '/nonexistent/archive')
    assert str(error.value) == ('archive_dir: /nonexistent/archive is not an existing directory, so %s cannot be '
                                'archived there; create it first (vmm_disk does not create directories), or omit '
                                'archive_dir to delete the image' % path)
    assert os.path.exists(path)


# -- mode, owner, group ------------------------------------------------------------

@pytest.mark.parametrize('params', [
    {'mode': '0640'}, {'mode': '640'}, {'mode': '0o640'}, {'mode': 0o640}, {'mode': 'u=rw,g=r,o='},
    {'mode': 'a-x'}, {'mode': 'g+X'}, {'owner': 'root'}, {'owner': '0'}, {'group': '0'}, {},
])
def test_good_file_attributes_pass(params):
    validate_file_attributes(params)


@pytest.mark.parametrize('params, message', [
    ({'mode': '0999'}, "mode: '0999' is neither octal (e.g. '0640') nor symbolic (e.g. u=rw,g=r)"),
    ({'mode': '0640\n'}, "mode: '0640\\n' is neither octal (e.g. '0640') nor symbolic (e.g. u=rw,g=r)"),
    ({'mode': 'rw'}, "mode: 'rw' is neither octal (e.g. '0640') nor symbolic (e.g. u=rw,g=r)"),
    ({'mode': 0o17777}, "mode: 8191 is not a permission mode; give octal digits as a string (e.g. '0640') or "
                        "symbolic modes (e.g. u=rw,g=r)"),
    ({'mode': True}, "mode: True is not a permission mode; give octal digits as a string (e.g. '0640') or "
                     "symbolic modes (e.g. u=rw,g=r)"),
    ({'owner': 'no-such-user-vmm'}, "owner: 'no-such-user-vmm' is not a user on this host (nor a numeric id)"),
    ({'group': 'no-such-group-vmm'}, "group: 'no-such-group-vmm' is not a group on this host (nor a numeric id)"),
])
def test_bad_file_attributes_are_refused_naming_the_option(params, message):
    with pytest.raises(DiskError) as error:
        validate_file_attributes(params)
    assert str(error.value) == message


@pytest.mark.parametrize('across', [False, True], ids=['link', 'copy'])
def test_both_directories_are_synced_after_the_move(dirs, monkeypatch, across):
    # the archive name is on disk before the image's own name goes, and its removal too, whatever crashes next
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'), size=MIB)
    real_link, synced = os.link, []

    def link(source, target):
        if across and source == path:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_link(source, target)

    monkeypatch.setattr(os, 'link', link)
    monkeypatch.setattr(disk_image, '_sync_directory', synced.append)
    archive_image(path, archive, 'raw', now=NOW)
    assert synced == [archive, images]


def across_file_systems(monkeypatch, path):
    real_link = os.link

    def link(source, target):
        if source == path:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_link(source, target)

    monkeypatch.setattr(os, 'link', link)


def test_a_copy_across_file_systems_keeps_the_owner(dirs, monkeypatch):
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'), size=MIB)
    os.chown(path, 1234, 2345)
    across_file_systems(monkeypatch, path)
    archived = archive_image(path, archive, 'raw', now=NOW)
    assert (os.stat(archived).st_uid, os.stat(archived).st_gid) == (1234, 2345)


def test_a_short_copy_across_file_systems_keeps_the_image(dirs, monkeypatch):
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'), size=2 * MIB, data=b'\x01' * MIB)
    across_file_systems(monkeypatch, path)
    monkeypatch.setattr(disk_image, '_copy_sparse', lambda source, target, size: target.write(source.read(MIB)))
    with pytest.raises(DiskError) as info:
        archive_image(path, archive, 'raw', now=NOW)
    assert str(info.value) == ('archive: the copy of %s in %s has %d bytes instead of %d; the image is kept'
                               % (path, archive, MIB, 2 * MIB))
    assert os.path.getsize(path) == 2 * MIB and os.listdir(archive) == []


@pytest.mark.parametrize('umask', [0o000, 0o022])
def test_a_copy_across_file_systems_is_0600_until_it_is_complete(dirs, monkeypatch, umask):
    # The image may hold secrets: whatever the umask, nobody but the owner may open the copy while it is
    # written; the image's own mode (0644 here) is set only once the copy is complete.
    images, archive = dirs
    path = write_raw(os.path.join(images, 'plain.raw'), size=2 * MIB, data=b'\x01' * MIB)
    os.chmod(path, 0o644)
    across_file_systems(monkeypatch, path)
    real_copy, modes = disk_image._copy_sparse, []

    def copy_sparse(source, target, size):
        modes.append(os.fstat(target.fileno()).st_mode & 0o7777)
        return real_copy(source, target, size)

    monkeypatch.setattr(disk_image, '_copy_sparse', copy_sparse)
    old = os.umask(umask)
    try:
        archived = archive_image(path, archive, 'raw', now=NOW)
    finally:
        os.umask(old)
    assert [oct(mode) for mode in modes] == [oct(0o600)]
    assert oct(os.stat(archived).st_mode & 0o7777) == oct(0o644)
