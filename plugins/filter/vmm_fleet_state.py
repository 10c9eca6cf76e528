# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_fleet_state
short_description: The fleet's state file content, from the planned guests and the addresses vmd gave
version_added: 0.1.0
description:
  - Returns what the state file of the inventory plugin P(openbsd.vmm.vmm#inventory) (its O(openbsd.vmm.vmm#inventory:state_file),
    the vmm hosts' C(vmm_fleet_state_file)) should hold after a run, so the next inventory keeps every guest on the
    vmm host it was placed on and knows the addresses of guests on vmd local interfaces.
  - One entry per guest, C({host, address, address6, placed}) (address and address6 when known), sorted by name.
  - A guest on a vmd local interface (no C(switch)) takes its address from O(observed) when it is there, else keeps
    the one it has; a switch guest's address is always the planned one (O(observed) is ignored for it).
  - Pass every vmm host's guests; an entry of a guest that is not passed is not written.
options:
  _input:
    description: The planned guests, each with C(name) and C(host) (the C(vmm_guests) of the vmm hosts, flattened).
    type: list
    elements: dict
    required: true
  observed:
    description: Guest name to the IPv4 address vmd gave its local interface (from M(openbsd.vmm.vmm_vm_info)).
    type: dict
    default: {}
seealso:
  - plugin: openbsd.vmm.vmm
    plugin_type: inventory
  - module: openbsd.vmm.vmm_vm_info
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: Record placements and the addresses vmd gave (run once, on the controller)
  ansible.builtin.copy:
    dest: "{{ vmm_fleet_state_file }}"
    mode: "0644"
    content: "{{ guests | openbsd.vmm.vmm_fleet_state(observed=observed) | to_nice_json }}\n"
  vars:
    guests: "{{ groups['vmm_hosts'] | map('extract', hostvars, 'vmm_guests') | flatten(levels=1) }}"
    # {name: address} of the running VMs' local interfaces, gathered with openbsd.vmm.vmm_vm_info
    observed: "{{ provision_observed | default({}) }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description: The state file's content.
  type: dict
  sample: {"version": 1, "guests": {"web1": {"host": "vmm1", "address": "100.64.2.3", "placed": "2026-11-30T12:00:00Z"}}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError
from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_plan import fleet_state


def vmm_fleet_state(guests, observed=None):
    try:
        return fleet_state(guests, observed=observed)
    except FleetNetError as exc:
        raise AnsibleFilterError('vmm_fleet_state: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_fleet_state': vmm_fleet_state}
