# -*- coding: utf-8 -*-
# Copyright: openbsd.vmm contributors
# BSD 2-Clause License (see LICENSE)
"""The VM lifecycle behind openbsd.vmm.vmm_vm: validate, plan, apply.

A run goes: validate every requested VM (nothing touched yet) → read vm.conf and
one ``vmctl status`` → compute the new managed part of vm.conf and, per VM, the
steps from its current state to the one asked for → if nothing differs, stop
there (one vmctl call, no write) → otherwise check the candidate vm.conf with
``vmd -n -f``, stop what must stop, put the file in place (backup, atomic
rename), ``vmctl reload`` (rolled back if it fails), then start, pause or
unpause, and read ``status`` once more for the returned records.

Reload's side effect: ``vmctl reload`` starts every *enabled* VM that is not
running. So a managed VM whose asked-for state is ``stopped`` is written with
``disable`` (``enabled: true`` together with ``state: stopped`` is refused), and
a VM that is only ``present`` keeps the enable flag it has (a new one gets
``disable``), so that no reload starts a VM nobody asked to run. Other enabled,
stopped VMs (hand-written ones) that a reload would start are named in a warning.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import tempfile
import time

from dataclasses import dataclass, field

from ansible_collections.openbsd.vmm.plugins.module_utils.devices import tap_capacity
from ansible_collections.openbsd.vmm.plugins.module_utils.host_lock import HostLock, HostLockTimeout
from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import MIB, SizeError, fmt_scaled, scan_scaled
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import (
    ALLOW_INSTANCE_FLAGS, BOOT_DEVICES, DISK_FORMATS, Disk, Interface, VmConf, VmDefinition, unquotable,
)
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import (
    MAX_DISKS, MAX_INTERFACES, VmAlreadyRunning, VmctlError, VmctlTimeout, VmNotFound, VmNotRunning,
    VmStopInProgress, vm_name_problem,
)

STATES = ('present', 'running', 'stopped', 'restarted', 'paused', 'absent')
MIN_MEMORY = MIB
MAX_MEMORY = 128 * 1024 * MIB           # VMM_MAX_VM_MEM_SIZE (dev/vmm/vmm.h)
DEFAULT_MEMORY = 512 * MIB
# vmd titles its processes "vmd: <title>" (vmd.c procs[], proc.c) and each VM "vmd: <name>" (vm.c setproctitle).
VMD_PROCESS_TITLES = frozenset(('parent', 'priv', 'control', 'vmm', 'agentx'))
# Options that describe the VM's definition (as opposed to how to get it into a state).
CONFIG_OPTIONS = ('memory', 'cpus', 'disks', 'cdrom', 'boot', 'boot_device', 'interfaces', 'owner', 'enabled',
                  'instance_of', 'allow_instance', 'allow_instance_owner')
# Options that are not written, only steer the run; top-level values are the defaults of `vms` entries.
CONTROL_OPTIONS = ('state', 'stop_timeout', 'force', 'restart_on_change')

_LLADDR = re.compile(r'[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}')  # fullmatch: `$` would pass a final newline
_OWNER_NAME = r'[A-Za-z_][A-Za-z0-9_.-]*'
_OWNER = re.compile(r'(?:\d+|(?P<user>%s)?(?::(?P<group>%s))?)' % (_OWNER_NAME, _OWNER_NAME))
_GROUP_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_.-]{0,14}')


class ValidationError(Exception):
    """The request cannot be carried out; ``problems`` lists every reason (VM and field named)."""

    def __init__(self, problems):
        super().__init__('; '.join(problems))
        self.problems = problems


class LifecycleError(Exception):
    """Something failed while changing the host."""


class StuckStopping(LifecycleError):
    pass


# ---------------------------------------------------------------------------
# Requests: what the user asked for, validated

@dataclass
class VmRequest:
    name: str
    state: str
    stop_timeout: int
    force: bool
    restart_on_change: bool
    options: dict                       # config options as given (None = keep)
    definition: VmDefinition | None = None     # desired vm.conf block (None: absent, or hand-written VM)
    hand_written: VmDefinition | None = None   # set when the VM is defined outside the managed part

    @property
    def configures(self):
        return any(self.options.get(option) is not None for option in CONFIG_OPTIONS)


def merge_entries(params):
    """The per-VM entries of a run: ``name`` alone or each of ``vms``, top-level values as their defaults."""
    if params.get('vms') is None:
        return [dict(params)]
    entries = []
    for entry in params['vms']:
        merged = dict(entry)
        for option in CONFIG_OPTIONS + CONTROL_OPTIONS:
            if merged.get(option) is None:
                merged[option] = params.get(option)
        entries.append(merged)
    return entries


def build_requests(entries, vmconf, path_exists=os.path.exists):
    """Validate every entry against the rules and the whole vm.conf; return VmRequests or raise ValidationError."""
    problems = []
    requests = []
    seen = set()
    for entry in entries:
        name = entry.get('name')
        label = 'vm %r' % (name,)
        issue = vm_name_problem(name) if isinstance(name, str) else 'name is required'
        if not issue and name in VMD_PROCESS_TITLES:
            issue = ("%r is the title of one of vmd's own processes (vmd: %s); a VM of that name would make its owner's "
                     "pkill rule match vmd itself" % (name, name))
        if issue:
            problems.append('%s: name: %s' % (label, issue))
            continue
        if name in seen:
            problems.append('%s: name: listed more than once in vms' % label)
            continue
        seen.add(name)
        stop_timeout = entry.get('stop_timeout')
        # Only a missing value takes the default: 0 goes to the check (not `or 60`, which read 0 as 60).
        request = VmRequest(name=name, state=entry.get('state') or 'present', stop_timeout=60 if stop_timeout is None else stop_timeout,
                            force=bool(entry.get('force')), restart_on_change=bool(entry.get('restart_on_change')),
                            options={option: entry.get(option) for option in CONFIG_OPTIONS})
        before = len(problems)
        _check_request(request, vmconf, path_exists, problems.append)
        if len(problems) == before:
            requests.append(request)
    # Across VMs (lladdr uniqueness, instance parents): among the entries that passed their own checks.
    _check_across(requests, vmconf, problems.append)
    if problems:
        raise ValidationError(problems)
    return requests


def _check_request(request, vmconf, path_exists, report):
    name, options = request.name, request.options

    def problem(option, text):
        report('vm %r: %s: %s' % (name, option, text))

    if request.state not in STATES:
        problem('state', 'must be one of %s' % ', '.join(STATES))
        return
    if not isinstance(request.stop_timeout, int) or request.stop_timeout <= 0:
        problem('stop_timeout', 'must be a positive number of seconds')
    hand_written = vmconf.hand_written_vm(name)
    if hand_written is not None:
        request.hand_written = hand_written
        where = '%s:%s' % (hand_written.path, hand_written.line)
        if request.state == 'absent':
            problem('state', 'the VM is defined by hand outside the managed part of vm.conf (%s); '
                    'the collection only removes VMs it manages' % where)
        elif request.configures:
            problem('name', 'the VM is defined by hand outside the managed part of vm.conf (%s); vmd would see it twice. '
                    'Remove that block or leave out the configuration options to manage only its run state' % where)
        return
    if request.state == 'absent':
        return

    cpus = options.get('cpus')
    if cpus is not None and cpus != 1:
        problem('cpus', 'the host\'s vmd does not support setting the number of CPUs (vm.conf has no cpu option and '
                'vmctl always starts VMs with 1 vCPU); use cpus: 1 or leave it out')

    current = vmconf.managed_vm(name)
    definition = VmDefinition(name=name) if current is None else _copy_definition(current)
    memory = options.get('memory')
    if memory is not None:
        try:
            size = scan_scaled(memory)
        except SizeError as exc:
            problem('memory', str(exc))
        else:
            if size < MIN_MEMORY:
                problem('memory', "%r is %d bytes; vmd needs at least 1M (a bare number means bytes: write '1G', not 1024)" % (memory, size))
            elif size > MAX_MEMORY:
                problem('memory', '%r is larger than the limit of 128G' % (memory,))
            else:
                definition.memory = size - size % MIB

    if options.get('instance_of') is not None:
        definition.instance_of = options['instance_of'] or None
        if definition.instance_of:
            issue = vm_name_problem(definition.instance_of)
            if issue:
                problem('instance_of', issue)
            elif definition.instance_of == name:
                problem('instance_of', 'a VM cannot be an instance of itself')

    needs_media = request.state in ('running', 'restarted', 'paused')
    for option in ('boot', 'cdrom'):
        value = options.get(option)
        if value is None:
            continue
        if value == '':
            setattr(definition, option, None)
            continue
        if _path_problem(value, problem, option):
            continue
        # vmd resolves boot paths when it reads vm.conf; an ISO only when the VM starts.
        if (option == 'boot' or needs_media) and not path_exists(value):
            problem(option, '%s does not exist' % value)
            continue
        setattr(definition, option, value)

    if options.get('boot_device') is not None:
        if options['boot_device'] in ('', 'none'):
            definition.boot_device = None
        elif options['boot_device'] not in BOOT_DEVICES:
            problem('boot_device', 'must be one of %s' % ', '.join(BOOT_DEVICES))
        else:
            definition.boot_device = options['boot_device']

    if options.get('disks') is not None:
        definition.disks = _check_disks(options['disks'], path_exists, problem)

    if options.get('interfaces') is not None:
        definition.interfaces = _check_interfaces(options['interfaces'], vmconf, problem)

    for option in ('owner', 'allow_instance_owner'):
        value = options.get(option)
        if value is None:
            continue
        value = str(value)
        issue = _owner_problem(value) if value else None
        if issue:
            problem(option, issue)
        else:
            setattr(definition, option, value or None)

    if options.get('allow_instance') is not None:
        flags = []
        for flag in options['allow_instance']:
            if flag not in ALLOW_INSTANCE_FLAGS:
                problem('allow_instance', '%r is not one of %s' % (flag, ', '.join(ALLOW_INSTANCE_FLAGS)))
            elif flag not in flags:
                flags.append(flag)
        definition.allow_instance = flags

    enabled = options.get('enabled')
    if enabled is not None:
        if enabled and request.state == 'stopped':
            problem('enabled', 'enabled: true with state: stopped cannot hold: vmctl reload (and vmd at boot) '
                    'starts every enabled VM; a stopped VM is written with "disable"')
        definition.enabled = bool(enabled)
    elif request.state in ('running', 'restarted', 'paused'):
        definition.enabled = True
    elif request.state == 'stopped' or current is None:
        # present keeps the flag it has; a new one must not be started by the next reload.
        definition.enabled = False

    # (Disks given but refused above have their own messages already.)
    if not definition.disks and not options.get('disks') and definition.cdrom is None and definition.instance_of is None:
        problem('disks', 'a VM needs at least one disk or a cdrom (vmd refuses a VM without devices)')
    request.definition = definition


def _copy_definition(current):
    return VmDefinition(
        name=current.name, instance_of=current.instance_of, enabled=current.enabled, memory=current.memory,
        boot=current.boot, boot_device=current.boot_device, cdrom=current.cdrom,
        disks=[Disk(disk.path, disk.format) for disk in current.disks],
        interfaces=[Interface(**interface.as_dict()) for interface in current.interfaces],
        owner=current.owner, allow_instance=list(current.allow_instance), allow_instance_owner=current.allow_instance_owner)


def _path_problem(value, problem, option):
    if not isinstance(value, str) or not value.startswith('/'):
        problem(option, '%r must be an absolute path' % (value,))
        return True
    if len(value.encode('utf-8')) >= 1024:
        problem(option, '%r is longer than PATH_MAX' % (value[:40] + '...',))
        return True
    reason = unquotable(value)
    if reason:
        problem(option, '%r cannot be written to vm.conf: %s' % (value, reason))
        return True
    return False


def _check_disks(disks, path_exists, problem):
    result = []
    if len(disks) > MAX_DISKS:
        problem('disks', '%d disks given; vmd supports at most %d' % (len(disks), MAX_DISKS))
        return result
    for disk in disks:
        if isinstance(disk, str):
            disk = {'path': disk}
        if not isinstance(disk, dict):
            problem('disks', '%r must be a path or a dict with path and format' % (disk,))
            continue
        path, fmt = disk.get('path'), disk.get('format')
        if _path_problem(path, problem, 'disks'):
            continue
        if fmt is not None and fmt not in DISK_FORMATS:
            problem('disks', '%s: format %r must be one of %s' % (path, fmt, ', '.join(DISK_FORMATS)))
            continue
        if not path_exists(path):
            problem('disks', '%s does not exist (create it with openbsd.vmm.vmm_disk first)' % path)
            continue
        if any(existing.path == path for existing in result):
            problem('disks', '%s is listed twice' % path)
            continue
        result.append(Disk(path, fmt))
    return result


def _check_interfaces(interfaces, vmconf, problem):
    result = []
    if len(interfaces) > MAX_INTERFACES:
        problem('interfaces', '%d interfaces given; vmd supports at most %d' % (len(interfaces), MAX_INTERFACES))
        return result
    for index, spec in enumerate(interfaces):
        where = 'interfaces[%d]' % index
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            problem(where, '%r must be a dict' % (spec,))
            continue
        interface = Interface(locked=bool(spec.get('locked')), local=bool(spec.get('local')))
        switch = spec.get('switch')
        if switch is not None:
            reason = unquotable(switch) if isinstance(switch, str) else 'not a string'
            if reason:
                problem(where + '.switch', '%r: %s' % (switch, reason))
                continue
            if switch not in vmconf.summary.switches:
                known = ', '.join(sorted(vmconf.summary.switches)) or 'none'
                problem(where + '.switch', 'switch %r is not defined in %s (defined: %s)' % (switch, vmconf.path, known))
                continue
            interface.switch = switch
        lladdr = spec.get('lladdr')
        if lladdr is not None:
            if not isinstance(lladdr, str) or not _LLADDR.fullmatch(lladdr):
                problem(where + '.lladdr', '%r is not a MAC address like fe:e1:ba:d0:00:01' % (lladdr,))
                continue
            lladdr = ':'.join('%02x' % int(octet, 16) for octet in lladdr.split(':'))
            if int(lladdr[:2], 16) & 1:
                problem(where + '.lladdr', '%s is a multicast address; a NIC needs a unicast one' % lladdr)
                continue
            interface.lladdr = lladdr
        group = spec.get('group')
        if group is not None:
            if not isinstance(group, str) or not _GROUP_NAME.fullmatch(group) or group[-1].isdigit():
                problem(where + '.group', '%r is not an interface group name (at most 15 characters, '
                        'letters first, not ending in a digit)' % (group,))
                continue
            interface.group = group
        rdomain = spec.get('rdomain')
        if rdomain is not None:
            if isinstance(rdomain, bool) or not isinstance(rdomain, int) or not 0 <= rdomain <= 255:
                problem(where + '.rdomain', '%r must be a number from 0 to 255' % (rdomain,))
                continue
            interface.rdomain = rdomain
        result.append(interface)
    return result


def _owner_problem(value):
    """Why ``value`` cannot be a VM's owner (parse.y: names must resolve on the host), or None."""
    match = _OWNER.fullmatch(value)
    if not match or value == ':':
        return "%r is not an owner: use 'user', 'user:group', ':group' or a numeric uid" % value
    # A numeric uid matches the first alternative: both groups are None and nothing is looked up.
    user, group = match.group('user'), match.group('group')
    try:
        if user:
            pwd.getpwnam(user)
    except KeyError:
        return 'user %r does not exist on this host' % user
    try:
        if group:
            grp.getgrnam(group)
    except KeyError:
        return 'group %r does not exist on this host' % group
    return None


def _check_across(requests, vmconf, report):
    """Rules that look at all VMs together: lladdr uniqueness, instance parents."""
    requested = {request.name: request for request in requests}
    owners = {}
    # Every VM that will be in vm.conf after the run, with its lladdrs.
    for definition in vmconf.hand_written + vmconf.managed:
        if definition.name in requested and requested[definition.name].definition is not None:
            continue
        if definition.name in requested and requested[definition.name].state == 'absent':
            continue
        for lladdr in definition.lladdrs:
            owners.setdefault(lladdr.lower(), []).append('vm %r (%s:%s)' % (definition.name, definition.path, definition.line))
    for request in requests:
        if request.definition is None:
            continue
        for lladdr in request.definition.lladdrs:
            owners.setdefault(lladdr, []).append('vm %r' % request.name)
    for request in requests:
        if request.definition is None:
            continue
        for index, interface in enumerate(request.definition.interfaces):
            users = owners.get(interface.lladdr, []) if interface.lladdr else []
            if len(users) > 1:
                others = [user for user in users if user != 'vm %r' % request.name] or users[1:]
                report('vm %r: interfaces[%d].lladdr: %s is also used by %s' % (request.name, index, interface.lladdr, ', '.join(others)))
        parent = request.definition.instance_of
        if parent:
            parent_request = requested.get(parent)
            if parent_request is not None and parent_request.state == 'absent':
                report('vm %r: instance_of: the parent VM %r is being removed in the same run' % (request.name, parent))
            elif parent_request is None and vmconf.managed_vm(parent) is None:
                hand = vmconf.hand_written_vm(parent)
                if hand is None:
                    report('vm %r: instance_of: the parent VM %r is not defined in %s' % (request.name, parent, vmconf.path))
                elif hand.path == vmconf.path and vmconf.block is not None and hand.line > vmconf.before.count('\n') + 1:
                    report('vm %r: instance_of: the parent VM %r is defined below the managed part (%s:%s); '
                           'vmd needs it first' % (request.name, parent, hand.path, hand.line))
    for request in requests:
        if request.state != 'absent':
            continue
        children = [other.name for other in requests if other.definition is not None and other.definition.instance_of == request.name]
        children += [vm.name for vm in vmconf.hand_written + vmconf.managed
                     if vm.instance_of == request.name and vm.name not in requested]
        if children:
            report('vm %r: state: cannot remove a VM that %s are instances of' % (request.name, ', '.join(repr(c) for c in children)))


# ---------------------------------------------------------------------------
# Planning

@dataclass
class VmPlan:
    request: VmRequest
    status: object                      # VmStatus or None
    config_changed: bool = False
    stop: bool = False                  # stop (stop -w) before the reload
    unpause_first: bool = False
    start: bool = False
    pause: bool = False
    unpause: bool = False
    restart_required: bool = False
    outdated: bool = False              # runs with an older definition than vm.conf's
    steps: list = field(default_factory=list)   # human-readable, for the result

    @property
    def acts(self):
        return self.stop or self.start or self.pause or self.unpause or self.unpause_first


def plan_vm(request, status, current_definition):
    """The steps that bring one VM from ``status`` (a VmStatus or None) to ``request.state``."""
    plan = VmPlan(request=request, status=status)
    state = status.state if status is not None else None
    live = status is not None and status.live
    if live and state == 'waiting':
        state = 'running'       # queued by a reload, then started by hand: it runs
    if request.state == 'absent':
        plan.config_changed = current_definition is not None
    elif request.definition is not None:
        plan.config_changed = request.definition != current_definition
    desired = request.state
    # A running VM keeps the definition it was started with; memory is the part vmctl status shows.
    outdated = live and (plan.config_changed or runs_older_definition(status, request.definition))
    restart = outdated and request.restart_on_change and desired not in ('stopped', 'absent')

    if desired in ('stopped', 'absent', 'restarted') or restart:
        if live or state == 'waiting':
            plan.stop = True
            plan.unpause_first = state == 'paused'
            plan.steps.append('stop')
    if desired in ('running', 'paused', 'restarted') or restart:
        if plan.stop or not live:
            plan.start = True
            plan.steps.append('start')
        elif state == 'paused' and desired == 'running':
            plan.unpause = True
            plan.steps.append('unpause')
        elif state == 'stopping':
            # A VM on its way down: see it down, then start it again.
            plan.stop = plan.start = True
            plan.steps.extend(('stop', 'start'))
    if desired == 'paused' and state != 'paused':
        plan.pause = True
        plan.steps.append('pause')
    if restart and desired == 'present' and state == 'paused':
        plan.pause = True
        plan.steps.append('pause')
    plan.outdated = outdated
    plan.restart_required = outdated and not plan.stop and desired != 'absent'
    return plan


def runs_older_definition(status, definition):
    """True when vmd's idea of the VM's memory (as vmctl status shows it) is not what its vm.conf definition says.

    A running VM shows vmm(4)'s count (configured + 4M, vmctl.vmm_memory_size), a stopped one the
    configured value: both are compared as vmctl prints them, so an unchanged VM never looks outdated.
    """
    if status is None or definition is None or definition.instance_of is not None:
        return False
    wanted = definition.memory if definition.memory is not None else DEFAULT_MEMORY
    return not status.shows_memory(wanted)


# ---------------------------------------------------------------------------
# Applying

class Converger:
    """Runs one vmm_vm invocation against a host (a module-like object) and its vmctl."""

    def __init__(self, module, vmctl, vm_conf_path, keep_backup, dev_dir, lock_timeout, staggered_start, poll_interval=0.2):
        self.module = module
        self.staggered_start = staggered_start  # starts are left to the reload's staggered start (vmd.c start_vm_batch)
        self.vmctl = vmctl
        self.path = vm_conf_path
        self.keep_backup = keep_backup
        self.poll_interval = poll_interval
        self.dev_dir = dev_dir
        self.lock_timeout = lock_timeout
        self.commands = vmctl.calls
        self.warnings = []
        self.backup_file = None
        self.diff = None
        self.host_changed = False       # something on the host changed already (for a run that fails later)
        self.owed_backups = []          # rollback copies of interrupted runs, removed once vmd has read vm.conf

    # -- the run ------------------------------------------------------------

    def run(self, entries):
        """The whole run under the host lock (a check-mode run only reads, so it does not take it)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise LifecycleError('vm_conf: the directory of %s (%s) does not exist; nothing was changed' % (self.path, directory))
        if self.module.check_mode:
            return self._run(entries)
        lock = HostLock(self.path, timeout=self.lock_timeout)
        try:
            lock.acquire()
        except HostLockTimeout as exc:
            raise LifecycleError(str(exc))
        except OSError as exc:
            raise LifecycleError('vm_conf: cannot open the host lock %s: %s; nothing was changed' % (lock.path, exc))
        try:
            self._remove_leftovers(directory)
            return self._run(entries)
        finally:
            lock.release()

    def _remove_leftovers(self, directory):
        """Temporary files of an earlier run that was killed (only this collection names files so; we hold the lock)."""
        for name in sorted(os.listdir(directory)):
            if _LEFTOVER.fullmatch(name):
                _unlink(os.path.join(directory, name))
                self.warnings.append('removed %s, left behind by an interrupted earlier run' % os.path.join(directory, name))

    def _path_exists(self, path):
        """A disk or boot image to use must exist; in check mode the task before (vmm_disk) did not make it."""
        exists = os.path.exists(path)
        if exists or not self.module.check_mode:
            return exists
        self.warnings.append('check mode: %s does not exist yet; taken as made by an earlier task (a real run fails '
                             'while it is missing)' % path)
        return True

    def _run(self, entries):
        vmconf = VmConf.load(self.path)
        requests = build_requests(entries, vmconf, self._path_exists)
        for request in requests:
            if request.hand_written is not None and request.state == 'stopped' and request.hand_written.enabled:
                self.warnings.append('vm %r is enabled in the hand-written part of %s (%s:%s): vmd starts it again at the next '
                                     'vmctl reload or boot; write "disable" there to keep it stopped'
                                     % (request.name, self.path, request.hand_written.path, request.hand_written.line))
        statuses = {record.name: record for record in self.vmctl.status()}
        new_managed = self._new_managed(vmconf, requests)
        new_text = vmconf.with_managed(new_managed)
        file_changed = new_text != vmconf.text
        plans = []
        for request in requests:
            # Hand-written VMs: only their run state is managed, their definition is not compared.
            current = vmconf.managed_vm(request.name) if request.hand_written is None else None
            plans.append(plan_vm(request, statuses.get(request.name), current))
        deferred = self._defer_starts(plans, new_managed, vmconf) if self.staggered_start else []
        unknown_to_vmd = [r.name for r in requests if r.definition is not None and r.state != 'absent' and r.name not in statuses]
        # vmd keeps the definition a VM was started with until a reload after it stopped: a restart
        # (or a stop of an outdated VM) must reload so the next start uses vm.conf as it is.
        refresh = any(plan.stop and (plan.start or plan.outdated) for plan in plans)
        # vmd holds an older definition of a stopped VM than vm.conf (a reload was interrupted): reload.
        stale = [plan.request.name for plan in plans if plan.status is not None and not plan.status.live
                 and plan.request.state != 'absent' and runs_older_definition(plan.status, plan.request.definition)]
        # An earlier run was killed between writing vm.conf and vmd reading it: vmctl status cannot
        # show every part of a definition (disks, interfaces), so its marker says a reload is owed.
        owed = read_reload_marker(self.path)
        backups = (owed or {}).get('backups')
        self.owed_backups = [path for path in backups if isinstance(path, str)] if isinstance(backups, list) else []
        if owed is not None:
            self.warnings.append('an earlier run was interrupted before vmd reloaded %s: reloading now' % self.path)
        needs_reload = file_changed or bool(unknown_to_vmd) or refresh or bool(stale) or owed is not None or bool(deferred)
        changed = needs_reload or any(plan.acts for plan in plans)
        if file_changed and self.module._diff:
            self.diff = dict(before=vmconf.text, after=new_text, before_header=self.path, after_header=self.path)

        if changed:
            # What vmd would refuse half-way is refused here, before anything changes (check mode too).
            problems = self._reload_problems(vmconf, new_managed, plans, statuses) if needs_reload else []
            problems += self._tap_problems(vmconf, new_managed, plans, statuses, needs_reload)
            if problems:
                raise ValidationError(problems)
        if changed and not self.module.check_mode:
            self._apply(vmconf, new_text if file_changed else None, needs_reload, plans, new_managed, statuses)
            statuses = {record.name: record for record in self.vmctl.status()}
        records = [self._record(plan, statuses.get(plan.request.name), new_managed) for plan in plans]
        return dict(changed=changed, vms=records, restart_required=any(record['restart_required'] for record in records))

    def _new_managed(self, vmconf, requests):
        by_name = {request.name: request for request in requests}
        result = []
        for definition in vmconf.managed:
            request = by_name.get(definition.name)
            if request is None:
                result.append(definition)
            elif request.state != 'absent':
                result.append(request.definition)
        known = {definition.name for definition in result}
        for request in requests:
            if request.definition is not None and request.state != 'absent' and request.name not in known:
                result.append(request.definition)
        return result

    def _defer_starts(self, plans, new_managed, vmconf):
        """staggered_start: the VMs to start that vmd's reload starts (enabled in vm.conf), in its batches.

        A VM already queued (waiting, no process) needs nothing; one to pause, or a disabled hand-written
        one, is still started with vmctl start. Returns the plans whose start the reload makes.
        """
        enabled = {definition.name for definition in vmconf.hand_written + new_managed if definition.enabled}
        deferred = []
        for plan in plans:
            if not plan.start or plan.pause or plan.request.name not in enabled:
                continue
            plan.start = False
            plan.steps.remove('start')
            if plan.stop or plan.status is None or plan.status.state != 'waiting':
                plan.steps.append('start (staggered)')
                deferred.append(plan)
        return deferred

    def _apply(self, vmconf, new_text, needs_reload, plans, new_managed, statuses_before):
        staged = self._stage(new_text) if new_text is not None else None
        try:
            for plan in plans:
                if plan.stop:
                    self.host_changed = True
                    if plan.unpause_first:
                        self.vmctl.unpause(plan.request.name)
                    self.stop_vm(plan.request.name, plan.request.stop_timeout, plan.request.force)
            if staged is not None:
                self._commit(vmconf, staged)
                staged = None
        finally:
            if staged is not None:
                _unlink(staged)
        if needs_reload:
            self._warn_reload_starts(new_managed, vmconf, plans, statuses_before)
            self._reload(vmconf, new_text is not None)
            self.host_changed = True
        statuses = None
        if needs_reload and any(plan.start for plan in plans):
            # What did the reload start already (or queue for staggered start)?
            statuses = {record.name: record for record in self.vmctl.status()}
        for plan in plans:
            name = plan.request.name
            if plan.start:
                record = statuses.get(name) if statuses is not None else None
                # A VM the reload queued for staggered start (waiting) is started now rather than after the delay.
                if record is None or not record.live:
                    self.host_changed = True
                    try:
                        self.vmctl.start(name)
                    except VmAlreadyRunning:
                        pass        # the reload's staggered start got there first
                    except VmctlError as exc:
                        raise LifecycleError('vm %r could not be started: %s' % (name, exc))
            if plan.unpause:
                self.vmctl.unpause(name)
            if plan.pause:
                self.vmctl.pause(name)

    # -- vm.conf transaction ------------------------------------------------

    def _stage(self, text):
        """Write the candidate next to vm.conf and let vmd check the whole configuration."""
        directory = os.path.dirname(os.path.abspath(self.path))
        handle, temp = tempfile.mkstemp(prefix='.vm.conf.', suffix='.tmp', dir=directory)
        try:
            with os.fdopen(handle, 'w', encoding='utf-8', errors='surrogateescape') as out:
                out.write(text)
            # mkstemp makes it 0600: atomic_move gives a new vm.conf 0666 & ~umask and keeps an existing one's mode.
            vmd = self.module.get_bin_path('vmd', required=True)
            argv = [vmd, '-n', '-f', temp]
            self.commands.append(['vmd', '-n', '-f', temp])
            rc, stdout, stderr = self.module.run_command(argv, environ_update=dict(LANG='C', LC_ALL='C'))
            if rc != 0:
                output = (stderr + stdout).replace(temp, self.path).strip()
                raise LifecycleError('vmd -n refused the new %s, nothing was changed: %s' % (self.path, output))
        except BaseException:
            _unlink(temp)
            raise
        return temp

    def _commit(self, vmconf, staged):
        if os.path.exists(self.path):
            self.backup_file = self.module.backup_local(self.path)
        # Written before vm.conf changes and removed once vmd has read it (see _reload); it names the
        # rollback copy that a run killed before the reload could not remove.
        with open(reload_marker(self.path), 'w', encoding='utf-8') as marker:
            mine = [self.backup_file] if self.backup_file and not self.keep_backup else []
            json.dump(dict(pid=os.getpid(), backups=self.owed_backups + mine), marker)
        self.module.atomic_move(staged, self.path)
        self.host_changed = True

    def _reload(self, vmconf, wrote):
        try:
            self.vmctl.reload()
        except VmctlError as exc:
            if not wrote:
                raise LifecycleError('vmctl reload failed: %s' % exc)
            self._restore(vmconf)
            if self.backup_file and not self.keep_backup:
                # vm.conf has the backup's content again.
                _unlink(self.backup_file)
                self.backup_file = None
            try:
                self.vmctl.reload()
                again = 'vmd reloaded the previous configuration'
                self._settle_owed_reload()
            except VmctlError as second:
                again = 'reloading the previous configuration failed too: %s' % second
            raise LifecycleError('vmctl reload failed: %s; restored the previous %s (%s)' % (exc, self.path, again))
        self._settle_owed_reload()
        if self.backup_file and not self.keep_backup:
            _unlink(self.backup_file)
            self.backup_file = None

    def _settle_owed_reload(self):
        """vmd has read vm.conf: drop the marker and the rollback copies interrupted runs left behind."""
        directory = os.path.dirname(os.path.abspath(self.path))
        for backup in self.owed_backups:
            # Only a copy of this vm.conf beside it (backup_local's name), never a path from elsewhere.
            if os.path.dirname(backup) == directory and os.path.basename(backup).startswith(os.path.basename(self.path) + '.'):
                if os.path.exists(backup):
                    _unlink(backup)
                    self.warnings.append('removed %s, the rollback copy of an interrupted earlier run' % backup)
        self.owed_backups = []
        _unlink(reload_marker(self.path))

    def _restore(self, vmconf):
        if self.backup_file is None:
            _unlink(self.path)
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        handle, temp = tempfile.mkstemp(prefix='.vm.conf.', suffix='.restore', dir=directory)
        with os.fdopen(handle, 'w', encoding='utf-8', errors='surrogateescape') as out:
            out.write(vmconf.text)
        self.module.atomic_move(temp, self.path)

    def _warn_reload_starts(self, new_managed, vmconf, plans, statuses):
        """vmctl reload starts every enabled VM that is not running: name the ones nobody asked to run."""
        asked = {plan.request.name for plan in plans if plan.start or plan.request.state in ('running', 'restarted', 'paused')}
        stopped = {plan.request.name for plan in plans if plan.stop}
        names = []
        for definition in new_managed + vmconf.hand_written:
            if not definition.enabled or definition.name in asked:
                continue
            record = statuses.get(definition.name)
            if record is None or not record.live or definition.name in stopped:
                names.append(definition.name)
        if names:
            self.warnings.append('vmctl reload starts every enabled VM that is not running; this reload may start: %s'
                                 % ', '.join(sorted(set(names))))

    # -- what vmd would refuse half-way ----------------------------------------

    def _reload_problems(self, vmconf, new_managed, plans, statuses):
        """Instance rules that only vmd's vm_register checks (vmd -n does not): a reload would fail after vmd
        has already dropped every stopped VM, and restoring the old vm.conf would fail the same way."""
        problems = []
        stopping = {plan.request.name for plan in plans if plan.stop}
        definitions = _by_name(vmconf.hand_written + new_managed)
        for definition in definitions.values():
            if definition.instance_of is None:
                continue
            status = statuses.get(definition.name)
            if status is not None and status.live and definition.name not in stopping:
                problems.append(
                    'vm %r: this run must reload vmd (vmctl reload), which fails while the instance %r runs: vmd re-registers '
                    'every vm block and refuses an instance name it knows already (vmd.c vm_register/vm_instance: EPROCLIM, '
                    '"Too many processes"), after dropping the stopped VMs; vmd -n does not notice. Stop %r first '
                    '(state: stopped, or restart_on_change: true in this run) and run again'
                    % (definition.name, definition.name, definition.name))
        for plan in plans:
            definition = plan.request.definition
            if definition is None or definition.instance_of is None or plan.request.state == 'absent':
                continue
            parent = definitions.get(definition.instance_of)
            if parent is None:
                continue
            for index, interface in enumerate(definition.interfaces):
                theirs = parent.interfaces[index].lladdr if index < len(parent.interfaces) else None
                if interface.lladdr and interface.lladdr != theirs:
                    problems.append(
                        'vm %r: interfaces[%d].lladdr: vmd refuses an instance whose lladdr differs from its parent\'s '
                        'interface %d (%s) (vm_instance: "lladdr cannot be reused", EBUSY): leave lladdr out (vmd then '
                        'picks one) or use the parent\'s' % (definition.name, index, index, theirs or 'a random MAC'))
            shared = sorted({disk.path for disk in definition.disks} & {disk.path for disk in parent.disks})
            if shared:
                problems.append('vm %r: disks: %s is also a disk of the parent %r; vmd refuses it (vm_instance: "disk cannot '
                                'be reused", EBUSY)' % (definition.name, ', '.join(shared), parent.name))
        return problems

    def _tap_problems(self, vmconf, new_managed, plans, statuses, needs_reload):
        """Enough /dev/tapN for every VM this run starts (and the reload starts), before anything changes."""
        definitions = _by_name(vmconf.hand_written + new_managed)
        stopping = {plan.request.name for plan in plans if plan.stop}

        def keeps_running(name):
            status = statuses.get(name)
            return status is not None and status.live and name not in stopping

        to_start = {plan.request.name for plan in plans if plan.start}
        if needs_reload:
            # vmctl reload starts every enabled VM that is not running (staggered start).
            to_start |= {name for name, definition in definitions.items() if definition.enabled and not keeps_running(name)}
        needed = sum(_nic_count(definitions[name], definitions) for name in to_start if name in definitions)
        if not needed:
            return []
        # Taps held by running VMs that vm.conf defines (a VM started by hand with vmctl is not known here).
        held = sum(_nic_count(definition, definitions) for name, definition in definitions.items() if keeps_running(name))
        capacity = tap_capacity(needed, held, self.dev_dir)
        if capacity.problem:
            return ['dev_dir: %s (VMs to start: %s)' % (capacity.problem, ', '.join(sorted(to_start)))]
        return []

    # -- run-state steps ----------------------------------------------------

    def stop_vm(self, name, timeout, force):
        """Stop with ``stop -w`` bounded by ``timeout``; ``-f`` after it if ``force``, else fail (stuck)."""
        try:
            self.vmctl.stop(name, wait=True, timeout=timeout)
            return
        except (VmNotRunning, VmNotFound):
            return                          # already down (or gone) by now
        except VmctlTimeout:
            pass
        except VmStopInProgress:
            # Someone asked before us; wait/stop -w refuse a stopping VM, so watch its state.
            if not force and self._wait_down(name, timeout):
                return
        if not force:
            raise StuckStopping('vm %r is stuck in state stopping: it did not shut down within stop_timeout=%s seconds; '
                                'set force: true to terminate it with vmctl stop -f' % (name, timeout))
        try:
            self.vmctl.stop(name, wait=True, force=True, timeout=timeout)
        except (VmNotRunning, VmNotFound):
            pass                            # down (or gone) by now
        except VmctlTimeout:
            raise StuckStopping('vm %r did not terminate within %s seconds even with vmctl stop -f' % (name, timeout))

    def _wait_down(self, name, timeout):
        deadline = time.monotonic() + timeout
        while True:
            record = self.vmctl.find(name)
            if record is None or not record.live:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval)

    # -- results --------------------------------------------------------------

    def _record(self, plan, status, new_managed):
        request = plan.request
        definition = None
        for candidate in new_managed:
            if candidate.name == request.name:
                definition = candidate
        if definition is None:
            definition = request.hand_written       # None for a VM that is gone
        live = status is not None and status.live
        return dict(
            name=request.name,
            id=status.id if status else None,
            pid=status.pid if status else None,
            state=status.effective_state if status else ('absent' if definition is None else None),
            tty=status.tty if status else None,
            owner=(status.owner + (':' + status.owner_group if status.owner_group else '')) if status else None,
            vcpus=status.vcpus if status else None,
            memory=configured_memory(status, definition),
            maxmem=status.maxmem if status else None,
            memory_text=fmt_scaled(status.maxmem) if status else None,
            curmem=status.curmem if status else None,
            managed=definition is not None and request.hand_written is None,
            config=definition.as_dict() if definition is not None else None,
            steps=_in_execution_order(plan, request),
            restart_required=bool(plan.restart_required and live),
        )


def configured_memory(status, definition):
    """The VM's configured memory in bytes: vm.conf's, else what vmd shows for a stopped VM (a running VM's
    MAXMEM is vmm(4)'s count, 4M more: see vmctl.vmm_memory_size); None when neither tells."""
    if definition is not None and definition.memory is not None:
        return definition.memory
    if status is not None and not status.live:
        return status.maxmem
    if definition is not None and definition.instance_of is None:
        return DEFAULT_MEMORY
    return None


def reload_marker(vm_conf):
    """The file that says vm.conf was rewritten and vmd has not read it yet (beside the host lock)."""
    directory, name = os.path.split(os.path.abspath(vm_conf))
    return os.path.join(directory, '.%s.reload-pending' % name)


def read_reload_marker(vm_conf):
    """The marker's content ({'pid', 'backups'}) when a reload is owed, else None (an unreadable marker still owes one)."""
    try:
        with open(reload_marker(vm_conf), encoding='utf-8') as marker:
            content = json.load(marker)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


_LEFTOVER = re.compile(r'\.vm\.conf\.[A-Za-z0-9_]+\.(?:tmp|restore)')


def _by_name(definitions):
    """Later definitions win (the managed block after the hand-written part)."""
    return {definition.name: definition for definition in definitions}


def _nic_count(definition, definitions):
    """Interfaces vmd opens a tap for: an instance also gets its parent's NICs beyond its own (vm_instance)."""
    count = definition.nic_count
    parent = definitions.get(definition.instance_of) if definition.instance_of else None
    if parent is not None:
        count = max(count, parent.nic_count)
    return count


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _in_execution_order(plan, request):
    """The plan's steps as _apply takes them: stops (after an unpause they need) before vm.conf is
    written, starts, unpauses and pauses after vmd's reload."""
    config = []
    if plan.config_changed:
        config = ['undefine'] if request.state == 'absent' else ['define']
    cut = max((index + 1 for index, step in enumerate(plan.steps) if step == 'stop'), default=0)
    return plan.steps[:cut] + config + plan.steps[cut:]
