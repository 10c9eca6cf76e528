# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_provision_plan
short_description: The VMs, overlays and DHCP leases of one vmm host's guests
version_added: 0.1.0
description:
  - Turns a vmm host's C(vmm_guests), as the inventory plugin P(openbsd.vmm.vmm#inventory) writes them (each with its
    C(lladdr) and, when known, C(address)), into the items of M(openbsd.vmm.vmm_vm) O(openbsd.vmm.vmm_vm#module:vms),
    M(openbsd.vmm.vmm_disk) disks and the install_server role's C(install_server_dhcp_hosts), in one step.
  - A guest that is not C(state=absent) gets the overlay C(<disk_dir>/<name>.qcow2) on its C(image) (default O(image));
    a VM C({name, memory, state, disks, interfaces, owner}) whose memory is its C(memory) (default O(memory)), state its
    C(state) (default C(running)), one disk (the overlay) and one interface, C({switch, lladdr}) on its C(switch) or
    C({local, lladdr}) (a vmd local interface) without one, and C(owner) only when the guest has one.
  - A guest on a switch with an C(address) also gets a DHCP lease C({name, mac, address}); a local-interface guest
    gets its address from vmd, so no lease.
  - A C(state=absent) guest gives the VM C({name, state=absent}) and the disk C({path, state=absent, archive_dir}) with
    C(archive_dir) C(<disk_dir>/archive) (without C(archive_dir), deleted, when O(archive=false)); no lease.
  - Fails when a guest (not absent) has no C(lladdr) (nor an entry in O(lladdrs)), or a guest is listed twice.
options:
  _input:
    description: The host's guests (its C(vmm_guests)).
    type: list
    elements: dict
    required: true
  disk_dir:
    description: Directory of the overlays (C(vmm_disk_dir)); absolute.
    type: str
    default: /var/vmm
  image:
    description: Golden image of guests without C(image); default C(<disk_dir>/golden.qcow2).
    type: str
  memory:
    description: Memory of guests without C(memory).
    type: str
    default: 512M
  lladdrs:
    description:
      - MAC addresses by VM name (by C(host/name) with O(with_host=true)), as P(openbsd.vmm.vmm_lladdrs#filter) gives
        them, for guests of a plain inventory (each guest then needs C(host) with O(with_host=true)). An entry wins over
        the guest's own C(lladdr).
    type: dict
  with_host:
    description: O(lladdrs) is keyed by C(host/name).
    type: bool
    default: false
  archive:
    description: The overlay of an absent guest is moved to C(<disk_dir>/archive) (C(archive_dir)); false, deleted.
    type: bool
    default: true
seealso:
  - plugin: openbsd.vmm.vmm
    plugin_type: inventory
  - plugin: openbsd.vmm.vmm_fleet_state
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: The host's plan
  ansible.builtin.set_fact:
    provision: >-
      {{ vmm_guests | openbsd.vmm.vmm_provision_plan(disk_dir=vmm_disk_dir | default('/var/vmm'),
         image=vmm_guest_image | default(omit), memory=vmm_guest_memory | default('512M')) }}

- name: The overlays
  openbsd.vmm.vmm_disk:
    disks: "{{ provision.disks }}"

- name: The VMs
  openbsd.vmm.vmm_vm:
    vms: "{{ provision.vms }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    vms:
      description: M(openbsd.vmm.vmm_vm) O(openbsd.vmm.vmm_vm#module:vms) items, in the order of the guests.
      type: list
      elements: dict
      sample: [{"name": "web1", "memory": "1G", "state": "running", "disks": ["/var/vmm/web1.qcow2"],
                "interfaces": [{"switch": "uplink", "lladdr": "fe:e1:ba:d0:65:9a"}]}]
    disks:
      description: M(openbsd.vmm.vmm_disk) items, C({path, base}) or C({path, state=absent, archive_dir}).
      type: list
      elements: dict
      sample: [{"path": "/var/vmm/web1.qcow2", "base": "/var/vmm/golden.qcow2"}]
    leases:
      description: C(install_server_dhcp_hosts) items C({name, mac, address}) of the switch guests with an address.
      type: list
      elements: dict
      sample: [{"name": "web1", "mac": "fe:e1:ba:d0:65:9a", "address": "192.0.2.2"}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError
from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_plan import provision_plan


def vmm_provision_plan(guests, disk_dir='/var/vmm', image=None, memory='512M', lladdrs=None, with_host=False, archive=True):
    try:
        return provision_plan(guests, disk_dir=disk_dir, image=image, memory=memory, lladdrs=lladdrs, with_host=with_host,
                              archive=archive)
    except FleetNetError as exc:
        raise AnsibleFilterError('vmm_provision_plan: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_provision_plan': vmm_provision_plan}
