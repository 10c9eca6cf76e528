# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The logic of the vmm_disk module: inspect a disk image, plan a change, apply it.

An existing image is inspected without vmctl (qcow2 header reader, file size
for raw), so a run that changes nothing runs no vmctl command at all. Changes
never lose data silently: a different format or base needs ``force``, a larger
size needs ``grow`` (done by copying into a temporary file beside the image and
renaming it into place), shrinking is refused, and an image held by a running
VM (vmd takes an exclusive non-blocking flock on it) is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import grp
import os
import pwd
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.openbsd.vmm.plugins.module_utils import qcow2
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import VmConfError, parse_config
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import MIB, SizeError, fmt_scaled, round_down_mib, scan_scaled

FORMATS = ('raw', 'qcow2')
# vmctl's extension rule for a new file (case-insensitive, only these two).
_EXTENSIONS = {'.raw': 'raw', '.qcow2': 'qcow2'}
MAX_CHAIN = 4  # vmd opens at most the disk plus 3 bases
VMCTL_CLUSTER_BITS = 16  # vmctl create writes 64 KiB clusters (qcow2-facts.md §1), into overlays too


class DiskError(Exception):
    """A request that cannot or must not be carried out; the message says why and what would help."""


class DiskInUse(DiskError):
    """A running VM holds the image (vmd's exclusive lock)."""


class DiskBusy(DiskError):
    """Another vmm_disk run holds this image's own lock."""


@dataclass
class DiskImage:
    """What is on disk: format, virtual size in bytes, base as stored in the image."""
    path: str
    format: str
    size: int
    base: Optional[str] = None
    problems: List[str] = field(default_factory=list)

    def as_dict(self):
        return {'path': self.path, 'format': self.format, 'size': self.size,
                'size_human': fmt_scaled(self.size), 'base': self.base}


@dataclass
class DiskRequest:
    """The validated module parameters. ``size`` is the effective size vmctl would create."""
    path: str
    grow: bool
    force: bool
    state: str = 'present'
    size: Optional[int] = None
    format: Optional[str] = None
    base: Optional[str] = None
    source: Optional[str] = None
    vm_conf: Optional[str] = None
    archive_dir: Optional[str] = None  # state=absent moves the image there instead of deleting it
    given: Optional[str] = None  # path as given, directories resolved
    # state=absent on a symbolic link: the link itself (real directory, own name); only the link is removed.
    link: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    # Filled by validation: what base and source are.
    base_image: Optional[DiskImage] = None
    source_image: Optional[DiskImage] = None


@dataclass
class Plan:
    """What to do: action is none, create, grow, replace, delete, unlink or archive."""
    action: str
    request: DiskRequest
    current: Optional[DiskImage]
    format: Optional[str] = None
    size: Optional[int] = None
    base: Optional[str] = None
    reasons: List[str] = field(default_factory=list)
    # archive: the name planned in archive_dir; after apply_plan, the name actually used.
    archived_to: Optional[str] = None

    @property
    def changed(self):
        return self.action != 'none'

    def after(self):
        """The image as it will be after the change (None when it will be gone)."""
        if self.action in ('delete', 'unlink', 'archive'):
            return None
        if self.action == 'none':
            return self.current
        return DiskImage(self.request.path, self.format, self.size, self.base)


# -- reading images --------------------------------------------------------

def format_for_new_file(path, requested=None):
    """vmctl create's rule for a file that does not exist yet: prefix, else extension, else raw."""
    if requested:
        return requested
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower(), 'raw')


def inspect_image(path, name='path'):
    """The image at ``path``, or None when nothing is there. Never calls vmctl.

    Raises DiskError for things that are not disk images: directories, devices,
    a broken qcow2 header, a file named *.qcow2 without the qcow2 magic, or a
    file whose size vmctl could never have made (not a whole number of MiB).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DiskError('%s %s cannot be examined: %s' % (name, path, exc.strerror))
    if stat.S_ISDIR(info.st_mode):
        raise DiskError('%s %s is a directory; give the path of an image file' % (name, path))
    if not stat.S_ISREG(info.st_mode):
        raise DiskError('%s %s is not a regular file; vmm_disk manages image files' % (name, path))
    try:
        with open(path, 'rb') as image:
            magic = image.read(len(qcow2.MAGIC))
    except OSError as exc:
        raise DiskError('%s %s cannot be read: %s' % (name, path, exc.strerror))
    if qcow2.has_magic(magic):
        try:
            header = qcow2.read_header(path)
        except qcow2.Qcow2Error as exc:
            raise DiskError('%s %s is not a usable disk image: %s' % (name, path, exc))
        return DiskImage(path, 'qcow2', header.size, header.backing_file, qcow2.vmd_problems(header))
    if os.path.splitext(path)[1].lower() == '.qcow2':
        raise DiskError('%s %s exists and is not a disk image: its name ends in .qcow2 but it has no qcow2 header '
                        '(vmctl and vmd would read it as qcow2 and fail); remove it or choose another path' % (name, path))
    if info.st_size == 0 or info.st_size % MIB:
        raise DiskError('%s %s exists and is not a disk image: its size (%d bytes) is not a whole number of MiB, '
                        'which every raw image vmctl makes is; remove it or choose another path' % (name, path, info.st_size))
    return DiskImage(path, 'raw', info.st_size)


def resolve_base(image_path, base):
    """The file a stored (or requested) base names: relative paths are relative to the image's directory, as vmd reads them.

    (os.path.join keeps an absolute base as it is.)
    """
    return os.path.join(os.path.dirname(image_path), base)


def same_file(first, second):
    try:
        return os.path.samefile(first, second)
    except OSError:
        return os.path.realpath(first) == os.path.realpath(second)


def own_path(path):
    """``path`` with its directories resolved but not its last component (a link stays the link)."""
    return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))


def resolution(path, limit=32):
    """Every name that opening ``path`` goes through: the path, each symbolic link it follows, the file itself.

    vmd opens disks and bases through realpath(3) (parse.y parse_disk; vioqcow2.c virtio_qcow2_get_base
    reads a relative base from the disk's real directory), so a file is used through every one of these names.
    """
    names = []
    current = own_path(path)
    while len(names) < limit:
        names.append(current)
        if not os.path.islink(current):
            break
        current = own_path(os.path.join(os.path.dirname(current), os.readlink(current)))
    return names


def _backing_chain(path):
    """``path`` and the bases below it, as far as they can be read (each as stored, resolved)."""
    chain, current = [], path
    while current and len(chain) <= MAX_CHAIN:
        chain.append(current)
        try:
            backing = qcow2.read_header(current).backing_file if qcow2.is_qcow2(current) else None
        except (OSError, qcow2.Qcow2Error):
            break  # a broken or missing file ends what can be known of the chain
        current = resolve_base(os.path.realpath(current), backing) if backing else None
    return chain


def _goes_through(path, node):
    """Whether opening ``path`` or its backing chain goes through the file or link ``node``."""
    return any(node in resolution(link) for link in _backing_chain(path))


def images_based_on(path, node=None, directories=None):
    """Images beside ``path`` (and in ``directories``) whose backing chain goes through ``node``."""
    node = node or own_path(path)
    dependents = []
    for directory in sorted(set(directories or [os.path.dirname(path)])):
        for entry in sorted(os.listdir(directory)):
            candidate = os.path.join(directory, entry)
            if node in resolution(candidate) or not os.path.isfile(candidate):
                continue
            # A raw, unreadable or broken file has no bases: its chain is itself alone.
            if any(node in resolution(base) for base in _backing_chain(candidate)[1:]):
                dependents.append(candidate)
    return dependents


def vms_using(vm_conf, node):
    """'VM (disk)' for every VM in ``vm_conf`` (with its includes) whose disk, or a base below it, goes through ``node``."""
    if not vm_conf:
        return []
    if not os.path.isdir(os.path.dirname(os.path.abspath(vm_conf))):
        # a mistyped path must not read as "no VM uses it"; a missing file in a real directory is a host without VMs
        raise DiskError('vm_conf: the directory of %s does not exist, so whether a VM uses the image is unknown; '
                        'give the path of vm.conf (a file that does not exist yet is fine) or set force: true' % vm_conf)
    try:
        summary = parse_config(vm_conf)     # a vm.conf that does not exist defines no VM
    except VmConfError as exc:
        raise DiskError('vm_conf: %s cannot be read, so whether a VM uses the image is unknown: %s; fix it or set force: true'
                        % (vm_conf, exc))
    users = []
    for definition in summary.vms:
        for disk in definition.disks:
            # vmd resolves a relative disk path from its working directory, / (it runs as a daemon).
            if _goes_through(os.path.join('/', disk.path), node):
                users.append('%s (disk %s)' % (definition.name, disk.path))
    return users


# -- the lock vmd holds ----------------------------------------------------

IN_USE_MESSAGE = ('%s is in use: a running VM holds it (vmd keeps an exclusive lock, flock LOCK_EX, on the disks of running VMs '
                  'and this lock could not be taken); stop the VM first')


@contextlib.contextmanager
def exclusive_lock(path):
    """Hold vmd's lock on ``path`` for the duration; raise DiskInUse if a running VM has it.

    vmd opens a VM's top image with O_EXLOCK|O_NONBLOCK, i.e. flock(LOCK_EX|LOCK_NB);
    taking the same lock is how to tell whether a VM uses the image, and holding
    it keeps a VM from starting on the image while it is being changed.
    """
    descriptor = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DiskInUse(IN_USE_MESSAGE % path)
            raise
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def check_not_in_use(path):
    with exclusive_lock(path):
        pass


# -- this collection's own lock and leftovers --------------------------------

def _own_name(path, kind):
    directory, name = os.path.split(path)
    return os.path.join(directory, '.%s.vmm_disk-%s' % (name, kind))


def lock_path(path):
    return _own_name(path, 'lock')


def temporary_path(path):
    """A fresh temporary name beside ``path``: vmctl writes there, the result is renamed into place when verified."""
    return _own_name(path, '%s.tmp' % secrets.token_hex(4))


def leftovers(path):
    """What killed vmm_disk runs left beside ``path``: temporary images and the lock file."""
    found = glob.glob(glob.escape(_own_name(path, '')) + '*.tmp')
    if os.path.exists(lock_path(path)):
        found.append(lock_path(path))
    return sorted(found)


@contextlib.contextmanager
def run_lock(path, timeout):
    """Hold this collection's lock on ``path`` (``.NAME.vmm_disk-lock`` beside it), waiting up to ``timeout`` seconds.

    Two vmm_disk runs on one image take turns; the holder writes its pid in the file so a run that
    gives up names it. While the lock is held no other run is working on the image, so any of
    its temporary files are a killed run's leftovers and are removed. The file goes when released.
    """
    name = lock_path(path)
    deadline = time.monotonic() + timeout
    while True:
        descriptor = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(descriptor)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                raise DiskBusy('%s is busy: another vmm_disk run (%s) holds its lock %s and did not finish within %d s; '
                               'wait for it, or raise lock_timeout' % (path, _holder(name), name, timeout))
            time.sleep(0.1)
            continue
        try:
            if os.fstat(descriptor).st_ino != os.stat(name).st_ino:
                raise FileNotFoundError  # the holder removed the file as we opened it: take the new one
        except FileNotFoundError:
            os.close(descriptor)
            continue
        break
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, b'%d\n' % os.getpid())
        for stale in leftovers(path):
            if stale != name:
                os.unlink(stale)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)  # removed while held, so a waiting run notices (inode check) and starts over
        os.close(descriptor)


def _holder(name):
    try:
        with open(name, encoding='ascii', errors='replace') as handle:
            pid = handle.read().strip()
    except OSError:
        pid = ''
    return 'pid %s' % pid if pid.isdigit() else 'pid unknown'


# -- validating the request ------------------------------------------------

def parse_size(value):
    """Effective size in bytes of the ``size`` parameter, and the warning vmctl would print (or None)."""
    try:
        size = scan_scaled(value)
    except SizeError as exc:
        raise DiskError('size: %s' % exc)
    if size < MIB:
        raise DiskError("size: invalid size '%s': a disk must be at least 1M (vmctl: disk size must be at least 1MB)" % value)
    rounded = round_down_mib(size)
    warning = None
    if rounded != size:
        warning = 'size %s is not a whole number of MiB; vmctl rounds it down to %s' % (value, fmt_scaled(rounded))
    return rounded, warning


def validate_request(params):
    """Turn module parameters into a DiskRequest, or raise DiskError naming the parameter and the rule.

    Only reads the file system; nothing is created or changed here.
    """
    path = params['path']
    for name in ('path', 'base', 'source', 'vm_conf', 'archive_dir'):
        value = params.get(name)
        if isinstance(value, str) and any(ord(char) < 32 or char == '\x7f' for char in value):
            raise DiskError('%s: %r contains a control character (a line break, a tab, ...); no disk image vmd reads is '
                            'named like that (vm.conf cannot even quote it)' % (name, value))
    lock_timeout = params.get('lock_timeout')
    if lock_timeout is not None and lock_timeout < 0:
        raise DiskError('lock_timeout: %d is negative; give the seconds to wait for another vmm_disk run (0 or more)' % lock_timeout)
    if not path or not os.path.isabs(path):
        raise DiskError('path: %r is not an absolute path; give the full path of the image, e.g. /var/vmm/disk.qcow2' % (path,))
    if path.endswith('/'):
        raise DiskError('path: %s ends with a slash; give the path of an image file, not a directory' % path)
    if not os.path.isdir(os.path.dirname(path)):
        raise DiskError('path: the directory %s does not exist; create it first (vmm_disk does not create directories)'
                        % os.path.dirname(path))
    # vmctl resolves disk paths with realpath(3) and vmd reads a relative base from the real
    # directory; working on the real path also replaces a symlinked image's target, not the link.
    given = own_path(path)
    path = os.path.realpath(path)
    request = DiskRequest(path=path, state=params.get('state') or 'present', format=params.get('format'),
                          base=params.get('base'), source=params.get('source'),
                          grow=bool(params.get('grow')), force=bool(params.get('force')),
                          vm_conf=params.get('vm_conf'), given=given)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise DiskError('path: the directory %s does not exist; create it first (vmm_disk does not create directories)' % directory)
    if request.state == 'absent':
        request.archive_dir = _validate_archive_dir(params.get('archive_dir'))
        if os.path.islink(given):
            request.link = given  # removed itself, never followed (see _plan_absent)
        elif os.path.isdir(path):
            raise DiskError('path: %s is a directory; give the path of an image file' % path)
        return request
    if os.path.isdir(path):
        raise DiskError('path: %s is a directory; give the path of an image file' % path)
    if request.format is not None and request.format not in FORMATS:
        raise DiskError('format: %r is not one of raw, qcow2' % (request.format,))
    if request.base and request.source:
        raise DiskError('base and source are mutually exclusive: an image is either an overlay on a base (vmctl create -b) '
                        'or a copy of a source (vmctl create -i)')
    if params.get('size') is not None:
        request.size, warning = parse_size(params['size'])
        if warning:
            request.warnings.append(warning)
    if request.base:
        _validate_base(request)
    if request.source:
        _validate_source(request)
    return request


def _validate_archive_dir(archive_dir):
    """``archive_dir`` (used by state=absent only) if absolute; whether it exists matters only once there is an image
    to archive (see _archive_dir), so a host with nothing to archive needs no archive directory."""
    if archive_dir is not None and not os.path.isabs(archive_dir):
        raise DiskError('archive_dir: %r is not an absolute path; give the directory archived images are moved to, '
                        'e.g. /var/vmm/archive' % (archive_dir,))
    return archive_dir


def _archive_dir(request):
    if not os.path.isdir(request.archive_dir):
        raise DiskError('archive_dir: %s is not an existing directory, so %s cannot be archived there; create it first '
                        '(vmm_disk does not create directories), or omit archive_dir to delete the image'
                        % (request.archive_dir, request.path))
    return os.path.realpath(request.archive_dir)


_OCTAL_MODE = re.compile(r'(?:0o)?[0-7]{1,4}|0[0-7]{4}')
# chmod(1) symbolic clauses, as AnsibleModule applies them: who, then one or more op + perms or a copied class.
_SYMBOLIC_CLAUSE = re.compile(r'[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+')
_NUMERIC_ID = re.compile(r'[0-9]{1,10}')


def validate_file_attributes(params):
    """Refuse a bad mode, owner or group before anything changes (AnsibleModule would only find out while applying)."""
    mode = params.get('mode')
    if isinstance(mode, bool) or (isinstance(mode, int) and not 0 <= mode <= 0o7777):
        raise DiskError('mode: %r is not a permission mode; give octal digits as a string (e.g. \'0640\') or symbolic '
                        'modes (e.g. u=rw,g=r)' % (mode,))
    if isinstance(mode, str) and not (_OCTAL_MODE.fullmatch(mode)
                                      or all(_SYMBOLIC_CLAUSE.fullmatch(clause) for clause in mode.split(','))):
        raise DiskError('mode: %r is neither octal (e.g. \'0640\') nor symbolic (e.g. u=rw,g=r)' % (mode,))
    if mode is not None and not isinstance(mode, (str, int)):
        raise DiskError('mode: %r is not a permission mode; give octal digits as a string, e.g. \'0640\'' % (mode,))
    for name, lookup in (('owner', pwd.getpwnam), ('group', grp.getgrnam)):
        value = params.get(name)
        if value is None or _NUMERIC_ID.fullmatch(value):
            continue
        try:
            lookup(value)
        except (KeyError, ValueError):
            raise DiskError('%s: %r is not a %s on this host (nor a numeric id)'
                            % (name, value, 'user' if name == 'owner' else 'group'))


def _validate_base(request):
    existing_format = _existing_format(request.path)
    target_format = existing_format or format_for_new_file(request.path, request.format)
    if request.format == 'raw' or target_format != 'qcow2':
        raise DiskError('base: only qcow2 images can have a base (vmctl: base images require qcow2 disk format); '
                        'set format: qcow2 or name the image *.qcow2')
    base_path = resolve_base(request.path, request.base)
    if same_file(base_path, request.path):
        raise DiskError('base: %s is the image itself' % request.base)
    if not os.path.exists(base_path):
        raise DiskError('base: %s does not exist (a relative base is relative to the directory of path, as vmd reads it)' % base_path)
    base_image = inspect_image(base_path, name='base')
    if base_image.format != 'qcow2':
        raise DiskError('base: %s is not a qcow2 image (vmctl: base image is not a qcow2 file); a base must be qcow2' % base_path)
    if base_image.problems:
        raise DiskError('base: vmd cannot use %s: %s' % (base_path, '; '.join(base_image.problems)))
    depth = _chain_length(base_path)
    if depth + 1 > MAX_CHAIN:
        raise DiskError('base: %s already has a chain of %d images; vmd opens at most %d per disk' % (base_path, depth, MAX_CHAIN))
    if request.size is not None and request.size != base_image.size:
        raise DiskError('size: %s does not match the virtual size of base %s (%s, %d bytes); an overlay must have exactly '
                        "its base's size (vmctl: base size does not match requested size); omit size or set it to %d"
                        % (fmt_scaled(request.size), base_path, fmt_scaled(base_image.size), base_image.size, base_image.size))
    request.base_image = base_image


def _validate_source(request):
    source_path = request.source
    if not os.path.isabs(source_path):
        raise DiskError('source: %r is not an absolute path' % (source_path,))
    if not os.path.exists(source_path):
        raise DiskError('source: %s does not exist' % source_path)
    if same_file(source_path, request.path):
        raise DiskError('source: %s is the image itself' % source_path)
    source_image = inspect_image(source_path, name='source')
    if source_image.problems:
        raise DiskError('source: vmctl cannot read %s: %s' % (source_path, '; '.join(source_image.problems)))
    if request.size is not None and request.size < source_image.size:
        raise DiskError('size: %s is smaller than source %s (%s); a copy cannot be smaller than its source '
                        '(vmctl: size cannot be smaller than input disk size)'
                        % (fmt_scaled(request.size), source_path, fmt_scaled(source_image.size)))
    request.source_image = source_image


def _existing_format(path):
    try:
        existing = qcow2.is_qcow2(path)
    except OSError:
        existing = False            # nothing there (or unreadable): the name decides, as for a new file
    return 'qcow2' if existing else None


def _chain_length(path):
    """Number of images in the backing chain starting at ``path`` (itself included), each checked for the cluster size
    of the overlay vmctl will put on top: vmd's qc2_open (usr.sbin/vmd/vioqcow2.c) refuses a chain whose images differ
    (fatalx "all disk parts must share clustersize") when the VM starts, while vmctl create -b makes the overlay."""
    length, current, seen = 0, path, set()
    while current and length <= MAX_CHAIN:
        real = os.path.realpath(current)
        if real in seen:
            raise DiskError('base: the backing chain of %s loops back to %s' % (path, current))
        seen.add(real)
        length += 1
        try:
            header = qcow2.read_header(current) if qcow2.is_qcow2(current) else None
        except (OSError, qcow2.Qcow2Error) as exc:
            raise DiskError('base: cannot read %s in the backing chain of %s: %s' % (current, path, exc))
        if header is not None and header.cluster_bits != VMCTL_CLUSTER_BITS:
            raise DiskError('base: %s%s has %d KiB clusters; vmctl makes the overlay with %d KiB clusters and vmd starts a '
                            'VM only when every image of its disk shares one cluster size (vmd: all disk parts must share '
                            'clustersize); convert it first (qemu-img convert -O qcow2 -o cluster_size=64k)'
                            % (current, '' if current == path else ' (in the backing chain of %s)' % path,
                               header.cluster_size // 1024, (1 << VMCTL_CLUSTER_BITS) // 1024))
        current = resolve_base(current, header.backing_file) if header is not None and header.backing_file else None
    return length


# -- planning --------------------------------------------------------------

def plan_change(request, current):
    """Compare the request with what is on disk; return a Plan or raise DiskError if refused."""
    if request.state == 'absent':
        return _plan_absent(request, current)
    if current is None:
        return _plan_create(request)
    return _plan_existing(request, current)


def _plan_absent(request, current):
    if request.link is not None:
        # Never follow a link to delete: only the link goes, whatever it points to stays.
        node, what, action = request.link, 'the symbolic link %s' % request.link, 'unlink'
        directories = [os.path.dirname(request.link)]
    elif current is None:
        return Plan('none', request, None)
    else:
        node, what, action = request.path, request.path, 'delete'
        directories = [os.path.dirname(request.path), os.path.dirname(request.given)]
    unchecked = None
    try:
        users = vms_using(request.vm_conf, node)
    except DiskError as exc:
        if not request.force:
            raise
        users, unchecked = [], str(exc)
    if users and not request.force:
        raise DiskError('state=absent: %s is a disk of VM %s in %s (directly or as a base); vmd would fail to load its '
                        'configuration without it. Remove the VM from vm.conf first, or set force: true'
                        % (what, ', '.join(users), request.vm_conf))
    dependents = images_based_on(node, node, directories)
    if dependents and not request.force:
        raise DiskError('state=absent: %s is the base of %s; deleting it would break them. '
                        'Remove them first or set force: true' % (what, ', '.join(dependents)))
    if action == 'delete':
        check_not_in_use(request.path)
    archived_to = None
    if action == 'delete' and request.archive_dir:
        action, verb = 'archive', 'archiving'
        request.archive_dir = _archive_dir(request)
        archived_to = archive_name(request.path, request.archive_dir, current.format)
        reasons = ['archive %s to %s' % (what, archived_to)]
        _warn_unreachable_base(request, current, archived_to)
    else:
        verb = 'deleting'
        reasons = ['delete %s' % what]
    if users:
        reasons.append('force: %s although vm.conf uses it for %s' % (verb, ', '.join(users)))
    if unchecked:
        reasons.append('force: %s without knowing the VMs (%s)' % (verb, unchecked))
    if dependents:
        reasons.append('force: %s although %s use it as base' % (verb, ', '.join(dependents)))
    return Plan(action, request, current if action in ('delete', 'archive') else None, reasons=reasons,
                archived_to=archived_to)


def _warn_unreachable_base(request, current, archived_to):
    """An overlay keeps its base as stored; a relative base may not be found from the archive directory."""
    if not current.base:
        return
    base_now = resolve_base(request.path, current.base)
    base_then = resolve_base(archived_to, current.base)
    if os.path.exists(base_then) and same_file(base_now, base_then):
        return
    request.warnings.append('%s is an overlay on %s (stored as %r); from %s that name %s, so the archived image can '
                            'only be used once moved back beside its base (the data is kept)'
                            % (request.path, base_now, current.base, request.archive_dir,
                               'does not exist' if not os.path.exists(base_then) else 'is another file'))


def _planned_size(request):
    if request.size is not None:
        return request.size
    if request.base_image is not None:
        return request.base_image.size
    if request.source_image is not None:
        # vmctl create -i without -s: the source size rounded up to whole MiB.
        return -(-request.source_image.size // MIB) * MIB
    return None


def _plan_create(request):
    size = _planned_size(request)
    if size is None:
        raise DiskError('size: required to create %s (or give base or source to take the size from)' % request.path)
    fmt = format_for_new_file(request.path, request.format)
    return Plan('create', request, None, format=fmt, size=size, base=request.base,
                reasons=['create %s %s image %s' % (fmt_scaled(size), fmt, request.path)])


def _plan_existing(request, current):
    differences = []  # (what, how to change it)
    wanted_format = request.format or current.format
    if wanted_format != current.format:
        differences.append('format is %s, requested %s' % (current.format, wanted_format))
    if request.base is not None:
        if current.base is None or not same_file(resolve_base(current.path, current.base), resolve_base(request.path, request.base)):
            differences.append('base is %s, requested %s' % (current.base or 'none', request.base))
    if current.problems:
        differences.append('vmd cannot use the image: %s' % '; '.join(current.problems))
    wanted_size = request.size if request.size is not None else current.size

    if differences:
        if not request.force:
            raise DiskError('%s exists and differs: %s; set force: true to replace it with a new image '
                            '(its data is lost) or change the request to match' % (request.path, ', '.join(differences)))
        check_not_in_use(request.path)
        # The replacement is made like a new image; without size it keeps the current size.
        new_size = _planned_size(request) or current.size
        if request.base is None and request.source is None and new_size < current.size:
            raise DiskError('size: shrinking is refused: %s is %s, requested %s'
                            % (request.path, fmt_scaled(current.size), fmt_scaled(new_size)))
        return Plan('replace', request, current, format=wanted_format, size=new_size,
                    base=request.base, reasons=['replace: ' + ', '.join(differences)])

    if wanted_size == current.size:
        return Plan('none', request, current, format=current.format, size=current.size, base=current.base)
    if wanted_size < current.size:
        raise DiskError('size: shrinking is refused: %s is %s (%d bytes), requested %s (%d bytes); vmctl cannot shrink an '
                        'image and shrinking would cut off data'
                        % (request.path, fmt_scaled(current.size), current.size, fmt_scaled(wanted_size), wanted_size))
    if current.base is not None:
        raise DiskError('size: %s is an overlay on %s and must keep its base\'s size (%s); it cannot be grown on its own'
                        % (request.path, current.base, fmt_scaled(current.size)))
    if not request.grow:
        raise DiskError('size: %s is %s, requested %s; set grow: true to grow it (its data is kept)'
                        % (request.path, fmt_scaled(current.size), fmt_scaled(wanted_size)))
    check_not_in_use(request.path)
    return Plan('grow', request, current, format=current.format, size=wanted_size, base=None,
                reasons=['grow %s from %s to %s' % (request.path, fmt_scaled(current.size), fmt_scaled(wanted_size))])


# -- archiving -------------------------------------------------------------

# vmctl's and vmd's image extensions; the archive keeps the one the image had.
_ARCHIVE_EXTENSIONS = ('.qcow2', '.img', '.raw')
ARCHIVE_STAMP = '%Y%m%dT%H%M%SZ'
_MAX_SAME_SECOND = 1000  # archives of one image name in one second before giving up


def archive_candidates(path, archive_dir, fmt, now=None):
    """Archive names for ``path`` in order of preference: ``NAME-<UTC stamp>.EXT``, then ``NAME-<stamp>-1.EXT``, ...

    EXT is the image's own extension (.qcow2, .img, .raw), else its format, so the archive says what it holds.
    """
    stem, extension = os.path.splitext(os.path.basename(path))
    if extension.lower() not in _ARCHIVE_EXTENSIONS:
        stem, extension = os.path.basename(path), '.' + fmt
    stamp = time.strftime(ARCHIVE_STAMP, time.gmtime(time.time() if now is None else now))
    yield os.path.join(archive_dir, '%s-%s%s' % (stem, stamp, extension))
    for suffix in range(1, _MAX_SAME_SECOND):
        yield os.path.join(archive_dir, '%s-%s-%d%s' % (stem, stamp, suffix, extension))


def archive_name(path, archive_dir, fmt, now=None):
    """The first archive name not taken yet (what check mode reports; the move itself never overwrites)."""
    for candidate in archive_candidates(path, archive_dir, fmt, now):
        if not os.path.lexists(candidate):
            return candidate
    raise DiskError('archive_dir: %s already holds %d archives of %s made in the same second; wait a second or clear '
                    'them' % (archive_dir, _MAX_SAME_SECOND, os.path.basename(path)))


def archive_image(path, archive_dir, fmt, now=None):
    """Move the image ``path`` into ``archive_dir`` under a free archive name; return that name.

    Never overwrites: the archive name is made with link(2), which fails when the name exists
    (rename(2) would silently replace it, e.g. an image of the same name from another directory
    archived in the same second), and only then is the image's own name removed. Across file
    systems (EXDEV) the image is copied to a temporary name in ``archive_dir``, synced, linked to
    the archive name, and the image removed only after the copy is complete.
    Holds vmd's lock on the image throughout, so no VM starts on it meanwhile.
    """
    with exclusive_lock(path):
        try:
            archived = _link_to_free_name(path, archive_candidates(path, archive_dir, fmt, now), archive_dir, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return _copy_to_archive(path, archive_dir, archive_candidates(path, archive_dir, fmt, now))
        os.unlink(path)
        _sync_directory(os.path.dirname(path))
        return archived


def _link_to_free_name(source, candidates, archive_dir, image):
    for candidate in candidates:
        try:
            os.link(source, candidate)
        except FileExistsError:
            continue
        _sync_directory(archive_dir)
        return candidate
    raise DiskError('archive_dir: %s already holds %d archives of %s made in the same second; wait a second or clear '
                    'them' % (archive_dir, _MAX_SAME_SECOND, os.path.basename(image)))


def _copy_to_archive(path, archive_dir, candidates):
    temporary = temporary_path(os.path.join(archive_dir, os.path.basename(path)))
    original = os.stat(path)
    try:
        # 0600 until complete: the image may hold secrets whatever the umask; its own mode is set below.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(path, 'rb') as source, os.fdopen(descriptor, 'wb') as target:
            _copy_sparse(source, target, original.st_size)
            os.fsync(target.fileno())
        os.chmod(temporary, stat.S_IMODE(original.st_mode))
        with contextlib.suppress(PermissionError):
            os.chown(temporary, original.st_uid, original.st_gid)
        copied = os.stat(temporary)
        if copied.st_size != original.st_size:
            raise DiskError('archive: the copy of %s in %s has %d bytes instead of %d; the image is kept'
                            % (path, archive_dir, copied.st_size, original.st_size))
        archived = _link_to_free_name(temporary, candidates, archive_dir, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    os.unlink(path)
    _sync_directory(os.path.dirname(path))
    return archived


def _copy_sparse(source, target, size, chunk=MIB):
    """Copy ``size`` bytes, leaving holes where the source reads as zeros (images are mostly sparse)."""
    zeros = bytes(chunk)
    offset = 0
    while offset < size:
        block = source.read(min(chunk, size - offset))
        if not block:
            break
        if block == zeros[:len(block)]:
            target.seek(len(block), os.SEEK_CUR)
        else:
            target.write(block)
        offset += len(block)
    target.truncate(size)


def _sync_directory(directory):
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- applying --------------------------------------------------------------

def diff(plan):
    """Ansible diff of format, size and base."""
    def view(image):
        if image is None:
            return {'state': 'absent'}
        return {'state': 'present', 'format': image.format, 'size': fmt_scaled(image.size), 'base': image.base}
    after = view(plan.after())
    if plan.archived_to:
        after['archived_to'] = plan.archived_to
    return {'before': view(plan.current), 'after': after, 'before_header': plan.request.path,
            'after_header': plan.request.path}


def apply_plan(plan, vmctl):
    """Carry the plan out with ``vmctl`` (a module_utils.vmctl.Vmctl); return the resulting DiskImage or None."""
    request = plan.request
    if plan.action == 'none':
        return plan.current
    if plan.action == 'delete':
        with exclusive_lock(request.path):
            os.unlink(request.path)
        return None
    if plan.action == 'archive':
        plan.archived_to = archive_image(request.path, request.archive_dir, plan.current.format)
        return None
    if plan.action == 'unlink':
        if os.path.islink(request.link):
            os.unlink(request.link)
        return None
    if plan.action == 'create':
        return _create_into_place(plan, vmctl)
    if plan.action == 'grow':
        return _copy_into_place(plan, vmctl, source=request.path)
    # 'replace', the last of the actions plan() makes (see Plan)
    return _copy_into_place(plan, vmctl, source=request.source)


def _size_argument(plan):
    # An overlay takes its base's size; -s would only restate it.
    return None if plan.base else plan.size


def _create_into_place(plan, vmctl):
    """Create (or import) under a temporary name beside the image, verify it, then link it into place.

    An interrupted create or copy leaves only a temporary file (removed by the next run), never a
    half image under the real name. The link (not a rename) refuses to replace a file that
    appeared meanwhile.
    """
    request = plan.request
    temporary = temporary_path(request.path)
    try:
        with _working_directory(os.path.dirname(request.path)):
            vmctl.create(temporary, size=_size_argument(plan), base=request.base, source=request.source, fmt=plan.format)
        made = verify(temporary, plan)
        try:
            os.link(temporary, request.path)
        except FileExistsError:
            raise DiskError('%s appeared while it was being created (not by vmm_disk); it was left as it is' % request.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return made


def _copy_into_place(plan, vmctl, source):
    """Create the new image in a temporary file beside the old one, verify it, then rename it over the old one.

    The old image stays untouched (and locked against VMs) until the rename.
    """
    path = plan.request.path
    directory = os.path.dirname(path)
    temporary = temporary_path(path)
    original = os.stat(path)
    with exclusive_lock(path):
        try:
            with _working_directory(directory):
                vmctl.create(temporary, size=_size_argument(plan), base=plan.base, source=source, fmt=plan.format)
            verify(temporary, plan)
            if plan.action == 'grow' and plan.format == 'raw':
                _check_prefix_kept(path, temporary)
            os.chmod(temporary, stat.S_IMODE(original.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(temporary, original.st_uid, original.st_gid)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    return inspect_image(path)


def _check_prefix_kept(old, new, chunk=MIB):
    """A cheap data check for a raw grow: the first MiB of the copy equals the original's."""
    with open(old, 'rb') as before, open(new, 'rb') as after:
        if before.read(chunk) != after.read(chunk):
            raise DiskError('grow: the copy of %s differs from the original in its first MiB; the original is kept' % old)


def verify(path, plan):
    """Read back what vmctl made and make sure it is what the plan asked for."""
    try:
        made = inspect_image(path)
    except DiskError as exc:
        raise DiskError('vmctl create made an unusable image: %s' % exc)
    if made is None:
        raise DiskError('vmctl create reported success but %s does not exist' % path)
    wrong = []
    if made.format != plan.format:
        wrong.append('format %s instead of %s' % (made.format, plan.format))
    if made.size != plan.size:
        wrong.append('size %d instead of %d' % (made.size, plan.size))
    if (made.base or None) != (plan.base or None):
        wrong.append('base %s instead of %s' % (made.base, plan.base))
    wrong.extend(made.problems)
    if wrong:
        raise DiskError('vmctl create made %s with %s' % (path, ', '.join(wrong)))
    made.path = plan.request.path
    return made


@contextlib.contextmanager
def _working_directory(directory):
    """Run vmctl from the image's directory: vmctl create opens a relative base from its working
    directory, vmd resolves it from the image's directory; this makes both read the same file."""
    previous = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)
