# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The logic of the vmm_backup module: a consistent copy of a VM's disks, its manifest, and retention.

A backup is a directory ``<dest>/<vm>-<UTC stamp>/`` holding one image per disk (``disk0.qcow2``, ...)
and ``manifest.json``. Each image is the disk with its whole backing chain, compacted by
``vmctl create -i`` (vmctl main.c ctl_convert: it reads through the chain and skips all-zero blocks),
so a backup needs no base image to be restored on any host.

Consistency: a stopped VM's disks are copied while this run holds vmd's lock on them (nothing starts
on them meanwhile). A running VM is paused (``vmctl pause``: vmd's vm.c pause_vm answers only once every
vCPU has stopped) just long enough to copy each disk's top image to a file beside it, then unpaused; the
bases below are read-only images no VM writes. The copy is retried when the top image changed while it
was read (size or modification time): pause_vm waits for the vCPUs only, and a disk request the guest
queued before may still be finished by the disk emulation afterwards (a guess: vioblk's side of the pause
was not read). What is copied is what a power cut would leave.

Nothing half is ever left as a backup: the directory is built as ``.<vm>-<stamp>.partial`` and renamed
when its manifest is written; a killed run's partial directory and temporary copies are removed by the
next run, which holds the same per-VM lock in ``dest``.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.openbsd.vmm.plugins.module_utils import disk_image
from ansible_collections.openbsd.vmm.plugins.module_utils.image_catalog import backing_chain, sha256_of
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import VmConf, VmConfError
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import VmctlError, vm_name_problem

MANIFEST = 'manifest.json'
MANIFEST_VERSION = 1
STAMP = '%Y%m%dT%H%M%SZ'
_STAMP_PATTERN = r'[0-9]{8}T[0-9]{6}Z(?:-[0-9]+)?'
IF_RUNNING = ('pause', 'fail')
COPY_ATTEMPTS = 3
_SAME_SECOND = 100


class BackupError(Exception):
    """A backup that cannot or must not be made; the message says why and what would help."""


@dataclass
class BackupRequest:
    name: str
    dest: str
    vm_conf: str
    if_running: str = 'pause'
    keep: Optional[int] = None
    max_age_days: Optional[int] = None


@dataclass
class SourceDisk:
    """One disk of the VM as vm.conf names it, and what is on disk there."""
    index: int
    path: str
    format: str
    size: int
    chain: List[str] = field(default_factory=list)

    @property
    def file_name(self):
        return 'disk%d.%s' % (self.index, self.format)


@dataclass
class Plan:
    request: BackupRequest
    definition: object
    state: str                     # the VM's state in vmctl status: running, paused, stopped, ...
    disks: List[SourceDisk]
    backup: str                    # the directory the backup gets
    expire: List[str] = field(default_factory=list)
    existing: List[str] = field(default_factory=list)   # this VM's backups in dest before the run, oldest first

    @property
    def pause(self):
        return self.state == 'running'


# -- parameters ------------------------------------------------------------

def validate_request(params):
    name = params['name']
    problem = vm_name_problem(name)
    if problem:
        raise BackupError('name: %s (got %r)' % (problem, name))
    dest = params['dest']
    if not os.path.isabs(dest):
        raise BackupError('dest: must be an absolute path (got %r)' % dest)
    if not os.path.isdir(dest):
        raise BackupError('dest: %s is not a directory; create it first (it holds backups that may contain '
                          'secrets: mode 0700 is a good choice)' % dest)
    for option in ('keep', 'max_age_days'):
        value = params.get(option)
        if value is not None and value < 1:
            raise BackupError('%s: must be at least 1 (got %d); leave it out to keep every backup' % (option, value))
    return BackupRequest(name=name, dest=os.path.realpath(dest), vm_conf=params['vm_conf'],
                         if_running=params['if_running'], keep=params.get('keep'), max_age_days=params.get('max_age_days'))


# -- reading the VM ----------------------------------------------------------

def read_definition(request):
    try:
        vmconf = VmConf.load(request.vm_conf)
    except VmConfError as exc:
        raise BackupError('vm_conf: %s' % exc)
    definition = vmconf.managed_vm(request.name) or vmconf.hand_written_vm(request.name)
    if definition is None:
        raise BackupError('name: no VM %r is defined in %s (or the files it includes)' % (request.name, request.vm_conf))
    if definition.instance_of is not None:
        raise BackupError('name: %r is an instance of %r; vmm_backup backs up VMs defined whole in vm.conf, not instances'
                          % (request.name, definition.instance_of))
    if not definition.disks:
        raise BackupError('name: VM %r has no disk in %s; there is nothing to back up' % (request.name, request.vm_conf))
    return definition


def source_disks(definition):
    disks = []
    for index, disk in enumerate(definition.disks):
        # vmd resolves a relative disk path from its working directory, / (it runs as a daemon).
        path = os.path.join('/', disk.path)
        try:
            image = disk_image.inspect_image(path, name='disk %d of VM %s' % (index, definition.name))
        except disk_image.DiskError as exc:
            raise BackupError(str(exc))
        if image is None:
            raise BackupError('disk %d of VM %s, %s, does not exist' % (index, definition.name, path))
        chain, problems = backing_chain(path)
        if problems or image.problems:
            raise BackupError('disk %d of VM %s cannot be read whole: %s' % (index, definition.name,
                                                                             '; '.join(problems + image.problems)))
        disks.append(SourceDisk(index, path, image.format, image.size, chain))
    return disks


# -- names in dest -------------------------------------------------------------

def backup_pattern(name):
    return re.compile(re.escape(name) + '-' + _STAMP_PATTERN)


def existing_backups(request):
    """This VM's complete backups in dest (with a manifest), oldest first (their names sort by time)."""
    pattern = backup_pattern(request.name)
    found = []
    for entry in os.listdir(request.dest):
        path = os.path.join(request.dest, entry)
        if pattern.fullmatch(entry) and os.path.isfile(os.path.join(path, MANIFEST)):
            found.append(path)
    return sorted(found, key=_stamp_key)


def _stamp_key(path):
    """(stamp, suffix, name) of a backup: the order it was made in (the name only makes the order total)."""
    name = os.path.basename(path)
    stamp = re.search(r'-(' + _STAMP_PATTERN + r')\Z', name).group(1)
    base, _dash, suffix = stamp.partition('-')
    return base, int(suffix or 0), name


def new_backup_path(request, now):
    stamp = time.strftime(STAMP, time.gmtime(now))
    for suffix in range(_SAME_SECOND):
        name = '%s-%s%s' % (request.name, stamp, '-%d' % suffix if suffix else '')
        candidate = os.path.join(request.dest, name)
        if not os.path.lexists(candidate) and not os.path.lexists(_partial_path(candidate)):
            return candidate
    raise BackupError('dest: %s already holds %d backups of %s made in the same second' % (request.dest, _SAME_SECOND, request.name))


def _partial_path(backup):
    directory, name = os.path.split(backup)
    return os.path.join(directory, '.%s.partial' % name)


def _copy_path(disk_path):
    directory, name = os.path.split(disk_path)
    return os.path.join(directory, '.%s.vmm_backup-%s.tmp' % (name, secrets.token_hex(4)))


def leftovers(request, disks):
    """What killed runs left: partial backup directories of this VM in dest, temporary copies beside its disks,
    and the marker of a run killed while the VM was paused."""
    pattern = re.compile(r'\.' + re.escape(request.name) + '-' + _STAMP_PATTERN + r'\.partial')
    found = [os.path.join(request.dest, entry) for entry in os.listdir(request.dest) if pattern.fullmatch(entry)]
    for disk in disks:
        directory, name = os.path.split(os.path.realpath(disk.path))
        found += glob.glob(os.path.join(glob.escape(directory), '.%s.vmm_backup-*.tmp' % glob.escape(name)))
    if os.path.exists(pause_marker(request)):
        found.append(pause_marker(request))
    return sorted(found)


def expired(request, backups, now):
    """The backups retention removes once a new one exists: beyond ``keep`` (counting the new one), older than ``max_age_days``."""
    doomed = []
    if request.keep is not None:
        doomed += backups[:max(0, len(backups) + 1 - request.keep)]
    if request.max_age_days is not None:
        limit = now - request.max_age_days * 86400
        for backup in backups:
            if _created_at(backup) < limit and backup not in doomed:
                doomed.append(backup)
    return sorted(doomed, key=_stamp_key)


def _created_at(backup):
    return calendar.timegm(time.strptime(_stamp_key(backup)[0], STAMP))


# -- the lock ----------------------------------------------------------------

@contextlib.contextmanager
def vm_lock(request, timeout):
    """One vmm_backup run per VM and dest at a time (``.<vm>.vmm_backup-lock`` in dest)."""
    name = os.path.join(request.dest, '.%s.vmm_backup-lock' % request.name)
    descriptor = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise BackupError('another vmm_backup run of %s holds %s and did not finish within %d s'
                                      % (request.name, name, timeout))
                time.sleep(0.1)
        yield
    finally:
        os.close(descriptor)


# -- planning ------------------------------------------------------------------

def plan_backup(request, definition, state, now):
    if state not in ('running', 'stopped', 'paused'):
        raise BackupError('VM %s is %s; back it up when it is running, paused or stopped' % (request.name, state))
    if state == 'running' and request.if_running == 'fail':
        raise BackupError('VM %s is running and if_running is fail: stop it first, or use if_running: pause for a copy '
                          'made while it is paused' % request.name)
    disks = source_disks(definition)
    existing = existing_backups(request)
    return Plan(request, definition, state, disks, new_backup_path(request, now), expired(request, existing, now), existing)


# -- applying ------------------------------------------------------------------

def take_backup(plan, vmctl, now=None, hostname=None):
    """Make the backup the plan describes; return (manifest, removed backups, seconds the VM was paused)."""
    request = plan.request
    partial = _partial_path(plan.backup)
    copies = {}
    paused_seconds = None
    os.mkdir(partial, 0o700)
    try:
        if plan.pause:
            paused_seconds = _copy_tops_paused(plan, vmctl, copies)
        elif plan.state == 'paused':
            # paused by someone else: its top images do not change, and it stays paused
            for disk in plan.disks:
                copies[disk.index] = _stable_copy(disk.path)
        records = [_compact(disk, copies.get(disk.index), partial, vmctl) for disk in plan.disks]
        manifest = _manifest(plan, records, paused_seconds, now, hostname)
        with open(os.path.join(partial, MANIFEST), 'w', encoding='utf-8') as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(partial, plan.backup)
        disk_image._sync_directory(request.dest)  # pylint: disable=protected-access
    finally:
        for copy in copies.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy)
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)
    removed = []
    for backup in plan.expire:
        shutil.rmtree(backup)
        removed.append(backup)
    return manifest, removed, paused_seconds


def pause_marker(request):
    """The file that says this run paused the VM: a killed run leaves it, and the next run unpauses the VM."""
    return os.path.join(request.dest, '.%s.vmm_backup-paused' % request.name)


def vm_state(request, status):
    """The VM's state as the backup sees it: a VM that a killed run paused (its marker is there) counts as running."""
    if status is None:
        return 'stopped'
    if status.effective_state == 'paused' and os.path.exists(pause_marker(request)):
        return 'running'
    return status.effective_state


def remove_leftovers(request, found, status, vmctl):
    """Remove what killed runs left; unpause the VM first if one of them left it paused."""
    for path in found:
        if path == pause_marker(request) and status is not None and status.effective_state == 'paused':
            vmctl.unpause(request.name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _copy_tops_paused(plan, vmctl, copies):
    """Pause the VM, copy each disk's top image beside it (into ``copies``, which the caller removes), unpause;
    return the pause in seconds."""
    marker = pause_marker(plan.request)
    with open(marker, 'w', encoding='ascii') as handle:
        handle.write('%d\n' % os.getpid())
    vmctl.pause(plan.request.name)
    started = time.monotonic()
    try:
        for disk in plan.disks:
            copies[disk.index] = _stable_copy(disk.path)
    finally:
        try:
            vmctl.unpause(plan.request.name)
        except VmctlError as exc:
            raise BackupError('VM %s is still paused: vmctl unpause failed (%s); run vmctl unpause %s'
                              % (plan.request.name, exc, plan.request.name))
        paused = time.monotonic() - started
        os.unlink(marker)
    return round(paused, 3)


def _signature(path):
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def _stable_copy(path):
    """Copy ``path`` to a temporary file beside the file it is (a relative base still resolves: vmd reads it from the
    disk's real directory), again if it changed meanwhile."""
    path = os.path.realpath(path)
    for _attempt in range(COPY_ATTEMPTS):
        before = _signature(path)
        copy = _copy_path(path)
        descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with open(path, 'rb') as source, os.fdopen(descriptor, 'wb') as target:
                disk_image._copy_sparse(source, target, before[0])  # pylint: disable=protected-access
        except BaseException:
            os.unlink(copy)
            raise
        if _signature(path) == before:
            return copy
        os.unlink(copy)
    raise BackupError('%s kept changing while the VM was paused (%d copies); nothing was backed up' % (path, COPY_ATTEMPTS))


def _compact(disk, copy, partial, vmctl):
    """vmctl create -i of the disk (or its copy made while paused) into the partial directory; checked; its record.

    A stopped VM's disk is read while this run holds vmd's lock on it, so the VM cannot start meanwhile.
    """
    target = os.path.join(partial, disk.file_name)
    source = copy or disk.path
    directory = os.path.dirname(disk.path)
    lock = disk_image.exclusive_lock(disk.path) if copy is None else contextlib.nullcontext()
    try:
        with lock, disk_image._working_directory(directory):  # pylint: disable=protected-access
            vmctl.create(target, source=source, fmt=disk.format)
    except disk_image.DiskInUse:
        raise BackupError('disk %d, %s, is held by a running VM although vmctl status showed the VM stopped; '
                          'nothing was backed up' % (disk.index, disk.path))
    made = disk_image.inspect_image(target)
    wrong = []
    if made is None:
        raise BackupError('vmctl create -i reported success but %s does not exist' % target)
    if made.format != disk.format:
        wrong.append('format %s instead of %s' % (made.format, disk.format))
    if made.size < disk.size:
        wrong.append('size %d, smaller than the disk\'s %d' % (made.size, disk.size))
    if made.base:
        wrong.append('a base (%s)' % made.base)
    if wrong:
        raise BackupError('the copy of %s is not a whole image: %s' % (disk.path, ', '.join(wrong)))
    return dict(index=disk.index, source=disk.path, file=disk.file_name, format=disk.format, virtual_size=made.size,
                bytes=os.stat(target).st_size, sha256=sha256_of(target), source_chain=list(disk.chain))


def _manifest(plan, records, paused_seconds, now, hostname):
    created = time.time() if now is None else now
    return dict(
        version=MANIFEST_VERSION,
        vm=plan.request.name,
        created_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(created)),
        host=hostname or socket.gethostname(),
        vm_conf=plan.request.vm_conf,
        state=plan.state,
        consistency='paused' if plan.pause else plan.state,
        paused_seconds=paused_seconds,
        definition=plan.definition.as_dict(),
        disks=records,
    )


def diff(plan, made=True):
    """Ansible diff: the VM's backups in dest before and after."""
    before = [os.path.basename(path) for path in plan.existing]
    gone = {os.path.basename(path) for path in plan.expire}
    after = [name for name in before if name not in gone] + ([os.path.basename(plan.backup)] if made else [])
    return {'before': {'backups': before}, 'after': {'backups': after},
            'before_header': plan.request.dest, 'after_header': plan.request.dest}
