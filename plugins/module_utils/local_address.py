# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""The addresses vmd gives a VM's ``local interface``, computed as vmd does.

usr.sbin/vmd/priv.c ``vm_priv_addr(cfg, vmid, idx, isvm)``: with the host's
``local prefix`` (vm.conf; 100.64.0.0/10 when absent) the host side of
interface ``idx`` of VM ``vmid`` is ``prefix | ((vmid << 8) | ((idx + 1) * 2))``
(32-bit arithmetic), the guest side that plus one. When the result leaves the
prefix, or idx >= 127, vmd logs "dhcp address range exceeded" and gives no
address: its DHCP server (dhcp.c) does not answer, so the installer finds no
lease. The DHCP reply's next-server is the host side.
"""

from __future__ import annotations

import ipaddress
import re

DEFAULT_LOCAL_PREFIX = '100.64.0.0/10'
_PREFIX = re.compile(r'(\d{1,3}(?:\.\d{1,3}){0,3})(?:/(\d{1,2}))?')


class LocalAddressError(ValueError):
    """The VM gets no address from vmd (range exceeded), or the prefix cannot be read."""


def parse_local_prefix(text):
    """vm.conf's ``local prefix`` value as an IPv4Network (parse.y parse_prefix4: length 1..16, default 16)."""
    match = _PREFIX.fullmatch(text or '')
    if not match:
        raise LocalAddressError('local prefix %r is not an IPv4 prefix such as 100.64.0.0/10' % text)
    octets = match.group(1).split('.')
    octets += ['0'] * (4 - len(octets))
    length = int(match.group(2)) if match.group(2) else 16
    if not 1 <= length <= 16:
        raise LocalAddressError('local prefix %r: the length must be 1 to 16 (vmd refuses others)' % text)
    try:
        return ipaddress.IPv4Network('%s/%d' % ('.'.join(octets), length))
    except ValueError as exc:
        raise LocalAddressError('local prefix %r: %s' % (text, exc))


def vm_priv_addr(prefix, vmid, idx=0, isvm=False):
    """The address of interface ``idx`` of VM ``vmid``: host side, or guest side with ``isvm``."""
    network = prefix if isinstance(prefix, ipaddress.IPv4Network) else parse_local_prefix(prefix)
    base = int(network.network_address)
    mask = int(network.netmask)
    addr = ((vmid << 8) | ((idx + 1) * 2)) & 0xFFFFFFFF
    if isvm:
        addr += 1
    addr = (addr | base) & 0xFFFFFFFF
    if (addr & mask) != base or idx >= 0x7f:
        raise LocalAddressError(
            'dhcp address range exceeded, vm id %d interface %d: local prefix %s has no address for it, so vmd '
            'gives the VM none' % (vmid, idx, network))
    return str(ipaddress.IPv4Address(addr))
