# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_image: inspect, validate, plan and apply; images are made by the lab's vmctl (tests/lab)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import time

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image
from ansible_collections.openbsd.vmm.plugins.module_utils.disk_image import DiskError, DiskInUse
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import Vmctl, VmctlError
from ansible_collections.openbsd.vmm.tests.unit.plugins.module_utils.test_qcow2 import write_vmctl_qcow2

MIB = 1024 * 1024
GIB = 1024 * MIB


LAB_BIN = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'lab', 'bin'))
pytestmark = pytest.mark.skipif(not os.access(os.path.join(LAB_BIN, 'vmctl'), os.X_OK), reason='the lab (tests/lab) is not present')


def lab_init(root):
    """A lab root made by `lab init` (tests/lab): the lab's vmctl reads its faults from there."""
    env = dict(os.environ, VMM_LAB_ROOT=str(root), LANG='C')
    subprocess.run([os.path.join(LAB_BIN, 'lab'), 'init'], env=env, check=True, capture_output=True)
    return env


@pytest.fixture(scope='module')
def lab_env(tmp_path_factory):
    return lab_init(tmp_path_factory.mktemp('lab') / 'root')


class LabVmctl(Vmctl):
    """The product's Vmctl running the lab's vmctl (labsim/images.py, modelled on vmctl/main.c and
    vmd's vioqcow2.c/vioraw.c): what an image holds is decided outside the code under test.

    ``wrong_size`` stands for a vmctl that wrote a copy of another size (a MiB more) than asked.
    """

    def __init__(self, env, wrong_size=False, flip_byte=None):
        super().__init__(binary=os.path.join(LAB_BIN, 'vmctl'), environ=env)
        self.cwds = []
        self.wrong_size = wrong_size
        self.flip_byte = flip_byte          # a copy whose byte at this offset differs from the source's

    def run(self, args, timeout=None, check=True):
        self.cwds.append(os.getcwd())
        return super().run(args, timeout=timeout, check=check)

    def create(self, path, size=None, base=None, source=None, fmt=None):
        result = super().create(path, size=size, base=base, source=source, fmt=fmt)
        if self.wrong_size:
            os.truncate(path, os.path.getsize(path) + MIB)
        if self.flip_byte is not None:
            with open(path, 'r+b') as image:
                image.seek(self.flip_byte)
                old = image.read(1)
                image.seek(self.flip_byte)
                image.write(bytes([old[0] ^ 0xff]))
        return result


@pytest.fixture
def fake(lab_env):
    return LabVmctl(lab_env)


def make_raw(path, size, data=b''):
    with open(path, 'wb') as image:
        image.write(data)
        image.truncate(size)
    return str(path)


def snapshot(directory):
    """Names, modes and content hashes of everything in ``directory``: proves nothing changed."""
    state = {}
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        info = os.lstat(full)
        digest = None
        if os.path.isfile(full):
            with open(full, 'rb') as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
        state[name] = (info.st_mode, info.st_size, digest)
    return state


def params(path, **overrides):
    values = dict(path=str(path), state='present', size=None, format=None, base=None, source=None, grow=False, force=False)
    values.update(overrides)
    return values


def plan_for(**kwargs):
    request = disk_image.validate_request(params(**kwargs))
    return disk_image.plan_change(request, disk_image.inspect_image(request.path))


@pytest.fixture
def held(tmp_path):
    """Hold vmd's lock on a file the way a running VM does (a separate open file description)."""
    handles = []

    def hold(path):
        handle = open(path, 'rb')
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handles.append(handle)
    yield hold
    for handle in handles:
        handle.close()


# -- inspecting ----------------------------------------------------------------

def test_inspect_raw_and_qcow2(tmp_path):
    raw = make_raw(tmp_path / 'a.img', 3 * MIB)
    base = write_vmctl_qcow2(str(tmp_path / 'b.qcow2'), GIB)
    overlay = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), GIB, base='b.qcow2')
    assert disk_image.inspect_image(raw).as_dict() == dict(path=raw, format='raw', size=3 * MIB, size_human='3.0M', base=None)
    assert (disk_image.inspect_image(base).format, disk_image.inspect_image(base).size) == ('qcow2', GIB)
    assert disk_image.inspect_image(overlay).base == 'b.qcow2'
    assert disk_image.inspect_image(str(tmp_path / 'missing.img')) is None


@pytest.mark.parametrize('name, content, message', [
    ('notes.img', b'hello\n', 'is not a whole number of MiB'),
    ('empty.raw', b'', r'size \(0 bytes\)'),
    ('fake.qcow2', b'\0' * MIB, 'ends in .qcow2 but it has no qcow2 header'),
    ('broken.img', b'QFI\xfb\0\0\0\x03', 'truncated qcow2 header'),
])
def test_inspect_refuses_files_that_are_not_images(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DiskError, match=message):
        disk_image.inspect_image(str(path))


def test_inspect_refuses_a_directory(tmp_path):
    with pytest.raises(DiskError, match='is a directory'):
        disk_image.inspect_image(str(tmp_path))


@pytest.mark.parametrize('name, requested, expected', [
    ('d.qcow2', None, 'qcow2'), ('d.QCOW2', None, 'qcow2'), ('d.raw', None, 'raw'), ('d.img', None, 'raw'),
    ('d.qcow', None, 'raw'), ('d', None, 'raw'), ('d.img', 'qcow2', 'qcow2'), ('d.qcow2', 'raw', 'raw'),
])
def test_format_for_new_file_follows_vmctl(name, requested, expected):
    assert disk_image.format_for_new_file('/x/' + name, requested) == expected


# -- bad input: a clear error and an untouched directory ---------------------------

@pytest.fixture
def lab_dir(tmp_path):
    write_vmctl_qcow2(str(tmp_path / 'base.qcow2'), GIB)
    make_raw(tmp_path / 'plain.raw', 8 * MIB)
    (tmp_path / 'notes.txt').write_text('not a disk\n')
    (tmp_path / 'subdir').mkdir()
    return tmp_path


BAD_INPUTS = [
    (dict(name='d.img', size='0'), r"size: invalid size '0': a disk must be at least 1M"),
    (dict(name='d.img', size='abc'), r"size: invalid size 'abc'"),
    (dict(name='d.img', size='-1G'), r"size: invalid size '-1G': a size cannot be negative"),
    (dict(name='d.img', size='1B'), r"size: invalid size '1B': a disk must be at least 1M"),
    (dict(name='d.img', size='1X'), r'unit must be one of'),
    (dict(path='relative/d.img', size='1G'), r"path: 'relative/d.img' is not an absolute path"),
    (dict(name='nowhere/d.img', size='1G'), r'path: the directory .*nowhere does not exist'),
    (dict(name='d.qcow2', base='plain.raw'), r'base: .*plain.raw is not a qcow2 image'),
    (dict(name='d.qcow2', base='base.qcow2', size='2G'), r'size: 2.0G does not match the virtual size of base'),
    (dict(name='d.img', base='base.qcow2', format='raw'), r'base: only qcow2 images can have a base'),
    (dict(name='d.img', base='base.qcow2'), r'base: only qcow2 images can have a base'),
    (dict(name='d.qcow2', base='missing.qcow2'), r'base: .*missing.qcow2 does not exist'),
    (dict(name='notes.txt', size='1G'), r'notes.txt exists and is not a disk image'),
    (dict(name='subdir', size='1G'), r'path: .*subdir is a directory'),
    (dict(name='d.qcow2', base='base.qcow2', source='plain.raw'), r'base and source are mutually exclusive'),
    (dict(name='d.img', source='missing.raw'), r'source: .*missing.raw does not exist'),
    (dict(name='d.img', source='plain.raw', size='4M'), r'size: 4.0M is smaller than source'),
    (dict(name='d.img'), r'size: required to create'),
    (dict(name='plain.raw', size='4M'), r'size: shrinking is refused'),
    (dict(name='plain.raw', size='16M'), r'set grow: true'),
    (dict(name='plain.raw', size='8M', format='qcow2'), r'format is raw, requested qcow2; set force: true'),
]


@pytest.mark.parametrize('case, message', BAD_INPUTS, ids=[case[1][:40] for case in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_changes(lab_dir, case, message):
    case = dict(case)
    path = case.pop('path', None) or str(lab_dir / case.pop('name'))
    if case.get('source'):
        case['source'] = str(lab_dir / case['source'])
    before = snapshot(lab_dir)
    with pytest.raises(DiskError, match=message):
        plan_for(path=path, **case)
    assert snapshot(lab_dir) == before


# -- planning -------------------------------------------------------------------

def test_same_image_is_a_no_op(lab_dir, fake):
    plan = plan_for(path=lab_dir / 'plain.raw', size='8M', format='raw')
    assert (plan.action, plan.changed) == ('none', False)
    assert disk_image.apply_plan(plan, fake).size == 8 * MIB
    assert fake.calls == []


def test_no_op_without_size_on_existing_overlay(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'o.qcow2'), GIB, base='base.qcow2')
    assert plan_for(path=lab_dir / 'o.qcow2', base=str(lab_dir / 'base.qcow2')).action == 'none'
    assert plan_for(path=lab_dir / 'o.qcow2', base='base.qcow2').action == 'none'


def test_size_rounds_down_to_mib_with_a_warning(lab_dir):
    request = disk_image.validate_request(params(lab_dir / 'n.img', size='1500K'))
    assert request.size == MIB
    assert request.warnings == ['size 1500K is not a whole number of MiB; vmctl rounds it down to 1.0M']


def test_grow_refused_for_an_overlay(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'o.qcow2'), GIB, base='base.qcow2')
    with pytest.raises(DiskError, match='overlay on base.qcow2 and must keep'):
        plan_for(path=lab_dir / 'o.qcow2', size='2G', grow=True)


def test_shrink_refused_even_with_grow_and_force(lab_dir):
    with pytest.raises(DiskError, match='shrinking is refused'):
        plan_for(path=lab_dir / 'plain.raw', size='4M', grow=True, force=True)


def test_different_base_needs_force(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'other.qcow2'), GIB)
    write_vmctl_qcow2(str(lab_dir / 'o.qcow2'), GIB, base='base.qcow2')
    with pytest.raises(DiskError, match='base is base.qcow2, requested other.qcow2; set force: true'):
        plan_for(path=lab_dir / 'o.qcow2', base='other.qcow2')
    plan = plan_for(path=lab_dir / 'o.qcow2', base='other.qcow2', force=True)
    assert (plan.action, plan.base, plan.size) == ('replace', 'other.qcow2', GIB)


def test_vmd_unusable_image_is_reported_as_a_difference(lab_dir):
    path = write_vmctl_qcow2(str(lab_dir / 'r8.qcow2'), GIB)
    with open(path, 'r+b') as image:
        image.seek(96)
        image.write(b'\0\0\0\x03')
    with pytest.raises(DiskError, match='vmd cannot use the image: unsupported refcount size'):
        plan_for(path=path, size='1G')


def test_absent_refuses_a_base_in_use_by_other_images(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'o1.qcow2'), GIB, base='base.qcow2')
    write_vmctl_qcow2(str(lab_dir / 'o2.qcow2'), GIB, base=str(lab_dir / 'base.qcow2'))
    before = snapshot(lab_dir)
    with pytest.raises(DiskError, match=r'is the base of .*o1.qcow2, .*o2.qcow2; deleting it would break them.*force: true'):
        plan_for(path=lab_dir / 'base.qcow2', state='absent')
    assert snapshot(lab_dir) == before
    plan = plan_for(path=lab_dir / 'base.qcow2', state='absent', force=True)
    assert plan.action == 'delete'
    assert disk_image.apply_plan(plan, None) is None
    assert not (lab_dir / 'base.qcow2').exists()


def test_absent_of_a_missing_image_is_a_no_op(lab_dir):
    assert plan_for(path=lab_dir / 'gone.img', state='absent').action == 'none'


# -- the lock a running VM holds ---------------------------------------------------

@pytest.mark.parametrize('change', [
    dict(size='16M', grow=True),
    dict(size='8M', format='qcow2', force=True),
    dict(state='absent'),
])
def test_image_held_by_a_vm_is_never_touched(lab_dir, held, change):
    path = str(lab_dir / 'plain.raw')
    held(path)
    before = snapshot(lab_dir)
    with pytest.raises(DiskInUse, match=r'plain.raw is in use: a running VM holds it .*flock LOCK_EX'):
        plan_for(path=path, **change)
    assert snapshot(lab_dir) == before


def test_no_op_on_a_held_image_is_fine(lab_dir, held):
    held(str(lab_dir / 'plain.raw'))
    assert plan_for(path=lab_dir / 'plain.raw', size='8M').action == 'none'


def test_lock_released_after_check(lab_dir):
    path = str(lab_dir / 'plain.raw')
    disk_image.check_not_in_use(path)
    with open(path, 'rb') as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# -- applying ------------------------------------------------------------------------

def test_create_runs_one_vmctl_create(lab_dir, fake):
    plan = plan_for(path=lab_dir / 'new.qcow2', size='2G')
    image = disk_image.apply_plan(plan, fake)
    (argv,) = fake.calls  # made under a temporary name (format given: the name ends in .tmp), then put in place
    assert argv[:4] == ['vmctl', 'create', '-s', str(2 * GIB)]
    assert argv[4].startswith('qcow2:' + str(lab_dir / '.new.qcow2.vmm_disk-')) and argv[4].endswith('.tmp')
    assert sorted(os.listdir(lab_dir)) == ['base.qcow2', 'new.qcow2', 'notes.txt', 'plain.raw', 'subdir']
    assert (image.format, image.size, image.base) == ('qcow2', 2 * GIB, None)


def test_create_overlay_with_a_relative_base_runs_in_the_image_directory(lab_dir, fake, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(str(tmp_path_factory.mktemp('elsewhere')))
    plan = plan_for(path=lab_dir / 'o.qcow2', base='base.qcow2')
    image = disk_image.apply_plan(plan, fake)
    (argv,) = fake.calls
    assert argv[:4] == ['vmctl', 'create', '-b', 'base.qcow2'] and argv[4].startswith('qcow2:' + str(lab_dir / '.o.qcow2.'))
    assert fake.cwds == [str(lab_dir)]
    assert (image.base, image.size) == ('base.qcow2', GIB)
    assert os.getcwd() != str(lab_dir)


def test_import_takes_the_source_size(lab_dir, fake):
    plan = plan_for(path=lab_dir / 'copy.img', source=str(lab_dir / 'plain.raw'))
    assert plan.size == 8 * MIB
    image = disk_image.apply_plan(plan, fake)
    (argv,) = fake.calls
    assert argv[:6] == ['vmctl', 'create', '-i', str(lab_dir / 'plain.raw'), '-s', str(8 * MIB)]
    assert argv[6].startswith('raw:' + str(lab_dir / '.copy.img.vmm_disk-'))
    assert image.size == 8 * MIB


def test_grow_keeps_data_mode_and_replaces_atomically(lab_dir, fake):
    path = make_raw(lab_dir / 'data.raw', 4 * MIB, data=b'precious' * 1000)
    os.chmod(path, 0o640)
    os.chown(path, 1234, 2345)
    inode = os.stat(path).st_ino
    plan = plan_for(path=path, size='16M', grow=True)
    image = disk_image.apply_plan(plan, fake)
    assert image.size == 16 * MIB and os.path.getsize(path) == 16 * MIB
    with open(path, 'rb') as grown:
        assert grown.read(8000) == b'precious' * 1000
    assert os.stat(path).st_mode & 0o777 == 0o640 and (os.stat(path).st_uid, os.stat(path).st_gid) == (1234, 2345)
    assert os.stat(path).st_ino != inode  # a new file renamed into place, not written over
    (argv,) = fake.calls
    assert argv[:6] == ['vmctl', 'create', '-i', path, '-s', str(16 * MIB)]
    assert argv[6].startswith('raw:' + str(lab_dir / '.data.raw.vmm_disk-'))
    assert sorted(os.listdir(lab_dir)) == ['base.qcow2', 'data.raw', 'notes.txt', 'plain.raw', 'subdir']


@pytest.mark.parametrize('failure, message', [
    ('disk-full', 'vmctl said: vmctl: failed to create destination image file'),
    ('wrong-size', r'vmctl create made .*/\.data\.raw\.vmm_disk-[0-9a-f]+\.tmp with size 17825792 instead of 16777216'),
])
def test_failed_grow_keeps_the_original(lab_dir, tmp_path_factory, failure, message):
    path = make_raw(lab_dir / 'data.raw', 4 * MIB, data=b'precious')
    env = lab_init(tmp_path_factory.mktemp('faulty') / 'root')
    if failure == 'disk-full':
        subprocess.run([os.path.join(LAB_BIN, 'lab'), 'fault', 'set', 'disk-full'], env=env, check=True)
    before = snapshot(lab_dir)
    plan = plan_for(path=path, size='16M', grow=True)
    with pytest.raises((DiskError, VmctlError), match=message):
        disk_image.apply_plan(plan, LabVmctl(env, wrong_size=failure == 'wrong-size'))
    assert snapshot(lab_dir) == before


def test_replace_with_force_changes_format(lab_dir, fake):
    plan = plan_for(path=lab_dir / 'plain.raw', size='8M', format='qcow2', force=True)
    image = disk_image.apply_plan(plan, fake)
    assert (image.format, image.size) == ('qcow2', 8 * MIB)
    assert fake.calls[0][:4] == ['vmctl', 'create', '-s', str(8 * MIB)]
    assert fake.calls[0][4].startswith('qcow2:')


def test_diff_shows_format_size_and_base(lab_dir):
    plan = plan_for(path=lab_dir / 'plain.raw', size='16M', grow=True)
    assert disk_image.diff(plan)['before'] == dict(state='present', format='raw', size='8.0M', base=None)
    assert disk_image.diff(plan)['after'] == dict(state='present', format='raw', size='16.0M', base=None)
    created = disk_image.diff(plan_for(path=lab_dir / 'o.qcow2', base='base.qcow2'))
    assert created['before'] == dict(state='absent')
    assert created['after'] == dict(state='present', format='qcow2', size='1.0G', base='base.qcow2')


def test_grow_through_a_symlink_replaces_the_target_and_keeps_the_link(lab_dir, fake):
    real_dir = lab_dir / 'subdir'
    target = make_raw(real_dir / 'data.raw', 4 * MIB, data=b'kept')
    link = lab_dir / 'link.raw'
    link.symlink_to(target)
    plan = plan_for(path=link, size='8M', grow=True)
    disk_image.apply_plan(plan, fake)
    assert link.is_symlink() and os.path.getsize(target) == 8 * MIB
    with open(target, 'rb') as grown:
        assert grown.read(4) == b'kept'
    assert sorted(os.listdir(real_dir)) == ['data.raw']


# -- interrupted runs: a half image never under the real name; leftovers removed -----------------

KILLED_RUN = r'''
import os, signal, sys
from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image


class KilledVmctl:
    """vmctl create -i killed half-way through the copy (kill -9: nothing of ours runs after it)."""
    calls = []

    def create(self, path, size=None, base=None, source=None, fmt=None):
        with open(path.split(':', 1)[-1] if ':' in path else path, 'xb') as image, open(source, 'rb') as original:
            image.write(original.read(3 * 1024 * 1024 + 17))
            image.flush()
            os.kill(os.getpid(), signal.SIGKILL)


request = disk_image.validate_request(dict(path=sys.argv[1], state='present', size=None, format=None, base=None,
                                           source=sys.argv[2], grow=False, force=False))
plan = disk_image.plan_change(request, disk_image.inspect_image(request.path))
with disk_image.run_lock(request.path, timeout=0):
    disk_image.apply_plan(plan, KilledVmctl())
'''


def run_killed(path, source):
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    completed = subprocess.run([sys.executable, '-c', KILLED_RUN, str(path), str(source)], env=env, check=False)
    assert completed.returncode == -9


def test_a_killed_import_leaves_no_image_and_the_rerun_converges(lab_dir, fake):
    source = make_raw(lab_dir / 'big.raw', 8 * MIB, data=b'source data' * 1000)
    path = lab_dir / 'copy.raw'
    run_killed(path, source)
    assert not path.exists()  # the partial copy is not under the image's name
    (leftover,) = [name for name in os.listdir(lab_dir) if name.endswith('.tmp')]
    assert leftover.startswith('.copy.raw.vmm_disk-')
    assert disk_image.leftovers(str(path)) == sorted([str(lab_dir / leftover), disk_image.lock_path(str(path))])
    # the re-run: plans a create (not a no-op), removes what the killed run left, makes a whole copy
    plan = plan_for(path=path, source=source)
    assert plan.action == 'create'
    with disk_image.run_lock(str(path), timeout=0):
        image = disk_image.apply_plan(plan, fake)
    assert image.size == 8 * MIB
    with open(str(path), 'rb') as copy, open(source, 'rb') as original:
        assert copy.read() == original.read()
    assert sorted(os.listdir(lab_dir)) == ['base.qcow2', 'big.raw', 'copy.raw', 'notes.txt', 'plain.raw', 'subdir']
    assert plan_for(path=path, source=source).action == 'none'


def test_run_lock_removes_only_this_images_leftovers(lab_dir):
    mine = lab_dir / '.plain.raw.vmm_disk-0badc0de.tmp'
    other = lab_dir / '.base.qcow2.vmm_disk-0badc0de.tmp'
    similar = lab_dir / '.plain.raw.vmm_disk-0badc0de.tmp.keep'
    for leftover in (mine, other, similar):
        leftover.write_bytes(b'QFI\xfb partial')
    (lab_dir / '.plain.raw.vmm_disk-lock').write_text('999999\n')
    assert disk_image.leftovers(str(lab_dir / 'plain.raw')) == sorted([str(lab_dir / '.plain.raw.vmm_disk-lock'), str(mine)])
    with disk_image.run_lock(str(lab_dir / 'plain.raw'), timeout=0):
        assert not mine.exists() and other.exists() and similar.exists()
    assert not (lab_dir / '.plain.raw.vmm_disk-lock').exists()


def test_a_temporary_name_is_hidden_beside_the_image_with_8_random_hex_digits(tmp_path):
    # leftovers() finds a killed run's temporary images by this form: '.NAME.vmm_disk-' and '.tmp'.
    path = str(tmp_path / 'web1.qcow2')
    names = set(map(disk_image.temporary_path, [path] * 20))
    assert len(names) == 20
    for name in names:
        assert os.path.dirname(name) == str(tmp_path)
        assert re.fullmatch(r'\.web1\.qcow2\.vmm_disk-[0-9a-f]{8}\.tmp', os.path.basename(name)), name
        open(name, 'wb').close()
    assert disk_image.leftovers(path) == sorted(names)


def test_a_second_run_waits_then_names_the_holder(lab_dir):
    path = str(lab_dir / 'plain.raw')
    with disk_image.run_lock(path, timeout=0):
        with open(disk_image.lock_path(path)) as lock:
            assert lock.read() == '%d\n' % os.getpid()
        started = time.monotonic()
        with pytest.raises(disk_image.DiskBusy) as refused:
            with disk_image.run_lock(path, timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3      # it waited lock_timeout before giving up
    message = str(refused.value)
    assert 'another vmm_disk run (pid %d) holds its lock' % os.getpid() in message
    assert 'running VM' not in message
    with disk_image.run_lock(path, timeout=0):  # free again, and the file is gone
        pass
    assert not os.path.exists(disk_image.lock_path(path))


# -- absent: vm.conf users, symbolic links ----------------------------------------------------

def write_vm_conf(directory, disks):
    text = ''.join('vm "%s" {\n\tmemory 64M\n\tdisk "%s"\n}\n' % (name, disk) for name, disk in disks)
    (directory / 'vm.conf').write_text(text)
    return str(directory / 'vm.conf')


@pytest.mark.parametrize('disk, vm', [('plain.raw', 'web1'), ('over.qcow2', 'web2')], ids=['its-disk', 'a-base-below-its-disk'])
def test_absent_refuses_a_disk_vm_conf_uses(lab_dir, tmp_path_factory, disk, vm):
    etc = tmp_path_factory.mktemp('etc')
    write_vmctl_qcow2(str(lab_dir / 'over.qcow2'), GIB, base='base.qcow2')
    vm_conf = write_vm_conf(etc, [('web1', lab_dir / 'plain.raw'), ('web2', lab_dir / 'over.qcow2')])
    target = {'plain.raw': 'plain.raw', 'over.qcow2': 'base.qcow2'}[disk]
    before = snapshot(lab_dir)
    with pytest.raises(DiskError, match=r"is a disk of VM %s \(disk .*%s\) in %s .*set force: true" % (vm, disk, vm_conf)):
        plan_for(path=lab_dir / target, state='absent', vm_conf=vm_conf)
    assert snapshot(lab_dir) == before
    plan = plan_for(path=lab_dir / target, state='absent', vm_conf=vm_conf, force=True)
    assert plan.action == 'delete' and 'vm.conf uses it for %s' % vm in ' '.join(plan.reasons)


def test_absent_without_vm_conf_or_with_other_disks_deletes(lab_dir, tmp_path_factory):
    etc = tmp_path_factory.mktemp('etc')
    assert plan_for(path=lab_dir / 'plain.raw', state='absent', vm_conf=str(etc / 'missing.conf')).action == 'delete'
    vm_conf = write_vm_conf(etc, [('web1', lab_dir / 'base.qcow2')])
    assert plan_for(path=lab_dir / 'plain.raw', state='absent', vm_conf=vm_conf).action == 'delete'


def test_absent_with_vm_conf_in_a_missing_directory_is_refused(lab_dir):
    before = snapshot(lab_dir)
    with pytest.raises(DiskError, match=r'vm_conf: the directory of /nonexistent/vm.conf does not exist'):
        plan_for(path=lab_dir / 'plain.raw', state='absent', vm_conf='/nonexistent/vm.conf')
    assert snapshot(lab_dir) == before
    forced = plan_for(path=lab_dir / 'plain.raw', state='absent', vm_conf='/nonexistent/vm.conf', force=True)
    assert forced.action == 'delete' and 'without knowing the VMs' in ' '.join(forced.reasons)


def test_absent_with_an_unreadable_vm_conf_is_refused(lab_dir, tmp_path_factory):
    etc = tmp_path_factory.mktemp('etc')
    (etc / 'vm.conf').write_text('vm "web1" {\n\tdisk "/x"\n')
    with pytest.raises(DiskError, match=r'vm_conf: .*vm.conf cannot be read, so whether a VM uses the image is unknown'):
        plan_for(path=lab_dir / 'plain.raw', state='absent', vm_conf=str(etc / 'vm.conf'))


def test_absent_on_a_symlink_removes_the_link_only(lab_dir, tmp_path_factory):
    golden_dir = tmp_path_factory.mktemp('golden')
    golden = write_vmctl_qcow2(str(golden_dir / 'golden.qcow2'), GIB)
    os.chmod(golden, 0o444)
    link = lab_dir / 'golden.qcow2'
    link.symlink_to(golden)
    plan = plan_for(path=link, state='absent')
    assert plan.action == 'unlink'
    assert disk_image.apply_plan(plan, None) is None
    assert not os.path.lexists(str(link)) and os.path.exists(golden)


def test_absent_on_a_symlink_that_overlays_use_is_refused(lab_dir, tmp_path_factory):
    golden_dir = tmp_path_factory.mktemp('golden')
    golden = write_vmctl_qcow2(str(golden_dir / 'golden.qcow2'), GIB)
    link = lab_dir / 'golden.qcow2'
    link.symlink_to(golden)
    write_vmctl_qcow2(str(lab_dir / 'web1.qcow2'), GIB, base='golden.qcow2')
    before = snapshot(lab_dir)
    with pytest.raises(DiskError, match=r'the symbolic link .*golden.qcow2 is the base of .*web1.qcow2'):
        plan_for(path=link, state='absent')
    assert snapshot(lab_dir) == before and os.path.exists(golden)


def test_absent_on_an_image_that_overlays_reach_through_a_link_is_refused(lab_dir, tmp_path_factory):
    golden_dir = tmp_path_factory.mktemp('golden')
    golden = write_vmctl_qcow2(str(golden_dir / 'golden.qcow2'), GIB)
    (lab_dir / 'golden.qcow2').symlink_to(golden)
    write_vmctl_qcow2(str(lab_dir / 'web1.qcow2'), GIB, base='golden.qcow2')
    # asked through the link's directory: the real file is refused too, since web1 reaches it
    (lab_dir / 'real.qcow2').symlink_to(golden)
    request = disk_image.validate_request(params(lab_dir / 'real.qcow2', state='absent'))
    assert request.link is not None  # a link: only the link would go, and nothing uses real.qcow2
    assert disk_image.plan_change(request, None).action == 'unlink'
    # the golden image itself, seen from the overlays' directory: web1 reaches it through the link
    assert disk_image.images_based_on(golden, golden, [str(lab_dir)]) == [str(lab_dir / 'web1.qcow2')]


# -- checks issue 15's mutation run found untested ------------------------------------------------

@pytest.mark.parametrize('offset', [0, MIB - 1])
def test_a_raw_grow_whose_first_mib_differs_keeps_the_original(lab_dir, lab_env, offset):
    path = make_raw(lab_dir / 'data.raw', 4 * MIB, data=b'precious' * (MIB // 8))
    before = snapshot(lab_dir)
    plan = plan_for(path=path, size='16M', grow=True)
    with pytest.raises(DiskError, match='grow: the copy of %s differs from the original in its first MiB; the original is kept' % path):
        disk_image.apply_plan(plan, LabVmctl(lab_env, flip_byte=offset))
    assert snapshot(lab_dir) == before


def test_a_base_that_is_the_image_itself_is_refused(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'o.qcow2'), GIB)
    (lab_dir / 'alias.qcow2').symlink_to('o.qcow2')
    for base in ('o.qcow2', str(lab_dir / 'o.qcow2'), 'alias.qcow2'):
        with pytest.raises(DiskError, match='base: %s is the image itself' % base):
            plan_for(path=lab_dir / 'o.qcow2', base=base, force=True)


def test_a_source_that_is_the_image_itself_is_refused(lab_dir):
    with pytest.raises(DiskError, match='source: %s is the image itself' % (lab_dir / 'plain.raw')):
        plan_for(path=lab_dir / 'plain.raw', source=str(lab_dir / 'plain.raw'), force=True)


def chain(directory, length):
    """b1.qcow2 <- b2.qcow2 <- ... <- b<length>.qcow2 (each overlays the one before); returns the top name."""
    write_vmctl_qcow2(str(directory / 'b1.qcow2'), GIB)
    for number in range(2, length + 1):
        write_vmctl_qcow2(str(directory / ('b%d.qcow2' % number)), GIB, base='b%d.qcow2' % (number - 1))
    return 'b%d.qcow2' % length


def test_an_overlay_on_a_chain_of_three_makes_four_which_vmd_opens(lab_dir, fake):
    top = chain(lab_dir, 3)
    image = disk_image.apply_plan(plan_for(path=lab_dir / 'o.qcow2', base=top), fake)
    assert (image.base, image.size) == ('b3.qcow2', GIB)


def test_an_overlay_on_a_chain_of_four_is_refused(lab_dir):
    top = chain(lab_dir, 4)
    with pytest.raises(DiskError, match='base: %s already has a chain of 4 images; vmd opens at most 4 per disk' % (lab_dir / top)):
        plan_for(path=lab_dir / 'o.qcow2', base=top)


@pytest.mark.skipif(shutil.which('qemu-img') is None, reason='qemu-img (qemu-utils) is not installed')
@pytest.mark.parametrize('overlays', [0, 1])
def test_an_overlay_on_a_chain_with_other_clusters_than_vmctl_writes_is_refused(lab_dir, overlays):
    # qemu-img's image with 512 KiB clusters (an import, another tool's base); vmd would refuse the chain at start
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512k',
                    str(lab_dir / 'wide.qcow2'), '1G'], check=True)
    base = 'wide.qcow2'
    if overlays:
        write_vmctl_qcow2(str(lab_dir / 'mid.qcow2'), GIB, base='wide.qcow2')
        base = 'mid.qcow2'
    before = snapshot(lab_dir)
    within = ' (in the backing chain of %s)' % (lab_dir / 'mid.qcow2') if overlays else ''
    with pytest.raises(DiskError, match=re.escape(
            'base: %s%s has 512 KiB clusters; vmctl makes the overlay with 64 KiB clusters and vmd starts a VM only '
            'when every image of its disk shares one cluster size (vmd: all disk parts must share clustersize)'
            % (lab_dir / 'wide.qcow2', within))):
        plan_for(path=lab_dir / 'o.qcow2', base=base)
    assert snapshot(lab_dir) == before


def test_a_backing_chain_that_loops_is_refused(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'x.qcow2'), GIB, base='y.qcow2')
    write_vmctl_qcow2(str(lab_dir / 'y.qcow2'), GIB, base='x.qcow2')
    with pytest.raises(DiskError, match='base: the backing chain of %s loops back to %s' % (lab_dir / 'y.qcow2', lab_dir / 'y.qcow2')):
        plan_for(path=lab_dir / 'o.qcow2', base='y.qcow2')


def test_absent_refuses_the_deepest_base_of_a_chain_vmd_can_open(lab_dir):
    chain(lab_dir, 4)     # b4 -> b3 -> b2 -> b1: removing b1 would break b4
    with pytest.raises(DiskError, match=r'state=absent: %s is the base of .*b4\.qcow2' % (lab_dir / 'b1.qcow2')):
        plan_for(path=lab_dir / 'b1.qcow2', state='absent')


def test_a_forced_replacement_never_shrinks(lab_dir):
    before = snapshot(lab_dir)
    with pytest.raises(DiskError, match=r'size: shrinking is refused: %s is 8.0M, requested 4.0M' % (lab_dir / 'plain.raw')):
        plan_for(path=lab_dir / 'plain.raw', size='4M', format='qcow2', force=True)
    assert snapshot(lab_dir) == before


@pytest.mark.parametrize('option, kind', [('owner', 'user'), ('group', 'group')])
def test_an_unknown_owner_or_group_is_named(option, kind):
    with pytest.raises(DiskError, match=r"%s: 'no-such-%s-here' is not a %s on this host \(nor a numeric id\)" % (option, kind, kind)):
        disk_image.validate_file_attributes({option: 'no-such-%s-here' % kind})


def test_a_missing_base_ends_the_backing_chain(tmp_path):
    overlay = write_vmctl_qcow2(str(tmp_path / 'c.qcow2'), GIB, base='gone.qcow2')
    assert disk_image._backing_chain(overlay) == [overlay, str(tmp_path / 'gone.qcow2')]
    assert disk_image._backing_chain(str(tmp_path / 'gone.qcow2')) == [str(tmp_path / 'gone.qcow2')]


def test_copy_sparse_reads_only_the_size_asked_and_pads_a_short_source(tmp_path):
    source = io.BytesIO(b'a' * 300 + bytes(300) + b'b' * 400)
    target_path = tmp_path / 'copy'
    with open(target_path, 'wb') as target:
        disk_image._copy_sparse(source, target, 700, chunk=256)
    assert source.tell() == 700
    assert target_path.read_bytes() == b'a' * 300 + bytes(300) + b'b' * 100
    short = io.BytesIO(b'c' * 100)
    with open(target_path, 'wb') as target:
        disk_image._copy_sparse(short, target, 600, chunk=256)
    assert target_path.read_bytes() == b'c' * 100 + bytes(500)


def test_a_path_that_cannot_be_examined_is_an_error_naming_it(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(DiskError) as caught:
        disk_image.inspect_image(str(tmp_path / 'file' / 'd.img'), name='base')
    assert str(caught.value) == 'base %s cannot be examined: Not a directory' % (tmp_path / 'file' / 'd.img')


def test_raw_unreadable_and_broken_files_beside_an_image_do_not_depend_on_it(lab_dir):
    base = str(lab_dir / 'base.qcow2')
    write_vmctl_qcow2(str(lab_dir / 'web1.qcow2'), GIB, base='base.qcow2')
    (lab_dir / 'broken.qcow2').write_bytes(b'QFI\xfb\0\0\0\x03')
    unreadable = lab_dir / 'locked.qcow2'
    write_vmctl_qcow2(str(unreadable), GIB, base='base.qcow2')
    unreadable.chmod(0)
    try:
        found = disk_image.images_based_on(base)
    finally:
        unreadable.chmod(0o600)
    expected = [str(lab_dir / 'web1.qcow2')] if os.geteuid() != 0 else [str(unreadable), str(lab_dir / 'web1.qcow2')]
    assert found == expected


def test_a_relative_source_is_refused_before_it_is_looked_up(lab_dir, monkeypatch):
    monkeypatch.chdir(lab_dir)   # plain.raw exists relative to the working directory: still refused
    with pytest.raises(DiskError) as caught:
        plan_for(path=lab_dir / 'd.img', source='plain.raw')
    assert str(caught.value) == "source: 'plain.raw' is not an absolute path"


def test_a_copy_may_have_exactly_its_sources_size(lab_dir):
    plan = plan_for(path=lab_dir / 'd.img', source=str(lab_dir / 'plain.raw'), size='8M')
    assert (plan.action, plan.size) == ('create', 8 * MIB)


def test_sync_directory_closes_what_it_opens(tmp_path):
    before = sorted(os.listdir('/proc/self/fd'))
    disk_image._sync_directory(str(tmp_path))
    assert sorted(os.listdir('/proc/self/fd')) == before


def test_an_image_in_a_loop_is_not_its_own_dependent(tmp_path):
    first = write_vmctl_qcow2(str(tmp_path / 'a.qcow2'), GIB, base='b.qcow2')
    second = write_vmctl_qcow2(str(tmp_path / 'b.qcow2'), GIB, base='a.qcow2')
    assert disk_image.images_based_on(first) == [second]


def test_a_lock_timeout_of_0_gives_up_at_the_first_busy_try(lab_dir, monkeypatch):
    path = str(lab_dir / 'plain.raw')
    with disk_image.run_lock(path, timeout=0):
        monkeypatch.setattr(disk_image.time, 'monotonic', lambda: 1000.0)   # no time passes: the deadline is now
        with pytest.raises(disk_image.DiskBusy):
            with disk_image.run_lock(path, timeout=0):
                pass


def test_a_lock_file_replaced_while_it_was_opened_is_opened_again(lab_dir, monkeypatch):
    path = str(lab_dir / 'plain.raw')
    name = disk_image.lock_path(path)
    real_fstat, real_open, opened = os.fstat, os.open, []

    def fstat(descriptor):
        result = real_fstat(descriptor)
        if len(opened) == 1:   # the first open saw a file the holder removed just after
            return os.stat_result((result.st_mode, -1) + tuple(result)[2:])
        return result

    def counting_open(file, *args, **kwargs):
        if file == name:
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(disk_image.os, 'fstat', fstat)
    monkeypatch.setattr(disk_image.os, 'open', counting_open)
    with disk_image.run_lock(path, timeout=0):
        assert len(opened) == 2
    monkeypatch.undo()


# -- edges the full mutation run found unguarded (scripts/mutate.py) --------------------------------

def test_a_device_is_not_an_image():
    with pytest.raises(DiskError) as info:
        disk_image.inspect_image(os.devnull)
    assert str(info.value) == 'path %s is not a regular file; vmm_disk manages image files' % os.devnull


def test_deleting_an_image_nothing_uses_gives_one_reason(lab_dir):
    plan = plan_for(path=lab_dir / 'plain.raw', state='absent', force=True)
    assert (plan.action, plan.reasons) == ('delete', ['delete %s' % (lab_dir / 'plain.raw')])


def test_archive_names_run_out_after_1000_in_one_second(tmp_path):
    stamp = '19700101T000000Z'
    names = ['web1-%s.qcow2' % stamp] + ['web1-%s-%d.qcow2' % (stamp, suffix) for suffix in range(1, 999)]
    for name in names:
        (tmp_path / name).write_bytes(b'')
    assert disk_image.archive_name('/var/vmm/web1.qcow2', str(tmp_path), 'qcow2', now=0) == str(tmp_path / ('web1-%s-999.qcow2' % stamp))
    (tmp_path / ('web1-%s-999.qcow2' % stamp)).write_bytes(b'')
    with pytest.raises(DiskError) as info:
        disk_image.archive_name('/var/vmm/web1.qcow2', str(tmp_path), 'qcow2', now=0)
    assert str(info.value) == ('archive_dir: %s already holds 1000 archives of web1.qcow2 made in the same second; wait a second '
                               'or clear them' % tmp_path)


def test_verify_refuses_an_image_vmd_cannot_use(tmp_path):
    path = str(tmp_path / 'made.qcow2')
    write_vmctl_qcow2(path, GIB)
    with open(path, 'r+b') as image:
        image.seek(96)                      # refcount_order (qcow2 version 3 header)
        image.write((5).to_bytes(4, 'big'))
    plan = disk_image.Plan('create', disk_image.DiskRequest(path=str(tmp_path / 'disk.qcow2'), grow=False, force=False), None, format='qcow2', size=GIB)
    with pytest.raises(DiskError) as info:
        disk_image.verify(path, plan)
    assert str(info.value) == ('vmctl create made %s with unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)'
                               % path)


def test_a_link_loop_is_followed_32_times_as_the_kernel_does(tmp_path):
    # SYMLOOP_MAX (sys/syslimits.h) is 32: namei gives up with ELOOP after that many links
    os.symlink('b', str(tmp_path / 'a'))
    os.symlink('a', str(tmp_path / 'b'))
    names = disk_image.resolution(str(tmp_path / 'a'))
    assert len(names) == 32 and names[:3] == [str(tmp_path / 'a'), str(tmp_path / 'b'), str(tmp_path / 'a')]


def test_a_vm_conf_that_does_not_exist_yet_names_no_vm(tmp_path):
    assert disk_image.vms_using(str(tmp_path / 'vm.conf'), str(tmp_path / 'disk.img')) == []


def test_the_run_lock_holds_only_this_pid_and_closes_its_file(lab_dir):
    path = str(lab_dir / 'plain.raw')
    with open(disk_image.lock_path(path), 'w') as stale:
        stale.write('1234567890\n')              # left by a killed run with a longer pid
    open_before = sorted(os.listdir('/proc/self/fd'))
    with disk_image.run_lock(path, timeout=0):
        with open(disk_image.lock_path(path)) as lock:
            assert lock.read() == '%d\n' % os.getpid()
    assert sorted(os.listdir('/proc/self/fd')) == open_before


def test_a_disk_of_exactly_1m_is_accepted():
    assert disk_image.parse_size('1M') == (MIB, None)


def refused(**kwargs):
    with pytest.raises(DiskError) as info:
        disk_image.validate_request(params(**kwargs))
    return str(info.value)


def test_path_checks_name_the_directory_as_given_and_as_resolved(lab_dir):
    assert refused(path=str(lab_dir / 'subdir') + '/') == (
        'path: %s/ ends with a slash; give the path of an image file, not a directory' % (lab_dir / 'subdir'))
    os.symlink('subdir', str(lab_dir / 'link'))
    assert refused(path=lab_dir / 'link' / 'nowhere' / 'd.img', size='1G') == (
        'path: the directory %s does not exist; create it first (vmm_disk does not create directories)' % (lab_dir / 'link' / 'nowhere'))
    # a link whose target is in a missing directory: the directory the image would really be in
    os.symlink(str(lab_dir / 'gone' / 'x.img'), str(lab_dir / 'dangling.img'))
    assert refused(path=lab_dir / 'dangling.img', size='1G') == (
        'path: the directory %s does not exist; create it first (vmm_disk does not create directories)' % (lab_dir / 'gone'))


def test_an_unknown_format_is_refused(lab_dir):
    assert refused(path=lab_dir / 'd.img', size='1G', format='vmdk') == "format: 'vmdk' is not one of raw, qcow2"


def test_absent_reads_none_of_the_image_options(lab_dir):
    request = disk_image.validate_request(params(path=lab_dir / 'plain.raw', state='absent', size='0', format='vmdk',
                                                 base='missing.qcow2', source='plain.raw'))
    assert (request.state, request.size, request.base_image, request.source_image) == ('absent', None, None, None)


@pytest.mark.parametrize('mode', [1.5, ['0640']])
def test_a_mode_of_another_type_is_refused(mode):
    with pytest.raises(DiskError) as info:
        disk_image.validate_file_attributes(dict(mode=mode))
    assert str(info.value) == "mode: %r is not a permission mode; give octal digits as a string, e.g. '0640'" % (mode,)


def test_a_base_vmd_cannot_use_is_refused(lab_dir):
    base = str(lab_dir / 'old.qcow2')
    write_vmctl_qcow2(base, GIB)
    with open(base, 'r+b') as image:
        image.seek(96)                      # refcount_order (qcow2 version 3 header)
        image.write((5).to_bytes(4, 'big'))
    assert refused(path=lab_dir / 'new.qcow2', base='old.qcow2') == (
        'base: vmd cannot use %s: unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)' % base)


def test_a_source_vmctl_cannot_read_is_refused(lab_dir):
    source = str(lab_dir / 'old.qcow2')
    write_vmctl_qcow2(source, GIB)
    with open(source, 'r+b') as image:
        image.seek(96)
        image.write((5).to_bytes(4, 'big'))
    assert refused(path=lab_dir / 'copy.img', source=source) == (
        'source: vmctl cannot read %s: unsupported refcount size (vmd needs 16-bit refcounts, refcount_order 4)' % source)


def test_an_existing_qcow2_image_of_any_name_may_take_a_base(lab_dir):
    # an existing image's format is what its header says, not its name (*.img here)
    write_vmctl_qcow2(str(lab_dir / 'disk.img'), GIB)
    request = disk_image.validate_request(params(path=lab_dir / 'disk.img', base='base.qcow2'))
    assert (request.base_image.format, request.base_image.size) == ('qcow2', GIB)


def test_a_forced_delete_of_a_base_names_the_overlays_in_its_reasons(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'o1.qcow2'), GIB, base='base.qcow2')
    plan = plan_for(path=lab_dir / 'base.qcow2', state='absent', force=True)
    assert plan.reasons == ['delete %s' % (lab_dir / 'base.qcow2'),
                            'force: deleting although %s use it as base' % (lab_dir / 'o1.qcow2')]


def test_archiving_an_overlay_where_its_base_name_is_another_file_warns(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'o1.qcow2'), GIB, base='base.qcow2')
    (lab_dir / 'archive').mkdir()
    write_vmctl_qcow2(str(lab_dir / 'archive' / 'base.qcow2'), GIB)
    plan = plan_for(path=lab_dir / 'o1.qcow2', state='absent', archive_dir=str(lab_dir / 'archive'))
    assert plan.action == 'archive' and plan.request.warnings == [
        "%s is an overlay on %s (stored as 'base.qcow2'); from %s that name is another file, so the archived image can only be "
        'used once moved back beside its base (the data is kept)' % (lab_dir / 'o1.qcow2', lab_dir / 'base.qcow2', lab_dir / 'archive')]


def create_plan(path, fmt='qcow2', size=GIB, base=None):
    return disk_image.Plan('create', disk_image.DiskRequest(path=path, grow=False, force=False), None, format=fmt, size=size, base=base)


def verify_refuses(path, plan):
    with pytest.raises(DiskError) as info:
        disk_image.verify(path, plan)
    return str(info.value)


def test_verify_names_every_difference_from_the_plan(lab_dir):
    raw = make_raw(lab_dir / 'made.img', GIB)
    assert verify_refuses(raw, create_plan(str(lab_dir / 'disk.img'))) == 'vmctl create made %s with format raw instead of qcow2' % raw
    overlay = str(lab_dir / 'made.qcow2')
    write_vmctl_qcow2(overlay, GIB, base='base.qcow2')
    assert verify_refuses(overlay, create_plan(str(lab_dir / 'disk.qcow2'))) == (
        'vmctl create made %s with base base.qcow2 instead of None' % overlay)
    missing = str(lab_dir / 'never.qcow2')
    assert verify_refuses(missing, create_plan(str(lab_dir / 'disk.qcow2'))) == (
        'vmctl create reported success but %s does not exist' % missing)
    made = disk_image.verify(overlay, create_plan(str(lab_dir / 'disk.qcow2'), base='base.qcow2'))
    assert (made.path, made.format, made.size, made.base) == (str(lab_dir / 'disk.qcow2'), 'qcow2', GIB, 'base.qcow2')


def test_an_image_that_cannot_be_read_is_named(lab_dir, monkeypatch):
    # root reads every file; an unprivileged run meets EACCES
    def unreadable(path, mode='r'):
        raise PermissionError(13, 'Permission denied', path)

    monkeypatch.setattr(disk_image, 'open', unreadable, raising=False)
    with pytest.raises(DiskError) as info:
        disk_image.inspect_image(str(lab_dir / 'plain.raw'), name='source')
    assert str(info.value) == 'source %s cannot be read: Permission denied' % (lab_dir / 'plain.raw')


def test_a_new_image_whose_base_names_itself_is_refused(lab_dir):
    # neither exists yet: the names are compared as resolved
    assert refused(path=lab_dir / 'new.qcow2', base='new.qcow2') == 'base: new.qcow2 is the image itself'


def test_absent_follows_a_chain_four_bases_down(lab_dir):
    chain(lab_dir, 5)     # b5 -> b4 -> b3 -> b2 -> b1: the disk and MAX_CHAIN bases below it are read
    with pytest.raises(DiskError) as info:
        plan_for(path=lab_dir / 'b1.qcow2', state='absent')
    assert str(info.value).startswith('state=absent: %s is the base of %s; ' % (
        lab_dir / 'b1.qcow2', ', '.join(str(lab_dir / ('b%d.qcow2' % n)) for n in range(2, 6))))


def test_an_overlay_on_a_chain_of_five_counts_five(lab_dir):
    top = chain(lab_dir, 5)
    assert refused(path=lab_dir / 'o.qcow2', base=top) == (
        'base: %s already has a chain of 5 images; vmd opens at most 4 per disk' % (lab_dir / top))


def test_verify_calls_an_image_it_cannot_read_unusable(lab_dir):
    odd = make_raw(lab_dir / 'made.img', 1000)
    assert verify_refuses(odd, create_plan(str(lab_dir / 'disk.img'), fmt='raw')) == (
        'vmctl create made an unusable image: path %s exists and is not a disk image: its size (1000 bytes) is not a whole '
        'number of MiB, which every raw image vmctl makes is; remove it or choose another path' % odd)


def test_a_busy_run_lock_leaks_no_descriptor_and_the_lock_file_is_private(lab_dir):
    path = str(lab_dir / 'plain.raw')
    with disk_image.run_lock(path, timeout=0):
        assert os.stat(disk_image.lock_path(path)).st_mode & 0o777 == 0o600
        open_before = sorted(os.listdir('/proc/self/fd'))
        with pytest.raises(disk_image.DiskBusy):
            with disk_image.run_lock(path, timeout=0.25):      # a few tries, each opening the file
                pass
        assert sorted(os.listdir('/proc/self/fd')) == open_before


def test_a_lock_error_other_than_busy_is_raised(lab_dir, monkeypatch):
    def flock(descriptor, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(disk_image.fcntl, 'flock', flock)
    with pytest.raises(OSError) as info:
        with disk_image.exclusive_lock(str(lab_dir / 'plain.raw')):
            pass
    assert info.value.errno == errno.ENOLCK


def test_a_busy_run_lock_is_tried_every_tenth_of_a_second_not_in_a_busy_loop(lab_dir, monkeypatch):
    path = str(lab_dir / 'plain.raw')
    real_flock, tries = fcntl.flock, []

    def flock(descriptor, operation):
        tries.append(operation)
        return real_flock(descriptor, operation)

    with disk_image.run_lock(path, timeout=0):
        monkeypatch.setattr(disk_image.fcntl, 'flock', flock)
        with pytest.raises(disk_image.DiskBusy):
            with disk_image.run_lock(path, timeout=0.25):
                pass
    assert 2 <= len(tries) <= 5


def test_lock_timeout_may_be_0_not_negative(lab_dir):
    assert disk_image.validate_request(params(path=lab_dir / 'plain.raw', lock_timeout=0)).path == str(lab_dir / 'plain.raw')
    assert refused(path=lab_dir / 'plain.raw', lock_timeout=-1) == (
        'lock_timeout: -1 is negative; give the seconds to wait for another vmm_disk run (0 or more)')


def test_absent_on_a_directory_is_refused(lab_dir):
    assert refused(path=lab_dir / 'subdir', state='absent') == 'path: %s is a directory; give the path of an image file' % (lab_dir / 'subdir')


@pytest.mark.parametrize('option, value, kind', [('owner', '0root', 'user'), ('group', '12345678901', 'group')])
def test_an_owner_or_group_is_all_digits_or_a_name(option, value, kind):
    with pytest.raises(DiskError) as info:
        disk_image.validate_file_attributes({option: value})
    assert str(info.value) == '%s: %r is not a %s on this host (nor a numeric id)' % (option, value, kind)


def test_a_base_whose_own_base_is_missing_is_refused(lab_dir):
    write_vmctl_qcow2(str(lab_dir / 'mid.qcow2'), GIB, base='gone.qcow2')
    assert refused(path=lab_dir / 'o.qcow2', base='mid.qcow2').startswith(
        'base: cannot read %s in the backing chain of %s: ' % (lab_dir / 'gone.qcow2', lab_dir / 'mid.qcow2'))


def test_replace_of_a_qcow2_image_by_a_raw_one(lab_dir, fake):
    # not a grow: the new raw image does not start with the old file's bytes, and need not
    write_vmctl_qcow2(str(lab_dir / 'q.img'), 8 * MIB)
    image = disk_image.apply_plan(plan_for(path=lab_dir / 'q.img', format='raw', force=True), fake)
    assert (image.format, image.size) == ('raw', 8 * MIB)


class AnotherWriter:
    """A vmctl whose create also finds the image's own name taken by someone else meanwhile."""

    def __init__(self, path):
        self.path = path

    def create(self, temporary, size=None, base=None, source=None, fmt=None):
        make_raw(temporary, size)
        make_raw(self.path, MIB, data=b'theirs')


def test_an_image_that_appears_while_it_is_created_is_left_as_it_is(lab_dir):
    path = str(lab_dir / 'new.img')
    with pytest.raises(DiskError) as info:
        disk_image.apply_plan(plan_for(path=path, size='4M'), AnotherWriter(path))
    assert str(info.value) == '%s appeared while it was being created (not by vmm_disk); it was left as it is' % path
    with open(path, 'rb') as theirs:
        assert theirs.read(6) == b'theirs'
    assert not [name for name in os.listdir(str(lab_dir)) if '.vmm_disk-' in name]


def test_a_run_lock_error_other_than_busy_is_raised_not_waited_on(lab_dir, monkeypatch):
    def flock(descriptor, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(disk_image.fcntl, 'flock', flock)
    with pytest.raises(OSError) as info:
        with disk_image.run_lock(str(lab_dir / 'plain.raw'), timeout=0):
            pass
    assert info.value.errno == errno.ENOLCK and not isinstance(info.value, DiskError)


@pytest.mark.parametrize('mode, ok', [(0, True), (0o7777, True), (-1, False), (0o10000, False)])
def test_a_numeric_mode_is_0_to_7777(mode, ok):
    if ok:
        disk_image.validate_file_attributes(dict(mode=mode))
    else:
        with pytest.raises(DiskError) as info:
            disk_image.validate_file_attributes(dict(mode=mode))
        assert str(info.value) == ("mode: %r is not a permission mode; give octal digits as a string (e.g. '0640') or symbolic "
                                   'modes (e.g. u=rw,g=r)' % mode)


@pytest.mark.parametrize('mode', ['u=rwz', 'u=rw,g=r junk', 'x+u=rw'])
def test_a_symbolic_mode_is_whole_clauses_only(mode):
    disk_image.validate_file_attributes(dict(mode='u=rw,g=r'))
    with pytest.raises(DiskError) as info:
        disk_image.validate_file_attributes(dict(mode=mode))
    assert str(info.value) == "mode: %r is neither octal (e.g. '0640') nor symbolic (e.g. u=rw,g=r)" % mode


def test_a_blank_in_a_path_is_no_control_character(lab_dir):
    request = disk_image.validate_request(params(path=lab_dir / 'my disk.img', size='1M'))
    assert request.path == str(lab_dir / 'my disk.img')
    assert refused(path=lab_dir / 'my\x1fdisk.img', size='1M').startswith("path: %r contains a control character" % str(lab_dir / 'my\x1fdisk.img'))
