# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_ipv6_subnet
short_description: The Nth /64 of an IPv6 prefix
version_added: 0.1.0
description:
  - Returns the subnet at position O(index) (0 is the first) of an IPv6 prefix, a /64 unless O(prefixlen) says otherwise,
    for example one /64 per VM or per switch out of a /48 or /56.
  - Fails with the number of subnets when O(index) is beyond them.
  - Needs the Python library netaddr on the controller.
options:
  _input:
    description: The IPv6 prefix, C(address/prefix length); host bits are ignored.
    type: str
    required: true
  index:
    description: Position of the subnet, 0 for the first.
    type: int
    required: true
  prefixlen:
    description: Length of the subnets; at least the input's prefix length.
    type: int
    default: 64
seealso:
  - plugin: openbsd.vmm.vmm_ipv4_address
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: The fourth /64 of a /48
  ansible.builtin.debug:
    msg: "{{ '2001:db8::/48' | openbsd.vmm.vmm_ipv6_subnet(3) }}"  # 2001:db8:0:3::/64
"""

RETURN = r"""
_value:
  description: The subnet, C(address/prefix length).
  type: str
  sample: 2001:db8:0:3::/64
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError, ipv6_subnet


def vmm_ipv6_subnet(prefix, index, prefixlen=64):
    try:
        return ipv6_subnet(prefix, index, prefixlen=prefixlen)
    except FleetNetError as exc:
        raise AnsibleFilterError('vmm_ipv6_subnet: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_ipv6_subnet': vmm_ipv6_subnet}
