# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vmm_lladdr
short_description: A stable, locally administered MAC address for a VM
version_added: 0.1.0
description:
  - Derives a unicast, locally administered MAC address (lladdr in vm.conf) from a VM name, so a VM keeps its MAC
    (and with it its DHCP lease and its autoinstall response file C(<mac>-install.conf)) across rebuilds.
  - The address is O(prefix) followed by the first bytes of the SHA-256 of the name (or of C(host/name) when O(host)
    is given). With the default 4-octet prefix that is 2 bytes, 65536 addresses, so collisions in a large fleet are
    possible - check the fleet with P(openbsd.vmm.vmm_lladdrs#filter), which fails on any collision.
  - The inventory plugin P(openbsd.vmm.vmm#inventory) derives the same addresses.
options:
  _input:
    description: Name of the VM.
    type: str
    required: true
  host:
    description:
      - Name of the vmm host, made part of the derivation. Leave it out when VMs may move between hosts.
    type: str
  prefix:
    description:
      - Leading octets (1 to 5, hex, separated by C(:)). The first octet must be locally administered and unicast
        (bit 1 set, bit 0 clear, for example C(fe) or C(02)).
    type: str
    default: "fe:e1:ba:d0"
seealso:
  - plugin: openbsd.vmm.vmm_lladdrs
    plugin_type: filter
author:
  - openbsd.vmm contributors (@openbsd-vmm)
"""

EXAMPLES = r"""
- name: The lladdr of web1
  ansible.builtin.debug:
    msg: "{{ 'web1' | openbsd.vmm.vmm_lladdr }}"  # fe:e1:ba:d0:65:9a

- name: Derived from host and name, with an own prefix
  ansible.builtin.debug:
    msg: "{{ 'web1' | openbsd.vmm.vmm_lladdr(host='vmm1', prefix='02:00:5e') }}"
"""

RETURN = r"""
_value:
  description: The MAC address, six lower-case hex octets separated by C(:).
  type: str
  sample: fe:e1:ba:d0:65:9a
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import DEFAULT_LLADDR_PREFIX, FleetNetError, derive_lladdr


def vmm_lladdr(name, host=None, prefix=DEFAULT_LLADDR_PREFIX):
    try:
        return derive_lladdr(name, host=host, prefix=prefix)
    except FleetNetError as exc:
        raise AnsibleFilterError('vmm_lladdr: %s' % exc)


class FilterModule:
    def filters(self):
        return {'vmm_lladdr': vmm_lladdr}
