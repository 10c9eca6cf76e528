# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_lladdrs
short_description: MAC addresses for a whole fleet of VMs, failing on collisions
version_added: 0.1.0
description:
  - Maps each VM of a fleet to its MAC address, derived as P(openbsd.vmm.vmm_lladdr#filter) does, or taken as given
    from a guest's C(lladdr).
  - Fails naming every pair of VMs that would share an address (and any VM listed twice); give one VM of each pair
    an explicit C(lladdr) to resolve it.
options:
  _input:
    description:
      - The VMs, as names or as dicts with C(name) and optional C(lladdr) and C(host).
    type: list
    elements: raw
    required: true
  prefix:
    description: Leading octets of derived addresses, see P(openbsd.vmm.vmm_lladdr#filter).
    type: str
    default: "fe:e1:ba:d0"
  with_host:
    description:
      - Derive from C(host/name) with each guest's C(host). The keys of the result are then C(host/name).
    type: bool
    default: false
seealso:
  - plugin: openbsd.vmm.vmm_lladdr
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: Fail early if two VMs of the fleet would share a MAC
  ansible.builtin.set_fact:
    fleet_lladdrs: "{{ groups['vmm_hosts'] | map('extract', hostvars, 'vmm_guests') | flatten | openbsd.vmm.vmm_lladdrs }}"

- name: Names only
  ansible.builtin.debug:
    msg: "{{ ['web1', 'web2', 'db1'] | openbsd.vmm.vmm_lladdrs }}"
"""

RETURN = r"""
_value:
  description: VM name (or C(host/name)) to MAC address.
  type: dict
  sample: {web1: "fe:e1:ba:d0:65:9a", db1: "fe:e1:ba:d0:01:03"}
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import DEFAULT_LLADDR_PREFIX, FleetNetError, fleet_lladdrs


def vmm_lladdrs(guests, prefix=DEFAULT_LLADDR_PREFIX, with_host=False):
    if isinstance(guests, (str, Mapping)) or not hasattr(guests, '__iter__'):
        raise AnsibleFilterError('vmm_lladdrs: expects a list of VM names or dicts with name, got %s' % type(guests).__name__)
    try:
        return fleet_lladdrs(guests, prefix=prefix, with_host=with_host)
    except FleetNetError as exc:
        raise AnsibleFilterError('vmm_lladdrs: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_lladdrs': vmm_lladdrs}
