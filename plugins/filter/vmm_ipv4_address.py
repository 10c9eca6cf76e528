# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_ipv4_address
short_description: The Nth address of an IPv4 pool
version_added: 0.1.0
description:
  - Returns the address at position O(index) (0 is the first) of the usable addresses of an IPv4 network, after
    the first O(reserved) of them (for a gateway, the host's own address, ...).
  - The network and broadcast addresses are never handed out, except in a /31 or /32 (RFC 3021).
  - Fails with the size of the pool when O(index) is beyond it.
  - Needs the Python library netaddr on the controller.
options:
  _input:
    description: The network, C(address/prefix length); host bits are ignored (C(192.0.2.1/24) is C(192.0.2.0/24)).
    type: str
    required: true
  index:
    description: Position in the pool, 0 for the first address after the reserved ones.
    type: int
    required: true
  reserved:
    description: How many usable addresses at the start of the network are kept out of the pool.
    type: int
    default: 0
  with_prefix:
    description: Return C(address/prefix length) (as O(openbsd.vmm.vmm_autoinstall#module:network.ipv4) takes it).
    type: bool
    default: false
seealso:
  - plugin: openbsd.vmm.vmm_ipv6_subnet
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: The first address after the gateway
  ansible.builtin.debug:
    msg: "{{ '192.0.2.0/24' | openbsd.vmm.vmm_ipv4_address(0, reserved=1) }}"  # 192.0.2.2

- name: One address per guest, with the prefix length
  ansible.builtin.debug:
    msg: "{{ item.name }} gets {{ '192.0.2.0/24' | openbsd.vmm.vmm_ipv4_address(idx, reserved=1, with_prefix=true) }}"
  loop: "{{ vmm_guests }}"
  loop_control:
    index_var: idx
"""

RETURN = r"""
_value:
  description: The address, with C(/prefix length) when O(with_prefix=true).
  type: str
  sample: 192.0.2.2
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError, ipv4_address


def vmm_ipv4_address(network, index, reserved=0, with_prefix=False):
    try:
        return ipv4_address(network, index, reserved=reserved, with_prefix=with_prefix)
    except FleetNetError as exc:
        raise AnsibleFilterError('vmm_ipv4_address: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_ipv4_address': vmm_ipv4_address}
