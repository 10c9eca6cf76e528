# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's plan: where every guest runs, its MAC and addresses, and the state file.

Pure functions on the controller, used by the inventory plugin and by the filters, so the
inventory and the playbooks always agree.

Placement of a guest without a host (the inventory's ``guests``):
  * a guest listed under a vmm host runs there (it wins over the state file);
  * a guest the state file places on a vmm host of the fleet stays there, even when another
    host has more room now (a placed VM is never moved);
  * the others, sorted by name, go one by one to the host with the most free memory after the
    guests placed so far (ties: fewest guests, then host name), among the hosts with room:
    memory (``vmm_host_memory``, unset: unlimited), taps (``vmm_host_tap_count``, default 50 as
    the vmm_host role's) and VMs (``vmm_host_max_vms``, unset: unlimited). Every guest that is not
    ``state: absent`` counts, whatever its state, one tap each (one interface).
Nothing is decided when a guest does not fit or a host is over-full: one error names every host
and what it lacks.

Addresses: a guest on a switch gets ``address`` as given, or from its host's pool
(``vmm_guest_network`` after ``vmm_guest_network_reserved``, fleet_net.ipv4_address) at its
``index`` (default: its position under the host; a placed guest keeps its recorded address while
it is free in the pool, else the first free one). With ``vmm_guest_network6`` (a prefix of /64 or
shorter) it also gets ``address6``: the prefix's first /64 plus the same offset as its IPv4 address
in the IPv4 network (reserved + index + 1: 192.0.2.2 <-> 2001:db8::2). A guest on a vmd local
interface (no ``switch``) gets no invented address: vmd gives it one when it starts
(priv.c vm_priv_addr), which the playbook records in the state file as observed.
"""

from __future__ import annotations

import datetime
import json
import re

from collections.abc import Mapping

from ansible_collections.openbsd.vmm.plugins.module_utils.sizes import SizeError, fmt_scaled, scan_scaled
from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import (
    DEFAULT_LLADDR_PREFIX, FleetNetError, fleet_lladdrs, ipv4_address, ipv6_subnet,
)

try:
    import netaddr
except ImportError:  # fleet_net reports it when an address is derived
    netaddr = None

STATE_VERSION = 1
DEFAULT_TAP_COUNT = 50          # roles/vmm_host/defaults/main.yml vmm_host_tap_count
DEFAULT_GUEST_MEMORY = '512M'   # provision.yml's vmm_guest_memory default
_FLEET_SUFFIX = re.compile(r'(.*)vmm\.ya?ml')
_TIMESTAMP = re.compile(r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z')
_DIGITS = re.compile(r'\d+')


class FleetPlanError(FleetNetError):
    """The fleet cannot be planned (capacity, collision, state file); the message says why."""


# ---------------------------------------------------------------------------
# state file

def empty_state():
    return {'version': STATE_VERSION, 'guests': {}}


def default_state_path(fleet_path):
    """fleet.vmm.yml -> fleet.vmm.state.json (beside the fleet file)."""
    match = _FLEET_SUFFIX.fullmatch(fleet_path)
    if not match:
        raise FleetPlanError('%s does not end in vmm.yml or vmm.yaml; set state_file' % fleet_path)
    return match.group(1) + 'vmm.state.json'


def read_state(path):
    """The state file's content, checked; a missing file is an empty state."""
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return empty_state()
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetPlanError('state file %s cannot be read: %s' % (path, exc))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FleetPlanError('state file %s is not JSON: %s' % (path, exc))
    return check_state(data, path)


def check_state(data, what='the state'):
    if not isinstance(data, Mapping) or data.get('version') != STATE_VERSION or not isinstance(data.get('guests'), Mapping):
        raise FleetPlanError('%s must be {"version": %d, "guests": {name: {"host": ..., "address": ..., "placed": ...}}}'
                             % (what, STATE_VERSION))
    guests = {}
    for name, entry in data['guests'].items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get('host'), str) or not entry['host']:
            raise FleetPlanError('%s: guests.%s needs a host (a string)' % (what, name))
        for key in ('address', 'address6', 'placed'):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise FleetPlanError('%s: guests.%s.%s must be a string' % (what, name, key))
        if entry.get('placed') is not None and not _TIMESTAMP.fullmatch(entry['placed']):
            raise FleetPlanError('%s: guests.%s.placed must be a UTC time like 2026-11-30T12:00:00Z' % (what, name))
        guests[str(name)] = {key: entry[key] for key in ('host', 'address', 'address6', 'placed') if entry.get(key)}
    return {'version': STATE_VERSION, 'guests': guests}


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def fleet_state(guests, observed=None):
    """The state file's content for a plan (or a list of planned guests, each with host), plus observed addresses.

    ``observed`` maps guest names to the address vmd gave their local interface; it is taken for
    guests on a local interface only (a switch guest's address is the plan's).
    """
    if isinstance(guests, Mapping):
        guests = guests.get('guests', {}).values() if 'guests' in guests else guests.values()
    observed = observed or {}
    if not isinstance(observed, Mapping):
        raise FleetPlanError('observed must be a mapping of guest names to addresses')
    result = {}
    for guest in guests:
        if not isinstance(guest, Mapping) or not guest.get('name') or not guest.get('host'):
            raise FleetPlanError('every planned guest needs a name and a host (the vmm_guests the inventory writes), got %r'
                                 % (guest,))
        entry = {'host': guest['host']}
        address = guest.get('address')
        if not guest.get('switch') and observed.get(guest['name']):
            address = _address(observed[guest['name']], 4, 'observed address of %s' % guest['name'])
        if address:
            entry['address'] = address
        if guest.get('address6'):
            entry['address6'] = guest['address6']
        entry['placed'] = guest.get('placed') or now_utc()
        result[guest['name']] = entry
    return {'version': STATE_VERSION, 'guests': dict(sorted(result.items()))}


# ---------------------------------------------------------------------------
# helpers

def _size(value, what):
    try:
        return scan_scaled(value)
    except SizeError as exc:
        raise FleetPlanError('%s: %s' % (what, exc))


def _count(value, what):
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        raise FleetPlanError('%s must be a whole number, got %r' % (what, value))
    return int(value)


def human_size(size):
    """8G, 512M, or fmt_scaled's 1.5G."""
    for unit, scale in (('G', 1 << 30), ('M', 1 << 20)):
        if size and size % scale == 0:
            return '%d%s' % (size // scale, unit)
    return fmt_scaled(size)


def _address(value, version, what):
    if netaddr is None:
        raise FleetPlanError('the Python library netaddr is required on the controller (pip install netaddr)')
    if not isinstance(value, str) or value != value.strip():
        raise FleetPlanError('%s: %r is not an IPv%d address' % (what, value, version))
    try:
        address = netaddr.IPAddress(value)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise FleetPlanError('%s: %r is not an IPv%d address' % (what, value, version))
    if address.version != version:
        raise FleetPlanError('%s: %r is not an IPv%d address' % (what, value, version))
    return str(address)


class Host:
    """A vmm host's room and the guests on it."""

    def __init__(self, name, host_vars):
        self.name = name
        self.vars = host_vars
        self.memory = None if host_vars.get('vmm_host_memory') in (None, '') else \
            _size(host_vars['vmm_host_memory'], '%s: vmm_host_memory' % name)
        taps = host_vars.get('vmm_host_tap_count')
        self.taps = DEFAULT_TAP_COUNT if taps in (None, '') else _count(taps, '%s: vmm_host_tap_count' % name)
        most = host_vars.get('vmm_host_max_vms')
        self.max_vms = None if most in (None, '') else _count(most, '%s: vmm_host_max_vms' % name)
        self.guest_memory = host_vars.get('vmm_guest_memory') or DEFAULT_GUEST_MEMORY
        self.guests = []

    def memory_of(self, guest):
        return _size(guest.get('memory') or self.guest_memory, 'guest %s: memory' % guest['name'])

    def counted(self):
        return [guest for guest in self.guests if guest.get('state', 'running') != 'absent']

    def used(self):
        counted = self.counted()
        return sum(self.memory_of(guest) for guest in counted), len(counted)

    def free_memory(self):
        return float('inf') if self.memory is None else self.memory - self.used()[0]

    def lacks(self, guest):
        """What the host lacks for one more guest: [] when it has room."""
        memory, count = self.used()
        problems = []
        if self.memory is not None and memory + self.memory_of(guest) > self.memory:
            problems.append('%s of memory free' % human_size(max(self.memory - memory, 0)))
        if count + 1 > self.taps:
            problems.append('%d taps free (%d in use)' % (max(self.taps - count, 0), count))
        if self.max_vms is not None and count + 1 > self.max_vms:
            problems.append('room for %d more VMs (vmm_host_max_vms %d)' % (max(self.max_vms - count, 0), self.max_vms))
        return problems

    def overfull(self):
        memory, count = self.used()
        problems = []
        if self.memory is not None and memory > self.memory:
            problems.append('they need %s of memory, it has %s (vmm_host_memory)' % (human_size(memory), human_size(self.memory)))
        if count > self.taps:
            problems.append('they need %d taps, it has %d (vmm_host_tap_count)' % (count, self.taps))
        if self.max_vms is not None and count > self.max_vms:
            problems.append('they are %d VMs, it may run %d (vmm_host_max_vms)' % (count, self.max_vms))
        return problems


def _guest_list(value, what):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(g, Mapping) and g.get('name') for g in value):
        raise FleetPlanError('%s must be a list of mappings, each with a name' % what)
    for guest in value:
        if not isinstance(guest['name'], str):
            raise FleetPlanError('%s: name %r must be a string' % (what, guest['name']))
        if guest.get('switch') is not None and not isinstance(guest['switch'], str):
            raise FleetPlanError('guest %s: switch must be a string' % guest['name'])
        if guest.get('vars') is not None and not isinstance(guest['vars'], Mapping):
            raise FleetPlanError('guest %s: vars must be a mapping' % guest['name'])
    return [dict(guest) for guest in value]


# ---------------------------------------------------------------------------
# the plan

def fleet_plan(vmm_hosts, guests=None, state=None, lladdr_prefix=DEFAULT_LLADDR_PREFIX, lladdr_with_host=False, now=None):
    """Plan the fleet: {'hosts': {host: host vars with vmm_guests normalised}, 'guests': {name: planned guest},
    'state': the state file's content for this plan}.

    A planned guest is its fleet entry plus ``host``, ``lladdr``, ``placed`` (UTC time of its placement:
    the state file's, else ``now``), ``address`` and ``address6`` when known. FleetPlanError on any problem.
    """
    if not isinstance(vmm_hosts, Mapping):
        raise FleetPlanError('vmm_hosts must be a mapping of vmm host names to their variables')
    state = check_state(state) if state is not None else empty_state()
    recorded = state['guests']
    now = now or now_utc()
    hosts = {}
    seen = {}
    for name, host_vars in vmm_hosts.items():
        if host_vars is not None and not isinstance(host_vars, Mapping):
            raise FleetPlanError('the variables of vmm host %s must be a mapping' % name)
        host = hosts[name] = Host(name, dict(host_vars or {}))
        for position, guest in enumerate(_guest_list(host.vars.get('vmm_guests'), 'vmm_guests of %s' % name)):
            _claim(seen, hosts, guest['name'], name)
            guest.update(host=name, _position=position, _explicit=True)
            host.guests.append(guest)
    unplaced = _guest_list(guests, 'guests')
    for guest in unplaced:
        # A 'host' key here is overwritten where the guest is placed: a host is given by listing the guest under it.
        _claim(seen, hosts, guest['name'], None)
    for name in seen:
        if name in hosts:
            raise FleetPlanError('guest %s has the name of a vmm host' % name)

    # Guests the state file places stay where they are; the over-full check covers them.
    new = []
    for guest in sorted(unplaced, key=lambda g: g['name']):
        where = recorded.get(guest['name'], {}).get('host')
        if where in hosts:
            hosts[where].guests.append(dict(guest, host=where))
        else:
            new.append(guest)
    problems = []
    for host in hosts.values():
        lacking = host.overfull()
        if lacking:
            problems.append('vmm host %s cannot hold its guests (%s): %s'
                            % (host.name, ', '.join(g['name'] for g in host.counted()), ' and '.join(lacking)))
    if problems:
        raise FleetPlanError('; '.join(problems))
    for guest in new:
        with_room = [host for host in hosts.values() if not host.lacks(guest)]
        if not with_room:
            if not hosts:
                detail = 'the fleet has no vmm hosts'
            else:
                detail = ', '.join('%s has %s' % (host.name, ' and '.join(host.lacks(guest))) for host in hosts.values())
            memory = human_size(_size(guest.get('memory') or DEFAULT_GUEST_MEMORY, 'guest %s: memory' % guest['name']))
            raise FleetPlanError('no vmm host has room for guest %s (memory %s): %s' % (guest['name'], memory, detail))
        best = min(with_room, key=lambda h: (-h.free_memory(), len(h.counted()), h.name))
        best.guests.append(dict(guest, host=best.name))

    # MACs across the whole fleet.
    everyone = [guest for host in hosts.values() for guest in host.guests]
    lladdrs = fleet_lladdrs([{'name': g['name'], 'host': g['host'], 'lladdr': g.get('lladdr')} for g in everyone],
                            prefix=lladdr_prefix, with_host=lladdr_with_host)
    for guest in everyone:
        guest['lladdr'] = lladdrs['%s/%s' % (guest['host'], guest['name']) if lladdr_with_host else guest['name']]
        entry = recorded.get(guest['name'])
        guest['placed'] = entry['placed'] if entry and entry['host'] == guest['host'] and entry.get('placed') else now

    _addresses(hosts, recorded)

    planned_hosts = {}
    planned_guests = {}
    for host in hosts.values():
        listed = []
        for guest in host.guests:
            for key in ('_position', '_explicit', '_index'):
                guest.pop(key, None)
            listed.append(guest)
            planned_guests[guest['name']] = guest
        planned_hosts[host.name] = dict(host.vars, vmm_guests=listed)
    return {'hosts': planned_hosts, 'guests': planned_guests, 'state': fleet_state(planned_guests.values())}


def _claim(seen, hosts, name, host):
    if name in seen:
        raise FleetPlanError('guest %s is listed twice: %s and %s' % (name, _where(seen[name]), _where(host)))
    seen[name] = host


def _where(host):
    return 'on %s' % host if host else 'in guests'


class _Pool:
    """A host's IPv4 pool (and IPv6 prefix): which addresses it hands out."""

    def __init__(self, host):
        self.host = host
        network = host.vars.get('vmm_guest_network')
        self.reserved = 0
        self.cidr = None
        if network:
            ipv4_address(network, 0, reserved=0)  # FleetNetError on a bad network
            self.cidr = netaddr.IPNetwork(str(network)).cidr
            reserved = host.vars.get('vmm_guest_network_reserved', 0)
            self.reserved = _count(reserved if reserved is not None else 0, '%s: vmm_guest_network_reserved' % host.name)
            self.first = self.cidr.first + (0 if self.cidr.prefixlen >= 31 else 1)
        self.net6 = None
        prefix6 = host.vars.get('vmm_guest_network6')
        if prefix6:
            try:  # the first /64; fleet_net refuses a prefix longer than /64
                self.net6 = netaddr.IPNetwork(ipv6_subnet(prefix6, 0))
            except FleetNetError as exc:
                raise FleetPlanError('%s: vmm_guest_network6: %s (a /64 or shorter prefix is needed)' % (host.name, exc))

    def address(self, index):
        return ipv4_address(self.cidr, index, reserved=self.reserved)

    def index_of(self, address):
        """The pool index of an address the pool hands out (one problem() accepts)."""
        return int(netaddr.IPAddress(address)) - self.first - self.reserved

    def problem(self, address):
        """Why an address given to a guest of this host is not one of its pool, or None."""
        value = int(netaddr.IPAddress(address))
        pool = '%s\'s pool %s' % (self.host.name, self.cidr)
        if value not in range(self.cidr.first, self.cidr.last + 1):
            return 'is outside %s' % pool
        if self.cidr.prefixlen < 31 and value == self.cidr.first:
            return 'is the network address of %s' % pool
        if self.cidr.prefixlen < 31 and value == self.cidr.last:
            return 'is the broadcast address of %s' % pool
        if value < self.first + self.reserved:
            return 'is in the reserved part of %s (vmm_guest_network_reserved: %d)' % (pool, self.reserved)
        return None

    def address6(self, index):
        return str(netaddr.IPAddress(self.net6.first + self.reserved + index + 1, 6))

    def problem6(self, address):
        value = int(netaddr.IPAddress(address))
        net = '%s\'s IPv6 network %s' % (self.host.name, self.net6)
        if value not in range(self.net6.first, self.net6.last + 1):
            return 'is outside %s' % net
        if value <= self.net6.first + self.reserved:
            return 'is in the reserved part of %s (the subnet-router address and vmm_guest_network_reserved: %d)' % (
                net, self.reserved)
        return None


def _addresses(hosts, recorded):
    """Fill address/address6; FleetPlanError on a collision or an address its pool does not hand out."""
    taken = {}      # address -> guest name (switch guests: the whole fleet; local ones: per host)
    pending = []    # guests of a pool without a given address or index, after the others

    def claim(key, guest, address):
        other = taken.get(key)
        if other is not None and other != guest['name']:
            raise FleetPlanError('address collision in the fleet: %s and %s both have %s' % (other, guest['name'], address))
        taken[key] = guest['name']

    for host in hosts.values():
        pool = _Pool(host)
        host.pool = pool
        for position, guest in enumerate(host.guests):
            guest.setdefault('_position', position)
            name = guest['name']
            if not guest.get('switch'):
                # vmd's local interface: vmd gives the address (priv.c vm_priv_addr), only ever observed.
                address = guest.get('address') or recorded.get(name, {}).get('address')
                if recorded.get(name, {}).get('host') != host.name and not guest.get('address'):
                    address = None  # observed on another host
                if address:
                    guest['address'] = _address(address, 4, 'guest %s: address' % name)
                    claim(('local', host.name, guest['address']), guest, guest['address'])
                else:
                    guest.pop('address', None)
                continue
            if guest.get('address'):
                guest['address'] = _address(guest['address'], 4, 'guest %s: address' % name)
                if pool.cidr is not None:
                    problem = pool.problem(guest['address'])
                    if problem:
                        raise FleetPlanError('guest %s: address %s %s' % (name, guest['address'], problem))
                    guest['_index'] = pool.index_of(guest['address'])
            elif pool.cidr is not None:
                if guest.get('index') is not None or guest.get('_explicit'):
                    index = guest['index'] if guest.get('index') is not None else guest['_position']
                    guest['address'] = pool.address(index)
                    guest['_index'] = pool.index_of(guest['address'])
                else:
                    pending.append((pool, guest))   # no address yet: claimed when it gets one, below
            if guest.get('address'):
                claim(guest['address'], guest, guest['address'])
    # Placed guests: the recorded address while it is free in the pool, else the first free one.
    later = []
    for pool, guest in pending:
        entry = recorded.get(guest['name'], {})
        address = entry.get('address') if entry.get('host') == pool.host.name else None
        if address and not pool.problem(address) and address not in taken:
            guest['address'] = address
            guest['_index'] = pool.index_of(address)
            claim(address, guest, address)
        else:
            later.append((pool, guest))
    for pool, guest in later:
        index = 0
        while True:
            try:
                address = pool.address(index)
            except FleetNetError as exc:
                raise FleetPlanError('guest %s on %s gets no address: %s' % (guest['name'], pool.host.name, exc))
            if address not in taken:
                break
            index += 1
        guest['address'], guest['_index'] = address, index
        claim(address, guest, address)
    # IPv6: the same offset in the host's /64 as the IPv4 address in its network.
    for host in hosts.values():
        pool = host.pool
        for guest in host.guests:
            if not guest.get('switch'):
                continue
            if guest.get('address6'):
                guest['address6'] = _address(guest['address6'], 6, 'guest %s: address6' % guest['name'])
                if pool.net6 is not None:
                    problem = pool.problem6(guest['address6'])
                    if problem:
                        raise FleetPlanError('guest %s: address6 %s %s' % (guest['name'], guest['address6'], problem))
            elif pool.net6 is not None:
                index = guest.get('_index')
                if index is None:
                    index = guest['index'] if guest.get('index') is not None else guest['_position']
                guest['address6'] = pool.address6(_count(index, 'guest %s: index' % guest['name']))
            if guest.get('address6'):
                claim(guest['address6'], guest, guest['address6'])


# ---------------------------------------------------------------------------
# one vmm host's provisioning

def provision_plan(guests, disk_dir='/var/vmm', image=None, memory=DEFAULT_GUEST_MEMORY, lladdrs=None, with_host=False,
                   archive=True):
    """What provision.yml gives vmm_vm (vms), vmm_disk (disks) and install_server (leases) for one host's guests.

    ``guests`` are the host's planned vmm_guests (lladdr filled in). A guest that is not absent gets an
    overlay ``<disk_dir>/<name>.qcow2`` on its ``image`` (default ``image``, else ``<disk_dir>/golden.qcow2``)
    and a VM with that disk and one interface (its ``switch``, else a vmd local interface) with its lladdr;
    a guest on a switch with an address gets a DHCP lease. An absent guest: the VM absent, its overlay
    moved to ``<disk_dir>/archive`` (deleted when not ``archive``), no lease.

    ``lladdrs`` (vmm_lladdrs' result, keyed by name, or host/name ``with_host``) gives the MACs of a plain
    inventory's guests; its entry wins over the guest's own ``lladdr`` (it is the normalised one).
    """
    if lladdrs is not None and not isinstance(lladdrs, Mapping):
        raise FleetPlanError('lladdrs must be a mapping of VM names (host/name with with_host) to MAC addresses')
    if guests is None:
        guests = []
    if not isinstance(guests, list):
        raise FleetPlanError('the guests must be a list (a vmm host\'s vmm_guests)')
    if not isinstance(disk_dir, str) or not disk_dir.startswith('/') or disk_dir != disk_dir.strip():
        raise FleetPlanError('disk_dir must be an absolute path, got %r' % (disk_dir,))
    disk_dir = disk_dir.rstrip('/') or '/'
    image = image or '%s/golden.qcow2' % disk_dir
    memory = memory or DEFAULT_GUEST_MEMORY
    vms, disks, leases = [], [], []
    names = set()
    for guest in _guest_list(guests, 'the guests'):
        name = guest['name']
        if name in names:
            raise FleetPlanError('guest %s is listed twice' % name)
        names.add(name)
        path = '%s/%s.qcow2' % (disk_dir, name)
        state = guest.get('state') or 'running'
        if state == 'absent':
            vms.append({'name': name, 'state': 'absent'})
            disks.append(dict({'path': path, 'state': 'absent'}, **({'archive_dir': '%s/archive' % disk_dir} if archive else {})))
            continue
        key = '%s/%s' % (guest.get('host'), name) if with_host else name
        if lladdrs and lladdrs.get(key):
            guest['lladdr'] = lladdrs[key]
        if not guest.get('lladdr'):
            raise FleetPlanError('guest %s has no lladdr: pass the vmm_guests the openbsd.vmm.vmm inventory writes '
                                 '(or give each guest its lladdr)' % name)
        interface = {'switch': guest['switch']} if guest.get('switch') else {'local': True}
        interface['lladdr'] = guest['lladdr']
        vm = {'name': name, 'memory': guest.get('memory') or memory, 'state': state, 'disks': [path],
              'interfaces': [interface]}
        if guest.get('owner') is not None:
            vm['owner'] = guest['owner']
        vms.append(vm)
        disks.append({'path': path, 'base': guest.get('image') or image})
        leases += guest_leases([guest])
    return {'vms': vms, 'disks': disks, 'leases': leases}


def guest_leases(guests):
    """install_server_dhcp_hosts items {name, mac, address} of the guests on a switch with an address (not absent).

    A local-interface guest gets its address from vmd's own DHCP server, so no lease.
    """
    return [{'name': guest['name'], 'mac': guest['lladdr'], 'address': guest['address']} for guest in guests
            if guest.get('switch') and guest.get('address') and guest.get('lladdr')
            and (guest.get('state') or 'running') != 'absent']
