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
    their host variables, among them C(vmm_guests) as C(playbooks/provision.yml) reads it.
  - Adds every vmm host to the group O(host_group) with its variables, and every guest as an inventory host of its
    own in O(guest_group) and in the group C(<vmm host>_guests), so one file drives both provisioning the VMs and
    reaching them.
  - Every guest gets its MAC address (C(lladdr)) derived as the filter P(openbsd.vmm.vmm_lladdr#filter) derives it
    (or kept as given), also written back into the vmm host's C(vmm_guests), and the fleet is checked for
    MAC collisions and duplicate names.
  - A guest's C(address) is taken as given, or, when its vmm host has C(vmm_guest_network), the address at the
    guest's C(index) (default its position in C(vmm_guests)) of that pool after C(vmm_guest_network_reserved)
    addresses, as P(openbsd.vmm.vmm_ipv4_address#filter) computes it.
  - Guest hosts get the variables C(vmm_host), C(lladdr), C(address) (when known), C(ansible_host) (the address,
    unless the guest sets C(ansible_host)), C(vmm_guest) (the guest's entry) and the guest's own C(vars).
  - O(compose), O(groups) and O(keyed_groups) apply to the guest hosts (the vmm hosts' variables are in the file already).
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
        at least C(name), and optional C(lladdr), C(address), C(index) and C(vars) (variables of the guest host).
    type: dict
    default: {}
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
# fleet.vmm.yml
plugin: openbsd.vmm.vmm
vmm_hosts:
  vmm1:
    ansible_host: 192.0.2.1
    vmm_guest_network: 192.0.2.0/24
    vmm_guest_network_reserved: 9
    vmm_guests:
      - {name: web1, memory: 1G, switch: uplink, owner: alice}
      - {name: db1, memory: 2G, switch: uplink, state: stopped, vars: {role: db}}
  vmm2:
    ansible_host: 192.0.2.2
    vmm_guests:
      - {name: app1, address: 198.51.100.7, lladdr: "fe:e1:ba:d0:00:07"}
keyed_groups:
  - key: vmm_guest.state | default('running')
    prefix: state
compose:
  ansible_user: "'root'"

# ansible-inventory -i fleet.vmm.yml --graph
# ansible-playbook -i fleet.vmm.yml playbooks/provision.yml   # the vmm hosts are in vmm_hosts
# ansible -i fleet.vmm.yml vmm1_guests -m ping                  # web1 at 192.0.2.10, db1 at 192.0.2.11
"""

from collections.abc import Mapping

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError, fleet_lladdrs, ipv4_address


class InventoryModule(BaseInventoryPlugin, Constructable):

    NAME = 'openbsd.vmm.vmm'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(('vmm.yml', 'vmm.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        try:
            hosts, guests = self._fleet(self.get_option('vmm_hosts') or {})
        except FleetNetError as exc:
            raise AnsibleParserError('%s: %s' % (path, exc))
        host_group = self.inventory.add_group(self.get_option('host_group'))
        guest_group = self.inventory.add_group(self.get_option('guest_group'))
        for name, variables in hosts.items():
            self.inventory.add_host(name, group=host_group)
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
        for name, variables in guests.items():
            per_host_group = self.inventory.add_group('%s_guests' % variables['vmm_host'])
            self.inventory.add_host(name, group=guest_group)
            self.inventory.add_host(name, group=per_host_group)
            self._set_guest_vars(name, variables)

    def _set_guest_vars(self, host, variables):
        for key, value in variables.items():
            self.inventory.set_variable(host, key, value)
        strict = self.get_option('strict')
        self._set_composite_vars(self.get_option('compose'), variables, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option('groups'), variables, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, host, strict=strict)

    def _fleet(self, vmm_hosts):
        """({vmm host: vars}, {guest: vars}) with lladdrs and addresses filled in; FleetNetError on bad input."""
        if not isinstance(vmm_hosts, Mapping):
            raise FleetNetError('vmm_hosts must be a mapping of vmm host names to their variables')
        with_host = self.get_option('lladdr_with_host')
        entries = []
        for host, host_vars in vmm_hosts.items():
            host_vars = dict(host_vars or {})
            guests = host_vars.get('vmm_guests') or []
            if not isinstance(guests, list) or not all(isinstance(g, Mapping) and g.get('name') for g in guests):
                raise FleetNetError('vmm_guests of %s must be a list of mappings, each with a name' % host)
            for position, guest in enumerate(guests):
                entries.append((host, position, dict(guest)))
        lladdrs = fleet_lladdrs([dict(guest, host=host) for host, _position, guest in entries],
                                prefix=self.get_option('lladdr_prefix'), with_host=with_host)

        hosts = {host: dict(host_vars or {}, vmm_guests=[]) for host, host_vars in vmm_hosts.items()}
        guests = {}
        for host, position, guest in entries:
            name = guest['name']
            if name in hosts:
                raise FleetNetError('guest %s of %s has the name of a vmm host' % (name, host))
            if name in guests:
                raise FleetNetError('guest %s is listed on %s and on %s' % (name, guests[name]['vmm_host'], host))
            guest['lladdr'] = lladdrs['%s/%s' % (host, name) if with_host else name]
            host_vars = hosts[host]
            if not guest.get('address') and host_vars.get('vmm_guest_network'):
                guest['address'] = ipv4_address(host_vars['vmm_guest_network'], guest.get('index', position),
                                                reserved=host_vars.get('vmm_guest_network_reserved', 0))
            host_vars['vmm_guests'].append(guest)
            variables = {'vmm_host': host, 'lladdr': guest['lladdr'],
                         'vmm_guest': {k: v for k, v in guest.items() if k != 'vars'}}
            if guest.get('address'):
                variables['address'] = guest['address']
                variables['ansible_host'] = guest['address']
            variables.update(guest.get('vars') or {})
            guests[name] = variables
        return hosts, guests
