# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side derivations shared by the filters and the inventory plugin.

MAC addresses of VMs, IPv4 addresses from a pool and IPv6 /64s: one place, so the
fleet's playbooks and its inventory always agree.
"""

from __future__ import annotations

import hashlib
import re

from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import vm_name_problem

try:
    import netaddr
except ImportError:  # reported when an IP derivation is used
    netaddr = None

# Locally administered (bit 1 of the first octet set), unicast (bit 0 clear).
DEFAULT_LLADDR_PREFIX = 'fe:e1:ba:d0'
_OCTET = re.compile(r'[0-9a-f]{1,2}')
_LLADDR = re.compile(r'[0-9a-f]{2}(?::[0-9a-f]{2}){5}')


class FleetNetError(ValueError):
    """A derivation that cannot give an answer; the message says why."""


def parse_lladdr_prefix(prefix):
    """'fe:e1:ba:d0' -> bytes; 1 to 5 octets, locally administered and unicast."""
    text = str(prefix).lower().replace('-', ':')
    octets = text.split(':') if text else []
    if not 1 <= len(octets) <= 5:
        raise FleetNetError('lladdr prefix %r must have 1 to 5 octets separated by ":"' % (prefix,))
    if not all(_OCTET.fullmatch(octet) for octet in octets):  # int() alone would take blanks and line breaks
        raise FleetNetError('lladdr prefix %r is not hex octets like fe:e1:ba:d0' % (prefix,))
    values = bytes(int(octet, 16) for octet in octets)
    if values[0] & 0x01:
        raise FleetNetError('lladdr prefix %r is a multicast address: the first octet must be even' % (prefix,))
    if not values[0] & 0x02:
        raise FleetNetError('lladdr prefix %r is not locally administered: set bit 1 of the first octet (e.g. fe, 02)'
                            % (prefix,))
    return values


def lladdr_key(name, host=None):
    """What the MAC is derived from: the VM name, or host/name when the host is part of it."""
    if not name or not isinstance(name, str):
        raise FleetNetError('a VM name (non-empty string) is needed to derive a lladdr, got %r' % (name,))
    problem = vm_name_problem(name)
    if problem:  # the MAC of a name vmd refuses (or one with a line break) would name no VM
        raise FleetNetError('VM name %r: %s' % (name, problem))
    return '%s/%s' % (host, name) if host else name


def derive_lladdr(name, host=None, prefix=DEFAULT_LLADDR_PREFIX):
    """A stable MAC: the prefix, then the first bytes of SHA-256(name or host/name)."""
    head = parse_lladdr_prefix(prefix)
    digest = hashlib.sha256(lladdr_key(name, host).encode('utf-8')).digest()
    return ':'.join('%02x' % octet for octet in head + digest[:6 - len(head)])


def normalize_lladdr(value):
    """'FE-E1-BA-D0-00-01' -> 'fe:e1:ba:d0:00:01'; FleetNetError if it is not six octets or is a multicast address."""
    text = str(value).lower().replace('-', ':')
    if not _LLADDR.fullmatch(text):  # the whole string: a line break or blank around it is refused, not stripped
        raise FleetNetError('%r is not a MAC address (six hex octets)' % (value,))
    if int(text[:2], 16) & 0x01:
        raise FleetNetError('%r is a multicast address; a VM interface needs a unicast one (first octet even)' % (value,))
    return text


def fleet_lladdrs(guests, prefix, with_host):
    """{name: lladdr} for a fleet; FleetNetError naming every pair of VMs that share a MAC.

    ``guests`` are names or dicts with ``name`` and optional ``lladdr`` (kept as given) and ``host``
    (used when ``with_host``). A derived collision is fixed by giving one of the VMs an explicit lladdr.
    """
    result = {}
    owners = {}
    clashes = []
    for guest in guests:
        entry = {'name': guest} if isinstance(guest, str) else dict(guest)
        name = entry.get('name')
        key = lladdr_key(name, entry.get('host') if with_host else None)
        if key in result:
            raise FleetNetError('VM %s appears twice in the fleet' % key)
        if entry.get('lladdr'):
            lladdr = normalize_lladdr(entry['lladdr'])
        else:
            lladdr = derive_lladdr(name, entry.get('host') if with_host else None, prefix)
        if lladdr in owners:
            clashes.append('%s and %s both get %s' % (owners[lladdr], key, lladdr))
        else:
            owners[lladdr] = key
        result[key] = lladdr
    if clashes:
        raise FleetNetError('lladdr collision in the fleet: %s; give one VM of each pair an explicit lladdr'
                            % '; '.join(clashes))
    return result


def _require_netaddr():
    if netaddr is None:
        raise FleetNetError('the Python library netaddr is required on the controller (pip install netaddr)')


def _network(value, version, what):
    _require_netaddr()
    if isinstance(value, str) and value != value.strip():  # netaddr reads around a final line break; refuse it
        raise FleetNetError('%r is not an %s network: blanks and line breaks are not allowed' % (value, what))
    try:
        network = netaddr.IPNetwork(str(value))
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise FleetNetError('%r is not an %s network (address/prefix length)' % (value, what))
    if network.version != version:
        raise FleetNetError('%s is not an %s network' % (value, what))
    return network.cidr


def _index(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise FleetNetError('%s must be a whole number, got %r' % (what, value))
    if value < 0:
        raise FleetNetError('%s must not be negative, got %d' % (what, value))
    return value


def ipv4_address(network, index, reserved, with_prefix=False):
    """The address at ``index`` (0 = first) of a network's pool.

    The pool is the usable addresses (network and broadcast addresses excluded, except in a /31 or /32,
    RFC 3021) after the first ``reserved`` of them (a gateway, say).
    """
    cidr = _network(network, 4, 'IPv4')
    index = _index(index, 'the index')
    reserved = _index(reserved, 'reserved')
    if cidr.prefixlen >= 31:
        first, last = cidr.first, cidr.last
    else:
        first, last = cidr.first + 1, cidr.last - 1
    usable = last - first + 1
    pool = usable - reserved
    if index >= pool:
        if pool <= 0:
            detail = 'all %d usable addresses are reserved' % usable
        else:
            detail = 'it has %d addresses (%s - %s) after %d reserved' % (
                pool, netaddr.IPAddress(first + reserved), netaddr.IPAddress(last), reserved)
        raise FleetNetError('the IPv4 pool of %s is exhausted at index %d: %s' % (cidr, index, detail))
    address = netaddr.IPAddress(first + reserved + index)
    return '%s/%d' % (address, cidr.prefixlen) if with_prefix else str(address)


def ipv6_subnet(prefix, index, prefixlen=64):
    """The subnet of length ``prefixlen`` (a /64 by default) at ``index`` (0 = first) inside ``prefix``."""
    cidr = _network(prefix, 6, 'IPv6')
    index = _index(index, 'the index')
    prefixlen = _index(prefixlen, 'prefixlen')
    if not cidr.prefixlen <= prefixlen <= 128:
        raise FleetNetError('cannot cut /%d subnets out of %s' % (prefixlen, cidr))
    count = 1 << (prefixlen - cidr.prefixlen)
    if index >= count:
        raise FleetNetError('%s has %d /%d subnets (index 0 to %d), not index %d' % (cidr, count, prefixlen, count - 1, index))
    subnet = netaddr.IPNetwork('%s/%d' % (netaddr.IPAddress(cidr.first + (index << (128 - prefixlen)), 6), prefixlen))
    return str(subnet)
