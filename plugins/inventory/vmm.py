# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm
short_description: The vmm hosts of a fleet file and one inventory host per VM
version_added: 0.1.0
description:
  - Reads a fleet file (this inventory source, ending in C(vmm.yml) or C(vmm.yaml)) that lists the vmm hosts with
    their host variables, among them C(vmm_guests) as C(playbooks/provision.yml) reads it, and guests without a
    host (O(guests)) that the plugin places.
  - Adds every vmm host to the group O(host_group) with its variables, and every guest as an inventory host of its
    own in O(guest_group) and in the group C(<vmm host>_guests), so one file drives both provisioning the VMs and
    reaching them.
  - B(Placement.) A guest listed under a vmm host runs there. A guest of O(guests) that the state file (O(state_file))
    places on a vmm host of the fleet stays there, even when another host has more room now. The others, sorted by
    name, go one by one to the host with the most free memory after the guests placed so far (ties, the fewest
    guests, then the host name), among the hosts with room for them. Room is memory (C(vmm_host_memory), a size such
    as C(16G), the memory for VMs; unset, unlimited; a guest's memory is its C(memory), else the host's
    C(vmm_guest_memory), else 512M), taps (C(vmm_host_tap_count), default 50 as the vmm_host role's; one per guest)
    and VMs (C(vmm_host_max_vms), unset, unlimited); every guest that is not C(state=absent) counts, whatever its
    state. A placed guest is added to the end of its host's C(vmm_guests).
  - >-
    When no host has room for a guest, or the guests listed under (or recorded on) a host do not fit it, the source
    fails before anything is decided, naming every host and what it lacks, for example
    C(no vmm host has room for guest big1 (memory 8G): vmm1 has 2G of memory free, vmm2 has 0 taps free (16 in use)).
  - Every guest gets its MAC address (C(lladdr)) derived as the filter P(openbsd.vmm.vmm_lladdr#filter) derives it
    (or kept as given), also written back into the vmm host's C(vmm_guests), and the fleet is checked for
    MAC collisions and duplicate names.
  - B(Addresses.) A guest on a switch (with C(switch)) gets its C(address) as given, or, when its vmm host has
    C(vmm_guest_network), the address at the guest's C(index) (default its position in C(vmm_guests)) of that pool
    after C(vmm_guest_network_reserved) addresses, as P(openbsd.vmm.vmm_ipv4_address#filter) computes it. A placed
    guest without C(index) keeps the address the state file records while that is free in the pool, else gets the
    first free one. When the host has C(vmm_guest_network6) (a /64 or shorter prefix), a switch guest also gets
    C(address6) (unless given), the first /64 of that prefix plus the offset its IPv4 address has in its network
    (C(192.0.2.2) in C(192.0.2.0/24) gives C(2001:db8::2) in C(2001:db8::/64)); without C(vmm_guest_network) the offset
    is C(vmm_guest_network_reserved) + index + 1.
  - A guest on a vmd local interface (no C(switch)) gets no invented address; vmd gives it one when it starts. Its
    C(address) (and C(ansible_host)) is the one the state file records as observed for it on its vmm host, and is
    absent until a playbook has recorded it (see P(openbsd.vmm.vmm_fleet_state#filter)).
  - Two guests with the same address (IPv4 or IPv6, anywhere in the fleet; local-interface addresses per vmm host),
    or a switch guest's address outside its host's pool network or equal to its network, broadcast or a reserved
    address, fail the source naming the guests and the address.
  - Guest hosts get the variables C(vmm_host), C(lladdr), C(address) and C(address6) (when known), C(ansible_host)
    (the address, unless the guest sets C(ansible_host)), C(vmm_guest) (the guest's planned entry, its fleet entry
    with C(host), C(lladdr), C(placed) and the addresses) and the guest's own C(vars).
  - Every vmm host gets C(vmm_guests) (its guests, planned as above), C(vmm_fleet_state_file), the absolute path of
    the state file, so a playbook knows where to record placements and observed addresses, and C(vmm_guest_leases),
    the DHCP host entries C({name, mac, address}) of its guests on a switch with an address (not C(state=absent)),
    which the install_server role serves (C(install_server_dhcp_guest_hosts)), and C(vmm_guests_listed), the names of
    the guests the file lists under that host (not the placed ones), which stay there whatever the state file says
    (so C(playbooks/migrate.yml) refuses to move them elsewhere).
  - O(compose), O(groups) and O(keyed_groups) apply to the guest hosts (the vmm hosts' variables are in the file already).
  - Host variables used for placement and addresses (C(vmm_host_memory), C(vmm_host_tap_count), C(vmm_host_max_vms),
    C(vmm_guest_memory), C(vmm_guest_network), C(vmm_guest_network_reserved), C(vmm_guest_network6)) are read as
    written in the file (not templated).
  - Needs the Python library netaddr on the controller.
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks this file as a source for this plugin.
    type: str
    required: true
    choices: [openbsd.vmm.vmm]
  vmm_hosts:
    description:
      - The vmm hosts, by inventory name, each a mapping of host variables. C(vmm_guests) is a list of guests with
        at least C(name), and optional C(memory), C(image), C(switch), C(lladdr), C(owner), C(state), C(address),
        C(address6), C(index) and C(vars) (variables of the guest host).
    type: dict
    default: {}
  guests:
    description:
      - Guests without a host, entries as in C(vmm_guests); each is placed on a vmm host (see the description) and
        appears in that host's C(vmm_guests) and C(<host>_guests).
    type: list
    elements: dict
    default: []
  state_file:
    description:
      - >-
        The fleet's state file (JSON) that records where guests were placed and the addresses vmd gave local
        interfaces, C({"version": 1, "guests": {"web1": {"host": "vmm1", "address": "100.64.2.3",
        "placed": "2026-11-30T12:00:00Z"}}}). A missing file is an empty state; an entry of a guest that is no longer
        in the fleet is ignored. The plugin only reads it; a playbook writes it with
        P(openbsd.vmm.vmm_fleet_state#filter).
      - A relative path is relative to the fleet file's directory.
      - Default, the fleet file's path with C(vmm.yml) (C(vmm.yaml)) replaced by C(vmm.state.json), for example
        C(fleet.vmm.state.json) beside C(fleet.vmm.yml).
    type: str
  lladdr_prefix:
    description: Prefix of derived MAC addresses (see P(openbsd.vmm.vmm_lladdr#filter)).
    type: str
    default: "fe:e1:ba:d0"
  lladdr_with_host:
    description: Derive MAC addresses from C(host/name) instead of the guest's name.
    type: bool
    default: false
  host_group:
    description: Group of the vmm hosts.
    type: str
    default: vmm_hosts
  guest_group:
    description: Group of all guests.
    type: str
    default: vmm_guests
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
# fleet.vmm.yml (its state file: fleet.vmm.state.json beside it)
plugin: openbsd.vmm.vmm
vmm_hosts:
  vmm1:
    ansible_host: 192.0.2.1
    vmm_host_memory: 16G
    vmm_guest_network: 192.0.2.0/24
    vmm_guest_network_reserved: 9
    vmm_guest_network6: 2001:db8:1::/64
    vmm_guests:
      - {name: web1, memory: 1G, switch: uplink, owner: alice}
      - {name: db1, memory: 2G, switch: uplink, state: stopped, vars: {role: db}}
  vmm2:
    ansible_host: 192.0.2.2
    vmm_host_memory: 8G
    vmm_guest_network: 198.51.100.0/24
    vmm_guests:
      - {name: app1, address: 198.51.100.7, lladdr: "fe:e1:ba:d0:00:07", switch: uplink}
# placed on the host with the most free memory (vmm1: 13G free), then kept there
guests:
  - {name: ci1, memory: 4G, switch: uplink}
  - {name: scratch1, memory: 1G}   # a vmd local interface: its address once observed
keyed_groups:
  - key: vmm_guest.state | default('running')
    prefix: state
compose:
  ansible_user: "'root'"

# ansible-inventory -i fleet.vmm.yml --graph
# ansible-playbook -i fleet.vmm.yml playbooks/provision.yml   # the vmm hosts are in vmm_hosts
# ansible -i fleet.vmm.yml vmm1_guests -m ping                  # web1 at 192.0.2.10, db1 at 192.0.2.11, ...
"""

import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError
from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_plan import default_state_path, fleet_plan, guest_leases, read_state


class InventoryModule(BaseInventoryPlugin, Constructable):

    NAME = 'openbsd.vmm.vmm'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(('vmm.yml', 'vmm.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        state_file = self.get_option('state_file')
        if state_file:
            state_file = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(state_file))
        try:
            state_file = os.path.abspath(state_file or default_state_path(path))
            plan = fleet_plan(self.get_option('vmm_hosts') or {}, guests=self.get_option('guests') or [],
                              state=read_state(state_file), lladdr_prefix=self.get_option('lladdr_prefix'),
                              lladdr_with_host=self.get_option('lladdr_with_host'))
        except FleetNetError as exc:  # FleetPlanError too
            raise AnsibleParserError('%s: %s' % (path, exc))
        # fleet_plan checked the file: each listed guest is a mapping with a name
        listed = {guest['name'] for host_vars in (self.get_option('vmm_hosts') or {}).values()
                  for guest in (host_vars or {}).get('vmm_guests') or []}
        host_group = self.inventory.add_group(self.get_option('host_group'))
        guest_group = self.inventory.add_group(self.get_option('guest_group'))
        for name, variables in plan['hosts'].items():
            self.inventory.add_host(name, group=host_group)
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
            self.inventory.set_variable(name, 'vmm_fleet_state_file', state_file)
            self.inventory.set_variable(name, 'vmm_guest_leases', guest_leases(variables['vmm_guests']))
            self.inventory.set_variable(name, 'vmm_guests_listed', [guest['name'] for guest in variables['vmm_guests']
                                                                    if guest['name'] in listed])
        for name, guest in plan['guests'].items():
            per_host_group = self.inventory.add_group('%s_guests' % guest['host'])
            self.inventory.add_host(name, group=guest_group)
            self.inventory.add_host(name, group=per_host_group)
            self._set_guest_vars(name, self._guest_vars(guest))

    @staticmethod
    def _guest_vars(guest):
        variables = {'vmm_host': guest['host'], 'lladdr': guest['lladdr'],
                     'vmm_guest': {k: v for k, v in guest.items() if k != 'vars'}}
        for key in ('address', 'address6'):
            if guest.get(key):
                variables[key] = guest[key]
        if guest.get('address'):
            variables['ansible_host'] = guest['address']
        variables.update(guest.get('vars') or {})
        return variables

    def _set_guest_vars(self, host, variables):
        for key, value in variables.items():
            self.inventory.set_variable(host, key, value)
        strict = self.get_option('strict')
        self._set_composite_vars(self.get_option('compose'), variables, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option('groups'), variables, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, host, strict=strict)
