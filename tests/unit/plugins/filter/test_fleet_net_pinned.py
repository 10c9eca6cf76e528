# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pinned values of the fleet derivations: a fleet's MACs and addresses must never change between releases.

The MACs were computed once outside the product (``printf web1 | sha256sum``: the prefix, then the
first bytes of SHA-256 of the name or host/name) and are written here literally; the filters' own
documentation shows the first one (fe:e1:ba:d0:65:9a).
"""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_ipv4_address import FilterModule as Ipv4Filters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_ipv6_subnet import FilterModule as Ipv6Filters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_lladdr import FilterModule as LladdrFilters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_lladdrs import FilterModule as FleetFilters
from ansible_collections.openbsd.vmm.plugins.plugin_utils import fleet_net

vmm_lladdr = LladdrFilters().filters()['vmm_lladdr']
vmm_lladdrs = FleetFilters().filters()['vmm_lladdrs']
vmm_ipv4_address = Ipv4Filters().filters()['vmm_ipv4_address']
vmm_ipv6_subnet = Ipv6Filters().filters()['vmm_ipv6_subnet']


# sha256('web1') = 659a7fb2af47..., sha256('web2') = 146d3146edc9..., sha256('db1') = 82e64648d9ab...,
# sha256('vmm1/web1') = 405b6564dee8...
@pytest.mark.parametrize('args, kwargs, mac', [
    (('web1',), {}, 'fe:e1:ba:d0:65:9a'),
    (('web2',), {}, 'fe:e1:ba:d0:14:6d'),
    (('db1',), {}, 'fe:e1:ba:d0:82:e6'),
    (('web1',), dict(host='vmm1'), 'fe:e1:ba:d0:40:5b'),
    (('web1',), dict(host='vmm1', prefix='02:00:5e'), '02:00:5e:40:5b:65'),
    (('web1',), dict(prefix='fe'), 'fe:65:9a:7f:b2:af'),
    (('web1',), dict(prefix='FE-E1-BA-D0-00'), 'fe:e1:ba:d0:00:65'),
    (('web1',), dict(host=''), 'fe:e1:ba:d0:65:9a'),
])
def test_documented_and_derived_macs_are_pinned(args, kwargs, mac):
    assert vmm_lladdr(*args, **kwargs) == mac


def test_default_prefix_is_documented_one():
    assert fleet_net.DEFAULT_LLADDR_PREFIX == 'fe:e1:ba:d0'


def test_fleet_macs_are_pinned_and_explicit_ones_kept():
    assert vmm_lladdrs(['web1', {'name': 'web2'}, {'name': 'db1', 'lladdr': 'FE-E1-BA-D0-00-01'}]) == {
        'web1': 'fe:e1:ba:d0:65:9a', 'web2': 'fe:e1:ba:d0:14:6d', 'db1': 'fe:e1:ba:d0:00:01'}
    assert vmm_lladdrs([{'name': 'web1', 'host': 'vmm1'}], with_host=True) == {'vmm1/web1': 'fe:e1:ba:d0:40:5b'}
    # without with_host the host is ignored
    assert vmm_lladdrs([{'name': 'web1', 'host': 'vmm1'}]) == {'web1': 'fe:e1:ba:d0:65:9a'}


@pytest.mark.parametrize('prefix, message', [
    ('', 'must have 1 to 5 octets'), ('fe:e1:ba:d0:00:01', 'must have 1 to 5 octets'),
    ('ff', 'is a multicast address'), ('fc', 'is not locally administered'), ('fe:e1:b', None), ('fe:xx', 'is not hex octets'),
    ('fe:e1\n', 'is not hex octets'), ('fe:100', 'is not hex octets'),
])
def test_prefix_rules(prefix, message):
    if message is None:
        assert vmm_lladdr('web1', prefix=prefix) == 'fe:e1:0b:65:9a:7f'
        return
    with pytest.raises(AnsibleFilterError, match=message):
        vmm_lladdr('web1', prefix=prefix)


def test_explicit_lladdr_rules():
    assert fleet_net.normalize_lladdr('02:00:00:00:00:00') == '02:00:00:00:00:00'
    for bad, message in (('fe:e1:ba:d0:00:01:02', 'is not a MAC address'), ('fe:e1:ba:d0:00:1', 'is not a MAC address'),
                         ('fe:e1:ba:d0:00:01\n', 'is not a MAC address'), ('01:00:00:00:00:00', 'is a multicast address')):
        with pytest.raises(fleet_net.FleetNetError, match=message):
            fleet_net.normalize_lladdr(bad)


def test_a_derived_collision_names_both_vms():
    with pytest.raises(AnsibleFilterError, match='web1 and web1b both get fe:e1:ba:d0:00:01'):
        vmm_lladdrs([{'name': 'web1', 'lladdr': 'fe:e1:ba:d0:00:01'}, {'name': 'web1b', 'lladdr': 'fe:e1:ba:d0:00:01'}])
    with pytest.raises(AnsibleFilterError, match='VM web1 appears twice in the fleet'):
        vmm_lladdrs(['web1', 'web1'])


# -- vmm_ipv4_address: reserved defaults to 0, exact pool edges -----------------------------------

@pytest.mark.parametrize('network, index, kwargs, address', [
    ('192.0.2.0/24', 0, {}, '192.0.2.1'),                        # reserved left out: 0, the first usable address
    ('192.0.2.0/24', 0, dict(reserved=1), '192.0.2.2'),         # the documented example
    ('192.0.2.0/24', 253, {}, '192.0.2.254'),
    ('192.0.2.0/24', 252, dict(reserved=1), '192.0.2.254'),
    ('192.0.2.77/24', 0, dict(with_prefix=True), '192.0.2.1/24'),
    ('198.51.100.0/31', 0, {}, '198.51.100.0'), ('198.51.100.0/31', 1, {}, '198.51.100.1'),
    ('198.51.100.9/32', 0, {}, '198.51.100.9'),
    ('10.0.0.0/30', 1, {}, '10.0.0.2'),
    ('192.0.2.0/24', '3', dict(reserved='2'), '192.0.2.6'),
    ('192.0.2.0/24', '12', dict(reserved='10'), '192.0.2.23'),     # read in base 10: '12' is not 13 nor '10' 11
])
def test_ipv4_pool_positions(network, index, kwargs, address):
    assert vmm_ipv4_address(network, index, **kwargs) == address


@pytest.mark.parametrize('network, index, kwargs, message', [
    ('192.0.2.0/24', 254, {}, r'exhausted at index 254: it has 254 addresses \(192.0.2.1 - 192.0.2.254\) after 0 reserved'),
    ('192.0.2.0/24', 253, dict(reserved=1), r'exhausted at index 253: it has 253 addresses \(192.0.2.2 - 192.0.2.254\) after 1 reserved'),
    ('192.0.2.0/24', 0, dict(reserved=254), 'exhausted at index 0: all 254 usable addresses are reserved'),
    ('192.0.2.0/24', 1, dict(reserved=253), r'exhausted at index 1: it has 1 addresses \(192.0.2.254 - 192.0.2.254\) after 253 reserved'),
    ('198.51.100.0/31', 2, {}, r'it has 2 addresses \(198.51.100.0 - 198.51.100.1\) after 0 reserved'),
    ('192.0.2.0/24', -1, {}, 'the index must not be negative, got -1'),
    ('192.0.2.0/24', 0, dict(reserved=-1), 'reserved must not be negative, got -1'),
    ('192.0.2.0/24', True, {}, 'the index must be a whole number, got True'),
    ('192.0.2.0/24', '1.5', {}, "the index must be a whole number, got '1.5'"),
    ('192.0.2.0/24\n', 0, {}, 'blanks and line breaks are not allowed'),
    ('2001:db8::/64', 0, {}, 'is not an IPv4 network'),
])
def test_ipv4_pool_refusals(network, index, kwargs, message):
    with pytest.raises(AnsibleFilterError, match='vmm_ipv4_address: .*' + message):
        vmm_ipv4_address(network, index, **kwargs)


# -- vmm_ipv6_subnet: /64 by default, exact edges ------------------------------------------------

@pytest.mark.parametrize('prefix, index, kwargs, subnet', [
    ('2001:db8::/48', 0, {}, '2001:db8::/64'),
    ('2001:db8::/48', 65535, {}, '2001:db8:0:ffff::/64'),
    ('2001:db8:0:1::/64', 0, {}, '2001:db8:0:1::/64'),
    ('2001:db8::/120', 255, dict(prefixlen=128), '2001:db8::ff/128'),
    ('2001:db8::/56', 3, dict(prefixlen=60), '2001:db8:0:30::/60'),
])
def test_ipv6_subnet_positions(prefix, index, kwargs, subnet):
    assert vmm_ipv6_subnet(prefix, index, **kwargs) == subnet


@pytest.mark.parametrize('prefix, index, kwargs, message', [
    ('2001:db8::/48', 65536, {}, r'2001:db8::/48 has 65536 /64 subnets \(index 0 to 65535\), not index 65536'),
    ('2001:db8::/64', 1, {}, r'2001:db8::/64 has 1 /64 subnets \(index 0 to 0\), not index 1'),
    ('2001:db8::/64', 0, dict(prefixlen=63), 'cannot cut /63 subnets out of 2001:db8::/64'),
    ('2001:db8::/64', 0, dict(prefixlen=129), 'cannot cut /129 subnets out of 2001:db8::/64'),
    ('192.0.2.0/24', 0, {}, '192.0.2.0/24 is not an IPv6 network'),
])
def test_ipv6_subnet_refusals(prefix, index, kwargs, message):
    with pytest.raises(AnsibleFilterError, match='vmm_ipv6_subnet: ' + message):
        vmm_ipv6_subnet(prefix, index, **kwargs)


@pytest.mark.parametrize('name', ['', None, 5])
def test_a_mac_needs_a_vm_name(name):
    with pytest.raises(AnsibleFilterError, match=r'vmm_lladdr: a VM name \(non-empty string\) is needed to derive a lladdr, got %r' % (name,)):
        vmm_lladdr(name)


def test_netaddr_missing_is_named(monkeypatch):
    monkeypatch.setattr(fleet_net, 'netaddr', None)
    with pytest.raises(fleet_net.FleetNetError, match=r'^the Python library netaddr is required on the controller \(pip install netaddr\)$'):
        fleet_net.ipv4_address('192.0.2.0/24', 0, reserved=0)
    with pytest.raises(AnsibleFilterError, match=r'^vmm_ipv6_subnet: the Python library netaddr is required'):
        vmm_ipv6_subnet('2001:db8::/48', 0)
