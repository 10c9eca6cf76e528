# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import ipaddress
import re

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_ipv4_address import FilterModule as Ipv4Filters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_ipv6_subnet import FilterModule as Ipv6Filters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_lladdr import FilterModule as LladdrFilters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_lladdrs import FilterModule as FleetFilters

vmm_lladdr = LladdrFilters().filters()['vmm_lladdr']
vmm_lladdrs = FleetFilters().filters()['vmm_lladdrs']
vmm_ipv4_address = Ipv4Filters().filters()['vmm_ipv4_address']
vmm_ipv6_subnet = Ipv6Filters().filters()['vmm_ipv6_subnet']

MAC = re.compile(r'^([0-9a-f]{2}:){5}[0-9a-f]{2}$')


# -- vmm_lladdr ------------------------------------------------------------------------------

def test_lladdr_is_stable_prefixed_and_locally_administered_unicast():
    first = vmm_lladdr('web1')
    assert first == vmm_lladdr('web1')
    assert MAC.match(first)
    assert first.startswith('fe:e1:ba:d0:')
    octet = int(first[:2], 16)
    assert octet & 0x02 and not octet & 0x01


def test_lladdr_depends_on_name_and_host():
    assert vmm_lladdr('web1') != vmm_lladdr('web2')
    assert vmm_lladdr('web1', host='vmm1') != vmm_lladdr('web1', host='vmm2')
    assert vmm_lladdr('web1', host='vmm1') != vmm_lladdr('web1')


@pytest.mark.parametrize('prefix, length', [('02', 1), ('fe:e1:ba', 3), ('FE-E1-BA-D0-01', 5)])
def test_lladdr_prefix_of_any_length_fills_six_octets(prefix, length):
    lladdr = vmm_lladdr('db1', prefix=prefix)
    assert MAC.match(lladdr)
    assert lladdr.split(':')[:length] == prefix.lower().replace('-', ':').split(':')


@pytest.mark.parametrize('prefix, message', [
    ('01:00:5e', 'multicast'),
    ('00:1b:21', 'not locally administered'),
    ('fe:e1:ba:d0:00:01', '1 to 5 octets'),
    ('', '1 to 5 octets'),
    ('fe:zz', 'not hex octets'),
    ('fe:123', 'not hex octets'),
])
def test_lladdr_bad_prefix_is_refused(prefix, message):
    with pytest.raises(AnsibleFilterError, match=message):
        vmm_lladdr('web1', prefix=prefix)


@pytest.mark.parametrize('name', ['', None, 5])
def test_lladdr_needs_a_name(name):
    with pytest.raises(AnsibleFilterError, match='VM name'):
        vmm_lladdr(name)


# -- vmm_lladdrs -----------------------------------------------------------------------------

def test_fleet_lladdrs_agree_with_single_derivation_and_keep_explicit_ones():
    fleet = vmm_lladdrs(['web1', {'name': 'web2'}, {'name': 'db1', 'lladdr': 'FE:E1:BA:D0:01:03'}])
    assert fleet == {'web1': vmm_lladdr('web1'), 'web2': vmm_lladdr('web2'), 'db1': 'fe:e1:ba:d0:01:03'}


def test_fleet_lladdrs_with_host_keys_by_host_and_name():
    fleet = vmm_lladdrs([{'name': 'web1', 'host': 'vmm1'}, {'name': 'web1', 'host': 'vmm2'}], with_host=True)
    assert fleet == {'vmm1/web1': vmm_lladdr('web1', host='vmm1'), 'vmm2/web1': vmm_lladdr('web1', host='vmm2')}


def _colliding_pair():
    seen = {}
    for number in range(100000):
        name = 'vm%d' % number
        lladdr = vmm_lladdr(name)
        if lladdr in seen:
            return seen[lladdr], name, lladdr
        seen[lladdr] = name
    raise AssertionError('no collision among 100000 names with 2 derived bytes')


def test_fleet_lladdrs_report_a_derived_collision_with_both_names():
    first, second, lladdr = _colliding_pair()
    with pytest.raises(AnsibleFilterError) as failure:
        vmm_lladdrs(['web1', first, second])
    assert '%s and %s both get %s' % (first, second, lladdr) in str(failure.value)
    # an explicit lladdr for one of them resolves it
    assert vmm_lladdrs([first, {'name': second, 'lladdr': '02:00:00:00:00:01'}])[second] == '02:00:00:00:00:01'


def test_fleet_lladdrs_report_an_explicit_address_that_clashes_with_a_derived_one():
    with pytest.raises(AnsibleFilterError, match='web1 and db1 both get'):
        vmm_lladdrs(['web1', {'name': 'db1', 'lladdr': vmm_lladdr('web1')}])


def test_fleet_lladdrs_refuse_a_vm_listed_twice_and_non_lists():
    with pytest.raises(AnsibleFilterError, match='web1 appears twice'):
        vmm_lladdrs(['web1', {'name': 'web1'}])
    with pytest.raises(AnsibleFilterError, match='expects a list'):
        vmm_lladdrs('web1')
    with pytest.raises(AnsibleFilterError, match='not a MAC address'):
        vmm_lladdrs([{'name': 'web1', 'lladdr': 'fe:e1:ba:d0:01'}])


# -- vmm_ipv4_address ------------------------------------------------------------------------

@pytest.mark.parametrize('network, index, reserved, expected', [
    ('192.0.2.0/24', 0, 0, '192.0.2.1'),
    ('192.0.2.0/24', 0, 1, '192.0.2.2'),
    ('192.0.2.77/24', 9, 1, '192.0.2.11'),
    ('192.0.2.0/24', 253, 0, '192.0.2.254'),
    ('10.0.0.0/16', 300, 0, '10.0.1.45'),
    ('192.0.2.0/31', 1, 0, '192.0.2.1'),
    ('192.0.2.7/32', 0, 0, '192.0.2.7'),
])
def test_ipv4_address(network, index, reserved, expected):
    address = vmm_ipv4_address(network, index, reserved=reserved)
    assert address == expected
    net = ipaddress.ip_network(network, strict=False)
    assert ipaddress.ip_address(address) in net
    if net.prefixlen < 31:
        assert address not in (str(net.network_address), str(net.broadcast_address))


def test_ipv4_address_with_prefix_and_string_index():
    assert vmm_ipv4_address('198.51.100.0/25', '3', reserved=2, with_prefix=True) == '198.51.100.6/25'


def test_ipv4_pool_exhausted_says_how_big_it_is():
    with pytest.raises(AnsibleFilterError, match=r'pool of 192.0.2.0/24 is exhausted at index 253: .*253 addresses '
                                                 r'\(192.0.2.2 - 192.0.2.254\) after 1 reserved'):
        vmm_ipv4_address('192.0.2.0/24', 253, reserved=1)
    with pytest.raises(AnsibleFilterError, match='all 2 usable addresses are reserved'):
        vmm_ipv4_address('192.0.2.0/30', 0, reserved=2)


@pytest.mark.parametrize('network, index, message', [
    ('2001:db8::/64', 0, 'not an IPv4 network'),
    ('not-a-network', 0, 'not an IPv4 network'),
    ('192.0.2.0/24', -1, 'must not be negative'),
    ('192.0.2.0/24', 'x', 'whole number'),
])
def test_ipv4_bad_input(network, index, message):
    with pytest.raises(AnsibleFilterError, match=message):
        vmm_ipv4_address(network, index)


# -- vmm_ipv6_subnet -------------------------------------------------------------------------

@pytest.mark.parametrize('prefix, index, prefixlen, expected', [
    ('2001:db8::/48', 0, 64, '2001:db8::/64'),
    ('2001:db8::/48', 3, 64, '2001:db8:0:3::/64'),
    ('2001:db8:1:2::1/56', 255, 64, '2001:db8:1:ff::/64'),
    ('2001:db8::/48', 1, 56, '2001:db8:0:100::/56'),
    ('2001:db8::/64', 0, 64, '2001:db8::/64'),
])
def test_ipv6_subnet(prefix, index, prefixlen, expected):
    subnet = vmm_ipv6_subnet(prefix, index, prefixlen=prefixlen)
    assert subnet == expected
    assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(prefix, strict=False))


def test_ipv6_subnets_exhausted_and_bad_lengths():
    with pytest.raises(AnsibleFilterError, match=r'2001:db8::/48 has 65536 /64 subnets \(index 0 to 65535\), not index 65536'):
        vmm_ipv6_subnet('2001:db8::/48', 65536)
    with pytest.raises(AnsibleFilterError, match='cannot cut /48 subnets out of 2001:db8::/56'):
        vmm_ipv6_subnet('2001:db8::/56', 0, prefixlen=48)
    with pytest.raises(AnsibleFilterError, match='not an IPv6 network'):
        vmm_ipv6_subnet('192.0.2.0/24', 0)


# -- strict input: whole-string matches (a final line break is refused, never stripped) ------------

@pytest.mark.parametrize('name', ['web1\n', 'web1 ', 'we b1', 'web/1', '-web1'])
def test_lladdr_refuses_a_name_vmd_would_refuse(name):
    with pytest.raises(AnsibleFilterError, match=re.escape('VM name %r: ' % name)):
        vmm_lladdr(name)


@pytest.mark.parametrize('prefix', ['fe:e1:ba:d0\n', 'fe:e1:ba:\n0', ' fe:e1'])
def test_lladdr_prefix_with_a_line_break_or_blank_is_refused(prefix):
    with pytest.raises(AnsibleFilterError, match='not hex octets|1 to 5 octets'):
        vmm_lladdr('web1', prefix=prefix)


@pytest.mark.parametrize('lladdr, message', [
    ('fe:e1:ba:d0:00:01\n', 'is not a MAC address'),
    (' fe:e1:ba:d0:00:01', 'is not a MAC address'),
    ('fe:e1:ba:d0:00:01:02', 'is not a MAC address'),
    ('01:00:5e:00:00:01', 'is a multicast address'),
    ('ff:ff:ff:ff:ff:ff', 'is a multicast address'),
    ('33:33:00:00:00:01', 'is a multicast address'),
])
def test_fleet_lladdrs_refuse_bad_explicit_lladdrs(lladdr, message):
    with pytest.raises(AnsibleFilterError, match=message):
        vmm_lladdrs([{'name': 'web1', 'lladdr': lladdr}])


@pytest.mark.parametrize('network', ['192.0.2.0/24\n', '192.0.2.0/24 '])
def test_ipv4_network_with_a_line_break_is_refused(network):
    with pytest.raises(AnsibleFilterError, match='blanks and line breaks are not allowed'):
        vmm_ipv4_address(network, 0)


def test_ipv6_prefix_with_a_line_break_is_refused():
    with pytest.raises(AnsibleFilterError, match='blanks and line breaks are not allowed'):
        vmm_ipv6_subnet('fd00::/48\n', 0)
