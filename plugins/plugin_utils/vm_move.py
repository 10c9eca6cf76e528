# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving VMs between vmm hosts (controller side): a VM's definition as vmm_vm options, and the migration plan.

The plan is worked out from the journal (what earlier runs did), the VMs each host reports (vmm_vm_info) and
the hosts' room (the inventory plugin's rules, fleet_plan.Host), before anything changes. A move goes through
STEPS in order; the journal records the last step finished, so a re-run goes on from there (or rolls back with
cancel, before the VM answers on the target).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_plan import FleetPlanError, Host, human_size

try:
    import netaddr
except ImportError:  # only a move that takes a DHCP lease along needs it
    netaddr = None

JOURNAL_VERSION = 1
# Last step finished: planned (checked, nothing changed), base_ready (the bases are on the target), stopped (on
# the source, disabled), copied (the top images are on the target), defined (on the target, started as it was),
# answering (running there; SSH answers when the VM has an address), done (removed from the source, disk archived).
STEPS = ('planned', 'base_ready', 'stopped', 'copied', 'defined', 'answering', 'done')
# Cancel undoes a move only before the VM is started on the target: after that the target's disk is the newer one.
CANCELLABLE = STEPS[:STEPS.index('copied') + 1]

# vm.conf options vmm_vm takes as they are. Not the cdrom (an ISO that the target may not have would keep the VM
# from starting) nor the enable flag (the state decides).
_COPIED_OPTIONS = ('owner', 'boot', 'boot_device')
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,62}')


class MovePlanError(FleetPlanError):
    """The move cannot be planned; the message says why."""


def vm_options(definition):
    """vmm_vm options (no state) that define a VM as ``definition`` (a vmm_vm_info config) does."""
    options = dict(name=definition['name'],
                   disks=[dict(path=disk['path'], format=disk['format']) if disk.get('format') else dict(path=disk['path'])
                          for disk in definition.get('disks') or []],
                   interfaces=list(definition.get('interfaces') or []))
    if definition.get('memory'):
        options['memory'] = str(definition['memory'])
    for option in _COPIED_OPTIONS:
        if definition.get(option) is not None:
            options[option] = definition[option]
    return options


def empty_journal():
    return {'version': JOURNAL_VERSION, 'moves': {}}


def check_journal(journal):
    """The journal, checked; None is an empty journal."""
    if journal is None:
        return empty_journal()
    if not isinstance(journal, Mapping) or journal.get('version') != JOURNAL_VERSION or not isinstance(journal.get('moves'), Mapping):
        raise MovePlanError('the journal must be {"version": %d, "moves": {vm: {"source": ..., "target": ..., "step": ...}}}'
                            % JOURNAL_VERSION)
    for name, move in journal['moves'].items():
        if not isinstance(move, Mapping) or move.get('step') not in STEPS or not all(
                isinstance(move.get(key), str) and move[key] for key in ('source', 'target')):
            raise MovePlanError('the journal\'s move of %s needs a source, a target and a step (one of %s)'
                                % (name, ', '.join(STEPS)))
        if not isinstance(move.get('definition'), Mapping):
            raise MovePlanError('the journal\'s move of %s has no definition of the VM' % name)
    return {'version': JOURNAL_VERSION, 'moves': {str(name): dict(move) for name, move in journal['moves'].items()}}


def _vms(hosts, host):
    report = hosts[host].get('vms') if isinstance(hosts.get(host), Mapping) else None
    if not isinstance(report, list):
        raise MovePlanError('no VM report (vmm_vm_info vms) for vmm host %s' % host)
    return {vm['name']: vm for vm in report}


def migrate_plan(journal, source, hosts, vms=None, drain=False, target=None, cancel=False):
    """The moves of this run and the journal they start from.

    ``hosts`` maps every vmm host that may take part to {'vars': its inventory variables, 'vms': vmm_vm_info's
    vms}. Moves the journal has not finished come first, whatever was asked (a re-run finishes them); with
    ``cancel`` they are the only moves, each marked cancel (a move past CANCELLABLE is refused). New moves: the
    VMs ``vms`` of ``source`` (or all its VMs with ``drain``), to ``target`` or, without it, each to the host with
    the most free memory that has room (as the inventory plugin places guests). Every problem is raised before
    any move is planned.
    """
    journal = check_journal(journal)
    if not isinstance(hosts, Mapping) or (not hosts and not cancel):
        raise MovePlanError('hosts must map vmm hosts to their variables and VMs')
    pending = {name: move for name, move in journal['moves'].items() if move['step'] != 'done'}
    if cancel:
        late = sorted(name for name, move in pending.items() if move['step'] not in CANCELLABLE)
        if late:
            raise MovePlanError('cannot cancel the move of %s: the VM was started on its target (step %s); move it back '
                                'with another migration' % (', '.join(late), ', '.join(pending[name]['step'] for name in late)))
        moves = [dict(move, vm=name, cancel=True) for name, move in sorted(pending.items())]
        return {'moves': moves, 'journal': journal}

    if source not in hosts:
        raise MovePlanError('the source host %r is not among the vmm hosts (%s)' % (source, ', '.join(sorted(hosts))))
    if target is not None and (target not in hosts or target == source):
        raise MovePlanError('the target host %r must be another of the vmm hosts (%s)'
                            % (target, ', '.join(sorted(name for name in hosts if name != source))))
    on_source = _vms(hosts, source)
    if drain:
        wanted = sorted(name for name, vm in on_source.items() if vm.get('config'))
    else:
        if not isinstance(vms, list) or not vms or not all(isinstance(name, str) and _NAME.fullmatch(name) for name in vms):
            raise MovePlanError('vms must be a list of VM names (or drain the host); got %r' % (vms,))
        wanted = sorted(set(vms))
    problems = []
    new = []
    finished = journal['moves']
    for name in wanted:
        if name in pending:
            continue
        vm = on_source.get(name)
        if (vm is None or not vm.get('config')) and finished.get(name, {}).get('source') == source:
            continue  # moved by an earlier run: asking again changes nothing
        if vm is None or not vm.get('config'):
            problems.append('%s is not defined in the vm.conf of %s' % (name, source))
        elif vm['config'].get('instance_of'):
            problems.append('%s is an instance of %s: move its parent' % (name, vm['config']['instance_of']))
        else:
            new.append(vm)
    candidates = [target] if target else sorted(name for name in hosts if name != source)
    if not candidates:
        problems.append('there is no other vmm host to move to')
    if problems:
        raise MovePlanError('; '.join(problems))

    room = {}
    for name in candidates:
        room[name] = Host(name, dict((hosts[name].get('vars') or {})))
        room[name].guests = [dict(name=vm['name'], memory=(vm.get('config') or {}).get('memory') or vm.get('memory'))
                             for vm in _vms(hosts, name).values()]
    for move in pending.values():
        if move['target'] in room and move['definition']['name'] not in {g['name'] for g in room[move['target']].guests}:
            room[move['target']].guests.append(dict(name=move['definition']['name'], memory=move['definition'].get('memory')))
    moves = [dict(move, vm=name) for name, move in sorted(pending.items())]
    for vm in new:
        guest = dict(name=vm['name'], memory=vm['config'].get('memory'))
        taken = [name for name in candidates if vm['name'] in _vms(hosts, name)]
        if taken:
            problems.append('a VM named %s is already on %s' % (vm['name'], ', '.join(taken)))
            continue
        # a fleet file's guest listed under a host stays there (the inventory plugin's vmm_guests_listed)
        listed = sorted(name for name in hosts if vm['name'] in _listed(hosts, name))
        if source in listed:
            problems.append('%s is listed under %s in the fleet file, which keeps it there (provision.yml would define it '
                            'there again): list it under the host it goes to, or among the guests to place, first'
                            % (vm['name'], source))
            continue
        if listed and listed[0] not in room:
            problems.append('%s is listed under %s in the fleet file: it can move only there' % (vm['name'], listed[0]))
            continue
        with_room = [host for host in room.values() if not host.lacks(guest) and (not listed or host.name == listed[0])]
        if not with_room:
            memory = human_size(room[candidates[0]].memory_of(guest))
            problems.append('no vmm host has room for %s (memory %s): %s' % (vm['name'], memory, ', '.join(
                '%s has %s' % (host.name, ' and '.join(host.lacks(guest))) for host in room.values())))
            continue
        # the VM keeps its address: only a host that can give it counts
        leases = {host.name: moved_lease(vm['name'], source, host.name, hosts[source].get('vars') or {},
                                         hosts[host.name].get('vars') or {}) for host in with_room}
        fitting = [host for host in with_room if leases[host.name][1] is None]
        if not fitting:
            problems.extend(leases[host.name][1] for host in with_room)
            continue
        best = min(fitting, key=lambda h: (-h.free_memory(), len(h.counted()), h.name))
        best.guests.append(guest)
        lease = leases[best.name][0]
        entry = dict(source=source, target=best.name, step='planned', definition=dict(vm['config']),
                     was_running=vm.get('state') in ('running', 'paused', 'waiting'))
        if lease:
            entry['lease'] = lease
        journal['moves'][vm['name']] = entry
        moves.append(dict(entry, vm=vm['name']))
    if problems:
        raise MovePlanError('; '.join(problems) + '; nothing was moved')
    return {'moves': moves, 'journal': journal}


def _listed(hosts, host):
    names = (hosts[host].get('vars') or {}).get('vmm_guests_listed') or []
    if not isinstance(names, list):
        raise MovePlanError('vmm_guests_listed of %s must be a list of guest names' % host)
    return names


def _serves_dhcp(host_vars):
    try:
        return boolean(host_vars.get('install_server_dhcpd') or False, strict=True)
    except TypeError:
        raise MovePlanError('install_server_dhcpd must be a boolean, got %r' % (host_vars.get('install_server_dhcpd'),))


def moved_lease(name, source, target, source_vars, target_vars):
    """(lease, problem): the source's static DHCP lease of VM ``name`` that the move takes along, as the inventory
    plugin gives a host's leases (vmm_guest_leases, written to dhcpd.conf when install_server_dhcpd), or None.

    The VM keeps its address, so the target must serve DHCP on a subnet (install_server_dhcp_subnets) holding it,
    with no lease of another VM for that address or MAC; else the problem says why (nothing is moved).
    """
    if not _serves_dhcp(source_vars):
        return None, None
    lease = next((item for item in source_vars.get('vmm_guest_leases') or []
                  if isinstance(item, Mapping) and item.get('name') == name), None)
    if lease is None:
        return None, None
    lease = dict(name=name, mac=str(lease.get('mac', '')).lower(), address=str(lease.get('address', '')))
    where = '%s has the DHCP lease %s (%s) on %s' % (name, lease['address'], lease['mac'], source)
    if not _serves_dhcp(target_vars):
        return None, '%s, and %s serves no DHCP (install_server_dhcpd): the VM would lose its address' % (where, target)
    if netaddr is None:
        raise MovePlanError('moving a DHCP lease needs the Python library netaddr on the controller (pip install netaddr)')
    try:
        address = netaddr.IPAddress(lease['address'], 4)
        networks = [netaddr.IPNetwork(subnet['network']) for subnet in target_vars.get('install_server_dhcp_subnets') or []]
    except (netaddr.AddrFormatError, ValueError, TypeError, KeyError) as exc:
        raise MovePlanError('%s: the lease or a DHCP subnet of %s is not valid: %s' % (where, target, exc))
    if not any(address in network for network in networks):
        return None, '%s, which is in none of the DHCP subnets of %s (%s): the VM keeps its address only on a host of ' \
                     'that network' % (where, target, ', '.join(str(network) for network in networks) or 'none')
    for other in target_vars.get('vmm_guest_leases') or []:
        if isinstance(other, Mapping) and other.get('name') != name and (
                str(other.get('address')) == lease['address'] or str(other.get('mac', '')).lower() == lease['mac']):
            return None, '%s, and %s has a lease of %s for the same address or MAC (%s, %s)' % (
                where, target, other.get('name'), other.get('address'), other.get('mac'))
    return lease, None


def host_leases(journal, host, leases, leaving=None):
    """The DHCP leases of vmm host ``host`` while the journal's moves go on: its inventory ``leases`` (its
    vmm_guest_leases), where a moving VM's lease is on the target from the plan on (written there while the VM still
    runs on the source, so its downtime does not include it; both hosts serve the same address on one network), and
    on the source until the move is done or the VM ``leaving`` is removed from it."""
    journal = check_journal(journal)
    moving = {name: move for name, move in journal['moves'].items() if isinstance(move.get('lease'), Mapping)}
    result = [dict(lease) for lease in leases or [] if isinstance(lease, Mapping) and lease.get('name') not in moving]
    for name, move in sorted(moving.items()):
        if move['target'] == host or (move['source'] == host and move['step'] != 'done' and name != leaving):
            result.append(dict(move['lease']))
    return result


def _under(path, directory):
    directory = directory.rstrip('/') or '/'
    return path == directory or path.startswith(directory + '/') or directory == '/'


def moved_path(path, source_dir, target_dir):
    """Where a file of the source goes on the target: under the target's disk directory when it is under the
    source's, else the same path."""
    source_dir = source_dir.rstrip('/') or '/'
    if not _under(path, source_dir) or source_dir == '/':
        return path
    return posixpath.normpath(target_dir + '/' + posixpath.relpath(path, source_dir))


def disk_moves(definition, images, source_dir, target_dir):
    """What a move copies, and the VM's definition on the target.

    ``images`` are vmm_image_info's records of every file of every disk's chain (the disks and their bases).
    Returns {'disks': [{'source', 'target'}] (the top images, copied after the stop), 'bases': [...] (copied once
    per target host while the VM runs), 'definition': the definition with the disks' target paths}. A chain
    whose base name would lead elsewhere on the target (an absolute base under a disk directory that is another
    one there, a relative base leaving it) is refused: vmctl cannot rewrite an overlay's base.
    """
    for option, value in (('source_dir', source_dir), ('target_dir', target_dir)):
        if not isinstance(value, str) or not posixpath.isabs(value) or posixpath.normpath(value) != value.rstrip('/'):
            raise MovePlanError('%s must be an absolute, normalised directory (vmm_disk_dir), got %r' % (option, value))
    by_path = {image['path']: image for image in images}
    name = definition['name']
    disks, bases, problems = [], [], []
    for disk in definition.get('disks') or []:
        image = by_path.get(disk['path'])
        if image is None or image.get('problems') or not image.get('chain'):
            problems.append('disk %s cannot be read: %s' % (disk['path'], '; '.join((image or {}).get('problems') or ['no report'])))
            continue
        disks.append(dict(source=image['path'], target=moved_path(image['path'], source_dir, target_dir)))
        chain = image['chain']
        for upper, lower in zip(chain, chain[1:]):
            stored = (by_path.get(upper) or {}).get('base')
            if stored is None:
                problems.append('the base of %s is not reported' % upper)
                continue
            upper_target = moved_path(upper, source_dir, target_dir)
            lower_target = moved_path(lower, source_dir, target_dir)
            found = posixpath.normpath(stored if posixpath.isabs(stored) else posixpath.join(posixpath.dirname(upper_target), stored))
            if found != lower_target:
                problems.append('%s names its base %s, which would be %s on the target, not %s where the base goes (keep '
                                'the same vmm_disk_dir on both hosts, or make overlays with a base relative to their '
                                'directory)' % (upper, stored, found, lower_target))
            base = dict(source=lower, target=lower_target)
            if base not in bases:
                bases.append(base)
    if problems:
        raise MovePlanError('%s cannot move: %s' % (name, '; '.join(problems)))
    targets = [disk['target'] for disk in disks]
    moved = dict(definition, disks=[dict(disk, path=target) for disk, target in zip(definition.get('disks') or [], targets)])
    return {'disks': disks, 'bases': bases, 'definition': moved}
