# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_local_addresses
short_description: VM name to the address vmd gave its local interface
version_added: 0.1.0
description:
  - Maps each VM record of M(openbsd.vmm.vmm_vm_info) (its RV(openbsd.vmm.vmm_vm_info#module:vms)) that has a
    C(local interface) with an address to that address (the first such interface's), for
    P(openbsd.vmm.vmm_fleet_state#filter)'s O(openbsd.vmm.vmm_fleet_state#filter:observed).
  - Records without C(interfaces) (a VM that is not running, or records of M(openbsd.vmm.vmm_vm)) are left out, so
    nothing is ever invented.
options:
  _input:
    description: VM records, each with C(name) and optional C(interfaces).
    type: list
    elements: dict
    required: true
seealso:
  - module: openbsd.vmm.vmm_vm_info
  - plugin: openbsd.vmm.vmm_fleet_state
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: What vmd gave the host's VMs
  openbsd.vmm.vmm_vm_info:
  register: info

- name: By name
  ansible.builtin.debug:
    msg: "{{ info.vms | openbsd.vmm.vmm_local_addresses }}"   # {"web1": "100.64.3.3"}
"""

RETURN = r"""
_value:
  description: VM name to IPv4 address.
  type: dict
  sample: {"web1": "100.64.3.3"}
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def vmm_local_addresses(records):
    if not isinstance(records, list):
        raise AnsibleFilterError('vmm_local_addresses expects a list of VM records, got %s' % type(records).__name__)
    if not all(isinstance(r, Mapping) and isinstance(r.get('name'), str) and r['name'] for r in records):
        raise AnsibleFilterError('vmm_local_addresses: every VM record needs a name (the vms of openbsd.vmm.vmm_vm_info)')
    result = {}
    for record in records:
        for interface in record.get('interfaces') or []:
            if isinstance(interface, Mapping) and interface.get('local') and interface.get('address'):
                result[record['name']] = interface['address']
                break
    return result


class FilterModule:
    def filters(self):
        return {'vmm_local_addresses': vmm_local_addresses}
