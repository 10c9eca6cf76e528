# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_migrate_leases
short_description: A vmm host's DHCP leases while VMs move between hosts
version_added: 0.1.0
description:
  - Used by C(playbooks/migrate.yml) to write a host's dhcpd.conf while moves are under way. A VM keeps its address when
    it moves, so its static lease (the journal's C(lease) of the move) goes with it.
  - Starts from the host's leases as the inventory gives them (C(vmm_guest_leases)); the lease of a VM the journal is
    moving is on its target once its disks are copied, and on its source until the move is done or until the VM
    O(leaving) is removed from the source.
options:
  _input:
    description: The migration journal (C({version, moves})).
    type: dict
    required: true
  host:
    description: The vmm host whose leases these are.
    type: str
    required: true
  leases:
    description: The host's leases in the inventory (its C(vmm_guest_leases)), C({name, mac, address}) each.
    type: list
    elements: dict
    default: []
  leaving:
    description: A VM whose lease leaves O(host) now (the move's last step).
    type: str
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: vmm2's leases with the ones moving there
  ansible.builtin.debug:
    msg: "{{ journal | openbsd.vmm.vmm_migrate_leases(host='vmm2', leases=hostvars['vmm2'].vmm_guest_leases) }}"
"""

RETURN = r"""
_value:
  description: The host's leases, C({name, mac, address}) each.
  type: list
  elements: dict
  sample: [{"name": "web1", "mac": "fe:e1:ba:d0:65:9a", "address": "198.51.100.10"}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.vm_move import MovePlanError, host_leases


def vmm_migrate_leases(journal, host, leases=None, leaving=None):
    if not isinstance(host, str) or not isinstance(leases or [], list):
        raise AnsibleFilterError('vmm_migrate_leases: host must be a vmm host name and leases a list of leases')
    try:
        return host_leases(journal, host, leases, leaving=leaving)
    except MovePlanError as exc:
        raise AnsibleFilterError('vmm_migrate_leases: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_migrate_leases': vmm_migrate_leases}
