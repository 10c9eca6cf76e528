# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The one client of vmctl(8) that every module uses.

It runs vmctl with an argv list (never a shell), options before the positional
argument (OpenBSD's getopt does not permute), with ``LANG=C``; parses the
``vmctl status`` table into typed records; and turns vmctl's error messages
into typed exceptions that keep the raw text, so a module can say exactly what
went wrong. The facts come from vmctl(8)/vmd(8) sources (see the collection's
reference notes): every string matched here is one vmctl prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from dataclasses import asdict, dataclass

from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import MIB, SizeError, fmt_scaled, scan_scaled

STATES = ('running', 'stopped', 'paused', 'stopping', 'waiting', 'unknown')
# States in which vmd has a live process for the VM. `waiting` with a PID is live too (see VmStatus.live).
LIVE_STATES = ('running', 'paused', 'stopping')

STATUS_HEADER = '   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME'

MAX_NAME_LENGTH = 63
MAX_DISKS = 4
MAX_INTERFACES = 4

_NAME_CHARS = re.compile(r'[A-Za-z0-9._-]+')  # fullmatch: `$` would pass a final newline
_SIZE_FIELD = re.compile(r'\d+(?:\.\d)?[BKMGTPE]')
# An optional "<prefix>: " (vmctl: / stopping vm NAME: / waiting for vm: ) before the message.
_LINE_PREFIX = re.compile(r'^(?:vmctl: |(?:stopping|waiting for) vm(?: [^:]+)?: )')


class VmctlError(Exception):
    """vmctl failed. Keeps the command, exit code and raw output."""

    def __init__(self, message, argv=None, rc=None, stdout='', stderr=''):
        super().__init__(message)
        self.message = message
        self.argv = list(argv or [])
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def __str__(self):
        text = self.message
        if self.argv:
            text += ' (command: %s' % ' '.join(self.argv)
            if self.rc is not None:
                text += ', exit %s' % self.rc
            raw = (self.stderr or '').strip()
            if raw:
                text += ', vmctl said: %s' % raw.replace('\n', ' | ')
            text += ')'
        return text


class VmdUnavailable(VmctlError):
    """vmd is not running, or its control socket cannot be reached."""


class PermissionDenied(VmctlError):
    """vmd refused the request for this user (owner rules, socket mode)."""


class VmNotFound(VmctlError):
    """No VM of that name or id is known to vmd."""


class VmAlreadyRunning(VmctlError):
    """start refused: the VM runs already, or a stopped VM was given new options."""


class VmStopInProgress(VmctlError):
    """stop/wait refused: the VM is already shutting down (use stop -f)."""


class VmNotRunning(VmctlError):
    """stop/wait refused: the VM is defined but not running."""


class NoTapDevice(VmctlError):
    """No free /dev/tapN for the VM's interfaces: all MAX_TAP nodes busy (EBUSY)."""


class StartFileMissing(VmctlError):
    """start failed with ENOENT: no free /dev/tapN (vmm.c opentap ran out of nodes) or the boot image is gone."""

    hint = ('vmd reports this when it finds no free /dev/tapN for the VM\'s interfaces (opentap stops at the first '
            'missing node: create more with "cd /dev && sh MAKEDEV tapN") or when the VM\'s boot image (vm.conf "boot") '
            'does not exist')

    def __str__(self):
        return '%s: %s' % (super().__str__(), self.hint)


class DiskUnavailable(VmctlError):
    """vmd could not open a disk: missing, unreadable, or locked by a running VM."""


class VmctlUsageError(VmctlError):
    """vmctl printed its usage text: the argv was wrong."""


class VmctlTimeout(VmctlError):
    """vmctl did not finish in time and was killed."""


class VmctlOutputError(VmctlError):
    """vmctl printed something this client cannot parse."""


# Message fragments (after the "vmctl: " or "stopping vm x: " prefix) → exception class.
# Order matters: the first match wins.
_ERROR_PATTERNS = (
    (re.compile(r'^connect: .*: (No such file or directory|Connection refused)$'), VmdUnavailable),
    (re.compile(r'^connect: .*: Permission denied$'), PermissionDenied),
    (re.compile(r'Operation not permitted$'), PermissionDenied),
    (re.compile(r'^vm not found$'), VmNotFound),
    (re.compile(r'^console not found$'), VmNotFound),
    (re.compile(r'^vmop_result_read: '), VmNotFound),
    (re.compile(r'^start vm command failed: Operation already in progress$'), VmAlreadyRunning),
    (re.compile(r'^failed: Operation already in progress$'), VmStopInProgress),
    (re.compile(r'^failed: Invalid argument$'), VmNotRunning),
    (re.compile(r'^cannot stop vm that is not running$'), VmNotRunning),
    # config_setvm (config.c): ENOENT from opentap (no /dev/tapN left) and from opening the boot image alike.
    (re.compile(r'^start vm command failed: No such file or directory$'), StartFileMissing),
    (re.compile(r'^start vm command failed: Device busy$'), NoTapDevice),
    (re.compile(r'^could not open disk image\(s\)$'), DiskUnavailable),
    (re.compile(r'^usage:'), VmctlUsageError),
    (re.compile(r'^(ambiguous|unknown) argument: '), VmctlUsageError),
)


def classify_error(stderr):
    """Return (exception class, message) for vmctl's stderr text."""
    lines = [line for line in (stderr or '').splitlines() if line.strip()]
    for line in lines:
        message = _LINE_PREFIX.sub('', line.strip())
        for pattern, error_class in _ERROR_PATTERNS:
            if pattern.search(message):
                return error_class, message
    message = _LINE_PREFIX.sub('', lines[-1].strip()) if lines else 'vmctl failed without a message'
    return VmctlError, message


@dataclass
class VmStatus:
    """One row of ``vmctl status``."""

    id: int
    pid: int | None
    vcpus: int
    maxmem: int
    curmem: int | None
    tty: str | None
    owner: str
    owner_group: str | None
    state: str
    name: str

    @property
    def live(self):
        """vmd has a process for the VM. A VM queued by a reload and started by hand shows `waiting` with
        its PID: config_setvm (config.c) never clears VM_STATE_WAITING, only start_vm_batch does."""
        return self.state in LIVE_STATES or (self.state == 'waiting' and self.pid is not None)

    @property
    def running(self):
        return self.live

    @property
    def effective_state(self):
        """The state to report: `waiting` with a PID is `running` (see live)."""
        return 'running' if self.state == 'waiting' and self.pid is not None else self.state

    def shows_memory(self, configured):
        """Whether this row's MAXMEM is what vmctl prints for a VM defined with ``configured`` bytes."""
        expected = vmm_memory_size(configured) if self.live else configured
        return fmt_scaled(expected) == fmt_scaled(self.maxmem)

    def as_dict(self):
        return asdict(self)


def vmm_memory_size(configured):
    """MAXMEM of a running VM as vmctl status shows it: vmm(4)'s count of the memory ranges vmd registered.

    vmd's get_info_vm (vmm.c) asks the kernel (VMM_IOC_INFO: vm_memory_size), which
    vm_create_check_mem_ranges (sys/dev/vmm/vmm.c) sums over every non-MMIO range that
    create_memory_map (x86_vm.c) made: the RAM, the reserved 640K-1M hole and a 4M copy of the
    BIOS below 4G. So a running VM shows its configured memory plus 4M (516M for 512M); fmt_scaled
    hides the difference from 1G on. A stopped VM shows the configured value.
    """
    if configured - MIB <= 4 * MIB:
        return 5 * MIB
    return configured + 4 * MIB


def _parse_memory(field, line):
    if not _SIZE_FIELD.fullmatch(field):
        raise VmctlOutputError('cannot parse memory %r in vmctl status row: %r' % (field, line))
    return scan_scaled(field)


def parse_status_row(line):
    """Parse one status row (printf "%5u %5s %5zd %7s %7s %7s %12s %8s %s")."""
    # The name is the rest of the line and is never padded; the owner never has blanks.
    fields = line.split(None, 8)
    if len(fields) != 9:
        raise VmctlOutputError('cannot parse vmctl status row: %r' % line)
    vm_id, pid, vcpus, maxmem, curmem, tty, owner, state, name = fields
    if not vm_id.isdigit() or not vcpus.isdigit() or not (pid.isdigit() or pid == '-'):
        raise VmctlOutputError('cannot parse vmctl status row: %r' % line)
    if state not in STATES:
        raise VmctlOutputError('unknown VM state %r in vmctl status row: %r' % (state, line))
    user, sep, group = owner.partition(':')
    return VmStatus(
        id=int(vm_id),
        pid=None if pid == '-' else int(pid),
        vcpus=int(vcpus),
        maxmem=_parse_memory(maxmem, line),
        curmem=None if curmem == '-' else _parse_memory(curmem, line),
        tty=None if tty == '-' else tty,
        owner=user,
        owner_group=group if sep else None,
        state=state,
        name=name.rstrip('\n'),
    )


def parse_status(stdout):
    """Parse the whole ``vmctl status`` output into VmStatus records.

    The header is always printed; its absence means this is not vmctl status.
    """
    lines = [line for line in (stdout or '').splitlines() if line.strip()]
    if not lines or lines[0].split() != STATUS_HEADER.split():
        raise VmctlOutputError('vmctl status output has no header line; got: %r' % (stdout or '')[:400])
    return [parse_status_row(line) for line in lines[1:]]


def vm_name_problem(name):
    """Return None if vmd accepts ``name``, else the rule it breaks."""
    if not isinstance(name, str) or name == '':
        return 'a VM name must be a non-empty string'
    if len(name) > MAX_NAME_LENGTH:
        return 'a VM name is at most %d characters (got %d)' % (MAX_NAME_LENGTH, len(name))
    if not _NAME_CHARS.fullmatch(name):
        return 'a VM name may contain only letters, digits, ".", "_" and "-"'
    if name[0] in '.-_':
        return 'a VM name must not start with ".", "-" or "_"'
    if name.isdigit():
        return 'a purely numeric VM name is read by vmctl as a VM id'
    return None


class Vmctl:
    """Runs vmctl and interprets its answers. ``calls`` records every argv."""

    def __init__(self, binary='vmctl', module=None, environ=None):
        if module is not None:
            path = module.get_bin_path(binary, required=False)
        else:
            path = binary if os.path.isabs(binary) else shutil.which(binary)
        if not path:
            raise VmctlError('vmctl not found on PATH (%s): is this an OpenBSD host with vmd(8)?' % os.environ.get('PATH', ''))
        self.binary = path
        self.environ = dict(os.environ if environ is None else environ)
        self.environ.update(LANG='C', LC_ALL='C')
        self.calls = []

    # -- plumbing -------------------------------------------------------

    def run(self, args, timeout=None, check=True):
        """Run ``vmctl args...``; return (rc, stdout, stderr). Raise on failure if check."""
        argv = [self.binary] + [str(arg) for arg in args]
        self.calls.append(['vmctl'] + argv[1:])
        try:
            # Not run_command: vmctl stop -w / wait block, and callers need a timeout that kills them.
            process = subprocess.run(  # pylint: disable=ansible-bad-function
                argv, stdin=subprocess.DEVNULL, capture_output=True, env=self.environ, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise VmctlTimeout('vmctl did not finish within %s seconds' % timeout, argv=self.calls[-1],
                               stdout=_text(exc.stdout), stderr=_text(exc.stderr))
        except OSError as exc:
            raise VmctlError('cannot run vmctl: %s' % exc, argv=self.calls[-1])
        stdout, stderr = _text(process.stdout), _text(process.stderr)
        if check and process.returncode != 0:
            self.raise_for(process.returncode, stdout, stderr)
        return process.returncode, stdout, stderr

    def raise_for(self, rc, stdout, stderr):
        error_class, message = classify_error(stderr)
        raise error_class(message, argv=self.calls[-1], rc=rc, stdout=stdout, stderr=stderr)

    # -- queries --------------------------------------------------------

    def status(self, name=None):
        """All VMs vmd knows (or the one named). Exit status is not trusted (see vmctl-facts)."""
        args = ['status'] + ([name] if name is not None else [])
        rc, stdout, stderr = self.run(args, check=False)
        if rc != 0 and stderr.strip():
            # A real failure prints a message; an empty table exits 1 silently.
            self.raise_for(rc, stdout, stderr)
        return parse_status(stdout)

    def find(self, name):
        """The status record of VM ``name``, or None."""
        for record in self.status():
            if record.name == name:
                return record
        return None

    # -- commands -------------------------------------------------------

    def start(self, name, kernel=None, boot_device=None, disks=(), cdrom=None, memory=None,
              local_interfaces=0, switches=(), interface_count=None, instance_of=None, timeout=None):
        args = ['start']
        if kernel:
            args += ['-b', kernel]
        if boot_device:
            args += ['-B', boot_device]
        for disk in disks:
            args += ['-d', disk]
        if interface_count:
            args += ['-i', str(interface_count)]
        args += ['-L'] * int(local_interfaces or 0)
        if memory is not None:
            args += ['-m', _size_arg(memory, 'memory')]
        for switch in switches:
            args += ['-n', switch]
        if cdrom:
            args += ['-r', cdrom]
        if instance_of:
            args += ['-t', instance_of]
        args.append(name)
        return self.run(args, timeout=timeout)[2].strip()

    def stop(self, name, wait=False, force=False, timeout=None):
        flags = ('f' if force else '') + ('w' if wait else '')
        args = ['stop'] + (['-' + flags] if flags else []) + [name]
        return self.run(args, timeout=timeout)[2].strip()

    def stop_all(self, wait=False, timeout=None):
        return self.run(['stop', '-wa' if wait else '-a'], timeout=timeout)[2].strip()

    def wait(self, name, timeout=None):
        return self.run(['wait', name], timeout=timeout)[2].strip()

    def pause(self, name):
        return self.run(['pause', name])[2].strip()

    def unpause(self, name):
        return self.run(['unpause', name])[2].strip()

    def reload(self):
        return self.run(['reload'])[2].strip()

    def load(self, path):
        return self.run(['load', path])[2].strip()

    def reset(self, what='all'):
        return self.run(['reset', what])[2].strip()

    def create(self, path, size=None, base=None, source=None, fmt=None):
        """vmctl create; ``fmt`` adds the raw:/qcow2: prefix; returns stderr (warnings + result)."""
        if base and source:
            raise VmctlError('a disk is created either from a base (-b) or from a source image (-i), not both')
        args = ['create']
        if base:
            args += ['-b', base]
        if source:
            args += ['-i', source]
        if size is not None:
            args += ['-s', _size_arg(size, 'size')]
        args.append('%s:%s' % (fmt, path) if fmt else path)
        return self.run(args)[2].strip()


def _size_arg(value, what):
    """vmctl reads sizes with scan_scaled: pass ints as bytes, validate strings first."""
    try:
        scan_scaled(value)
    except SizeError as exc:
        raise VmctlError('%s: %s' % (what, exc))
    return str(value).strip()


def _text(data):
    if data is None:
        return ''
    if isinstance(data, bytes):
        return data.decode('utf-8', 'replace')
    return data
