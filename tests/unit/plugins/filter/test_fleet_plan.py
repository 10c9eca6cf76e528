# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet_plan: placement, capacity, addresses, the state file; the filters vmm_provision_plan and vmm_fleet_state."""

from __future__ import annotations

import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openbsd.vmm.plugins.filter.vmm_fleet_state import FilterModule as StateFilters
from ansible_collections.openbsd.vmm.plugins.filter.vmm_provision_plan import FilterModule as PlanFilters
from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_net import FleetNetError, derive_lladdr
from ansible_collections.openbsd.vmm.plugins.plugin_utils import fleet_plan as fleet_plan_module
from ansible_collections.openbsd.vmm.plugins.plugin_utils.fleet_plan import (
    FleetPlanError, default_state_path, fleet_plan, fleet_state, read_state,
)

vmm_provision_plan = PlanFilters().filters()['vmm_provision_plan']
vmm_fleet_state = StateFilters().filters()['vmm_fleet_state']
NOW = '2026-11-30T12:00:00Z'
LATER = '2026-12-01T08:00:00Z'


def hosts_of(plan):
    return {name: [g['name'] for g in host['vmm_guests']] for name, host in plan['hosts'].items()}


# -- placement -------------------------------------------------------------------------------

def three_hosts():
    return {
        'vmm1': {'vmm_host_memory': '8G', 'vmm_guests': [{'name': 'fixed1', 'memory': '4G'}]},
        'vmm2': {'vmm_host_memory': '8G'},
        'vmm3': {'vmm_host_memory': '4G'},
    }


def test_unplaced_guests_go_by_name_to_the_host_with_most_free_memory():
    guests = [{'name': 'c1', 'memory': '1G'}, {'name': 'a1', 'memory': '3G'}, {'name': 'b1', 'memory': '2G'}]
    plan = fleet_plan(three_hosts(), guests, now=NOW)
    # a1 first: vmm2 has 8G free (vmm1 4G, vmm3 4G); b1: vmm1 and vmm3 have 4G, vmm2 5G -> vmm2;
    # c1: vmm1 4G, vmm2 3G, vmm3 4G -> tie between vmm1 and vmm3; vmm3 has fewer guests
    assert hosts_of(plan) == {'vmm1': ['fixed1'], 'vmm2': ['a1', 'b1'], 'vmm3': ['c1']}
    assert plan['guests']['a1']['host'] == 'vmm2' and plan['guests']['a1']['placed'] == NOW


def test_tie_on_memory_and_guests_goes_to_the_first_host_name():
    plan = fleet_plan({'b': {}, 'a': {}}, [{'name': 'x'}], now=NOW)
    assert hosts_of(plan) == {'b': [], 'a': ['x']}


def test_placement_is_deterministic_whatever_the_order_given():
    guests = [{'name': 'g%d' % i, 'memory': '%dM' % (256 * (i % 3 + 1))} for i in range(9)]
    first = fleet_plan(three_hosts(), guests, now=NOW)
    second = fleet_plan(three_hosts(), list(reversed(guests)), now=NOW)
    assert hosts_of(first) == hosts_of(second)


def test_placements_are_kept_when_a_host_is_added_and_a_new_guest_goes_to_the_new_one():
    guests = [{'name': 'a1', 'memory': '1G'}, {'name': 'b1', 'memory': '1G'}]
    hosts = {'vmm1': {'vmm_host_memory': '4G'}, 'vmm2': {'vmm_host_memory': '4G'}}
    first = fleet_plan(hosts, guests, now=NOW)
    assert hosts_of(first) == {'vmm1': ['a1'], 'vmm2': ['b1']}
    state = json.loads(json.dumps(first['state']))   # as written and read back
    hosts['vmm0'] = {'vmm_host_memory': '16G'}          # sorts first and has the most room
    second = fleet_plan(hosts, guests + [{'name': 'c1', 'memory': '1G'}], state=state, now=LATER)
    assert hosts_of(second) == {'vmm1': ['a1'], 'vmm2': ['b1'], 'vmm0': ['c1']}
    assert second['guests']['a1']['placed'] == NOW and second['guests']['c1']['placed'] == LATER


def test_the_fleet_file_host_wins_over_the_state_file():
    state = {'version': 1, 'guests': {'web1': {'host': 'vmm2', 'placed': NOW}}}
    plan = fleet_plan({'vmm1': {'vmm_guests': [{'name': 'web1'}]}, 'vmm2': {}}, state=state, now=LATER)
    assert hosts_of(plan) == {'vmm1': ['web1'], 'vmm2': []}
    assert plan['guests']['web1']['placed'] == LATER
    assert plan['state']['guests'] == {'web1': {'host': 'vmm1', 'placed': LATER}}


def test_state_of_a_gone_guest_or_host_is_ignored():
    state = {'version': 1, 'guests': {'gone': {'host': 'vmm1', 'placed': NOW}, 'x': {'host': 'oldhost', 'placed': NOW}}}
    plan = fleet_plan({'vmm1': {}}, [{'name': 'x'}], state=state, now=LATER)
    assert hosts_of(plan) == {'vmm1': ['x']}
    assert plan['state']['guests'] == {'x': {'host': 'vmm1', 'placed': LATER}}


def test_no_room_names_every_host_and_what_it_lacks():
    hosts = {
        'vmm1': {'vmm_host_memory': '4G', 'vmm_guests': [{'name': 'a', 'memory': '2G'}]},
        'vmm2': {'vmm_host_tap_count': 2, 'vmm_guests': [{'name': 'b'}, {'name': 'c'}]},
        'vmm3': {'vmm_host_max_vms': 1, 'vmm_host_memory': '1G', 'vmm_guests': [{'name': 'd', 'memory': '512M'}]},
    }
    with pytest.raises(FleetPlanError) as error:
        fleet_plan(hosts, [{'name': 'big1', 'memory': '8G'}])
    assert str(error.value) == (
        'no vmm host has room for guest big1 (memory 8G): vmm1 has 2G of memory free, '
        'vmm2 has 0 taps free (2 in use), '
        'vmm3 has 512M of memory free and room for 0 more VMs (vmm_host_max_vms 1)')


def test_no_host_at_all():
    with pytest.raises(FleetPlanError, match=r'^no vmm host has room for guest x \(memory 512M\): the fleet has no vmm hosts$'):
        fleet_plan({}, [{'name': 'x'}])


def test_guest_memory_defaults_to_the_hosts_vmm_guest_memory():
    hosts = {'vmm1': {'vmm_host_memory': '2G', 'vmm_guest_memory': '1G', 'vmm_guests': [{'name': 'a'}, {'name': 'b'}]}}
    fleet_plan(hosts)       # 2 x 1G fits exactly
    with pytest.raises(FleetPlanError, match='vmm1 has 0B of memory free'):
        fleet_plan(hosts, [{'name': 'c', 'memory': '1M'}])


def test_default_tap_count_is_the_roles_50_and_absent_guests_do_not_count():
    guests = [{'name': 'g%02d' % i} for i in range(50)]
    fleet_plan({'vmm1': {'vmm_guests': guests + [{'name': 'old', 'state': 'absent'}]}})
    with pytest.raises(FleetPlanError, match=r'vmm1 has 0 taps free \(50 in use\)'):
        fleet_plan({'vmm1': {'vmm_guests': guests}}, [{'name': 'one_more'}])


def test_a_placed_guest_may_take_the_last_free_tap():
    hosts = {'vmm1': {'vmm_host_tap_count': 2, 'vmm_guests': [{'name': 'a'}]}}
    assert hosts_of(fleet_plan(hosts, [{'name': 'b'}], now=NOW)) == {'vmm1': ['a', 'b']}
    with pytest.raises(FleetPlanError, match=r'vmm1 has 0 taps free \(2 in use\)'):
        fleet_plan(hosts, [{'name': 'b'}, {'name': 'c'}], now=NOW)


def test_a_placed_guest_may_fill_the_memory_and_the_vm_count_exactly():
    hosts = {'vmm1': {'vmm_host_memory': '2G', 'vmm_host_max_vms': 2, 'vmm_guests': [{'name': 'a', 'memory': '1G'}]}}
    assert hosts_of(fleet_plan(hosts, [{'name': 'b', 'memory': '1G'}], now=NOW)) == {'vmm1': ['a', 'b']}


def test_a_host_given_in_the_guests_list_is_not_where_it_goes():
    plan = fleet_plan({'a': None, 'b': {}}, [{'name': 'x', 'host': 'b'}], now=NOW)
    assert hosts_of(plan) == {'a': ['x'], 'b': []}
    assert plan['guests']['x']['host'] == 'a'


def test_too_many_explicit_guests_for_the_taps():
    with pytest.raises(FleetPlanError) as error:
        fleet_plan({'vmm1': {'vmm_host_tap_count': 1, 'vmm_guests': [{'name': 'a'}, {'name': 'b'}]}})
    assert str(error.value) == 'vmm host vmm1 cannot hold its guests (a, b): they need 2 taps, it has 1 (vmm_host_tap_count)'


@pytest.mark.parametrize('hosts, message', [
    ({'a': ['x']}, 'the variables of vmm host a must be a mapping'),
    ({'a': {'vmm_guests': [{'name': 5}]}}, 'vmm_guests of a: name 5 must be a string'),
    ({'a': {'vmm_guests': [{'name': 'x', 'switch': 5}]}}, 'guest x: switch must be a string'),
    ({'a': {'vmm_guests': [{'name': 'x', 'switch': 's', 'address': 5}]}}, 'guest x: address: 5 is not an IPv4 address'),
    ({'a': {'vmm_guests': [{'name': 'x', 'switch': 's', 'address': '2001:db8::5'}]}},
     "guest x: address: '2001:db8::5' is not an IPv4 address"),
    ({'a': {'vmm_guest_network': 'nonsense'}}, "'nonsense' is not an IPv4 network (address/prefix length)"),
    ({'a': {'vmm_guest_network': '2001:db8::/64'}}, '2001:db8::/64 is not an IPv4 network'),
    ({'a': {'vmm_guest_network6': '2001:db8:1::/64', 'vmm_guests': [{'name': 'x', 'switch': 's', 'address6': '2001:db8:2::5'}]}},
     "guest x: address6 2001:db8:2::5 is outside a's IPv6 network 2001:db8:1::/64"),
])
def test_bad_host_variables_and_guest_fields_exact(hosts, message):
    with pytest.raises(FleetNetError) as error:   # FleetPlanError, or fleet_net's own
        fleet_plan(hosts, now=NOW)
    assert str(error.value) == message


def test_netaddr_missing_is_named(monkeypatch):
    monkeypatch.setattr(fleet_plan_module, 'netaddr', None)
    with pytest.raises(FleetPlanError, match=r'^the Python library netaddr is required on the controller \(pip install netaddr\)$'):
        fleet_plan_module._address('192.0.2.5', 4, 'guest x: address')


def test_ipv6_only_hosts_count_from_the_first_address_after_the_subnet_router():
    hosts = {'a': {'vmm_guest_network6': '2001:db8:1::/48', 'vmm_guests': [{'name': 'x', 'switch': 's'}, {'name': 'y', 'switch': 's', 'index': 7}]}}
    guests = fleet_plan(hosts, [{'name': 'p', 'switch': 's'}], now=NOW)['guests']
    assert [guests[name]['address6'] for name in ('x', 'y', 'p')] == ['2001:db8:1::1', '2001:db8:1::8', '2001:db8:1::3']
    assert 'address' not in guests['x'] and 'address' not in guests['p']


def test_the_last_address_of_the_ipv6_network_is_inside_it():
    last = '2001:db8:1:0:ffff:ffff:ffff:ffff'
    hosts = {'a': {'vmm_guest_network6': '2001:db8:1::/64', 'vmm_guests': [{'name': 'x', 'switch': 's', 'address6': last}]}}
    assert fleet_plan(hosts, now=NOW)['guests']['x']['address6'] == last


def test_two_local_guests_of_a_host_cannot_share_an_address():
    hosts = {'a': {'vmm_guests': [{'name': 'x', 'address': '100.64.1.3'}, {'name': 'y', 'address': '100.64.1.3'}]}}
    with pytest.raises(FleetPlanError, match=r'^address collision in the fleet: x and y both have 100.64.1.3$'):
        fleet_plan(hosts, now=NOW)


def test_a_local_guest_with_an_empty_address_has_none():
    guest = fleet_plan({'a': {'vmm_guests': [{'name': 'x', 'address': ''}]}}, now=NOW)['guests']['x']
    assert 'address' not in guest


def test_a_kept_recorded_address_gives_the_ipv6_address_at_the_same_offset():
    state = {'version': 1, 'guests': {'p1': {'host': 'vmm1', 'address': '192.0.2.7', 'placed': NOW}}}
    hosts = {'vmm1': dict(POOL, vmm_guest_network6='2001:db8:1::/64')}
    guest = fleet_plan(hosts, [{'name': 'p1', 'switch': 's'}], state=state, now=NOW)['guests']['p1']
    assert (guest['address'], guest['address6']) == ('192.0.2.7', '2001:db8:1::7')


@pytest.mark.parametrize('reserved', [{}, {'vmm_guest_network_reserved': None}])
def test_no_reserved_addresses_by_default(reserved):
    hosts = {'a': dict(reserved, vmm_guest_network='192.0.2.0/24', vmm_guests=[{'name': 'x', 'switch': 's'}])}
    assert fleet_plan(hosts, now=NOW)['guests']['x']['address'] == '192.0.2.1'


@pytest.mark.parametrize('hosts, message', [
    ({'a': {'vmm_guest_network': '192.0.2.0/24', 'vmm_guests': [{'name': 'x', 'switch': 's', 'address': '192.0.3.0'}]}},
     "guest x: address 192.0.3.0 is outside a's pool 192.0.2.0/24"),
    ({'a': {'vmm_guest_network6': '2001:db8:1::/64', 'vmm_guests': [{'name': 'x', 'switch': 's', 'address6': '2001:db8:1:1::'}]}},
     "guest x: address6 2001:db8:1:1:: is outside a's IPv6 network 2001:db8:1::/64"),
])
def test_one_past_the_last_address_is_outside(hosts, message):
    with pytest.raises(FleetPlanError) as error:
        fleet_plan(hosts, now=NOW)
    assert str(error.value) == message


def test_leases_are_for_switch_guests_with_an_address_not_absent():
    guests = [{'name': 'a', 'switch': 's', 'address': '192.0.2.2', 'lladdr': 'fe:e1:ba:d0:00:01'},
              {'name': 'b', 'switch': 's', 'address': '192.0.2.3', 'lladdr': 'fe:e1:ba:d0:00:02', 'state': 'absent'},
              {'name': 'c', 'switch': 's', 'address': '192.0.2.4', 'lladdr': 'fe:e1:ba:d0:00:03', 'state': 'stopped'},
              {'name': 'd', 'address': '100.64.1.3', 'lladdr': 'fe:e1:ba:d0:00:04'}]
    assert fleet_plan_module.guest_leases(guests) == [
        {'name': 'a', 'mac': 'fe:e1:ba:d0:00:01', 'address': '192.0.2.2'},
        {'name': 'c', 'mac': 'fe:e1:ba:d0:00:03', 'address': '192.0.2.4'}]


def test_a_kept_recorded_address_is_not_handed_out_again():
    state = {'version': 1, 'guests': {'p1': {'host': 'vmm1', 'address': '192.0.2.2', 'placed': NOW}}}
    plan = fleet_plan({'vmm1': dict(POOL)}, [{'name': 'p1', 'switch': 's'}, {'name': 'p2', 'switch': 's'}], state=state, now=NOW)
    assert (plan['guests']['p1']['address'], plan['guests']['p2']['address']) == ('192.0.2.2', '192.0.2.3')


def test_vmm_hosts_must_be_a_mapping():
    with pytest.raises(FleetPlanError, match=r'^vmm_hosts must be a mapping of vmm host names to their variables$'):
        fleet_plan(['vmm1'])


def test_an_overfull_host_with_only_explicit_guests_is_refused():
    hosts = {'vmm1': {'vmm_host_memory': '1G', 'vmm_host_max_vms': 1,
                      'vmm_guests': [{'name': 'a', 'memory': '1G'}, {'name': 'b', 'memory': '512M', 'state': 'stopped'}]}}
    with pytest.raises(FleetPlanError) as error:
        fleet_plan(hosts)
    assert str(error.value) == ('vmm host vmm1 cannot hold its guests (a, b): they need 1536M of memory, it has 1G '
                                '(vmm_host_memory) and they are 2 VMs, it may run 1 (vmm_host_max_vms)')


def test_a_recorded_placement_that_no_longer_fits_is_refused_not_moved():
    state = {'version': 1, 'guests': {'x': {'host': 'vmm1', 'placed': NOW}}}
    hosts = {'vmm1': {'vmm_host_memory': '1G', 'vmm_guests': [{'name': 'a', 'memory': '1G'}]}, 'vmm2': {}}
    with pytest.raises(FleetPlanError, match=r'^vmm host vmm1 cannot hold its guests \(a, x\): they need 1536M'):
        fleet_plan(hosts, [{'name': 'x'}], state=state)


@pytest.mark.parametrize('host_vars, message', [
    ({'vmm_host_memory': '16 G'}, 'vmm1: vmm_host_memory: invalid size'),
    ({'vmm_host_tap_count': '16\n'}, 'vmm1: vmm_host_tap_count must be a whole number'),
    ({'vmm_host_max_vms': True}, 'vmm1: vmm_host_max_vms must be a whole number'),
])
def test_bad_capacity_variables(host_vars, message):
    with pytest.raises(FleetPlanError, match=message):
        fleet_plan({'vmm1': host_vars}, [{'name': 'x'}])


# -- addresses ---------------------------------------------------------------------------------

POOL = {'vmm_guest_network': '192.0.2.0/24', 'vmm_guest_network_reserved': 1}


def test_switch_guests_get_pool_addresses_and_local_guests_none():
    hosts = {'vmm1': dict(POOL, vmm_guest_network6='2001:db8:1::/48', vmm_guests=[
        {'name': 'web1', 'switch': 'uplink'}, {'name': 'loc1'}, {'name': 'db1', 'switch': 'uplink', 'index': 7}])}
    guests = fleet_plan(hosts, now=NOW)['guests']
    assert (guests['web1']['address'], guests['web1']['address6']) == ('192.0.2.2', '2001:db8:1::2')
    assert (guests['db1']['address'], guests['db1']['address6']) == ('192.0.2.9', '2001:db8:1::9')
    assert 'address' not in guests['loc1'] and 'address6' not in guests['loc1']


def test_local_guest_address_is_the_observed_one_on_its_host():
    state = {'version': 1, 'guests': {'loc1': {'host': 'vmm1', 'address': '100.64.1.3', 'placed': NOW},
                                      'loc2': {'host': 'vmm1', 'address': '100.64.1.3', 'placed': NOW}}}
    hosts = {'vmm1': dict(POOL, vmm_guests=[{'name': 'loc1'}]), 'vmm2': {'vmm_guests': [{'name': 'loc2'}]}}
    guests = fleet_plan(hosts, state=state)['guests']
    assert guests['loc1']['address'] == '100.64.1.3'
    assert 'address' not in guests['loc2'], 'observed on vmm1, the guest is on vmm2 now'


def test_local_addresses_are_per_host():
    state = {'version': 1, 'guests': {'a': {'host': 'vmm1', 'address': '100.64.1.3'},
                                      'b': {'host': 'vmm2', 'address': '100.64.1.3'}}}
    plan = fleet_plan({'vmm1': {'vmm_guests': [{'name': 'a'}]}, 'vmm2': {'vmm_guests': [{'name': 'b'}]}}, state=state)
    assert plan['guests']['a']['address'] == plan['guests']['b']['address'] == '100.64.1.3'


def test_placed_guest_keeps_its_recorded_address_while_it_is_free():
    state = {'version': 1, 'guests': {'p1': {'host': 'vmm1', 'address': '192.0.2.7', 'placed': NOW}}}
    hosts = {'vmm1': dict(POOL, vmm_guests=[{'name': 'web1', 'switch': 's'}])}
    guests = [{'name': 'p1', 'switch': 's'}, {'name': 'p2', 'switch': 's'}]
    plan = fleet_plan(hosts, guests, state=state)
    assert [(g['name'], g['address']) for g in plan['hosts']['vmm1']['vmm_guests']] == [
        ('web1', '192.0.2.2'), ('p1', '192.0.2.7'), ('p2', '192.0.2.3')]
    # an explicit guest now takes 192.0.2.7: p1 gets the first free address
    hosts['vmm1']['vmm_guests'].append({'name': 'web2', 'switch': 's', 'address': '192.0.2.7'})
    plan = fleet_plan(hosts, guests, state=state)
    assert [(g['name'], g['address']) for g in plan['hosts']['vmm1']['vmm_guests']] == [
        ('web1', '192.0.2.2'), ('web2', '192.0.2.7'), ('p1', '192.0.2.3'), ('p2', '192.0.2.4')]


def test_a_placed_guest_without_a_recorded_address_gets_the_first_of_the_pool():
    plan = fleet_plan({'vmm1': dict(POOL)}, [{'name': 'p1', 'switch': 's'}], now=NOW)
    assert plan['guests']['p1']['address'] == '192.0.2.2'


@pytest.mark.parametrize('recorded', ['192.0.2.255', '192.0.2.1', '192.0.2.0', '198.51.100.7'])
def test_a_recorded_address_the_pool_does_not_hand_out_is_replaced(recorded):
    state = {'version': 1, 'guests': {'p1': {'host': 'vmm1', 'address': recorded, 'placed': NOW}}}
    plan = fleet_plan({'vmm1': dict(POOL)}, [{'name': 'p1', 'switch': 's'}], state=state)
    assert plan['guests']['p1']['address'] == '192.0.2.2'


def test_a_planned_guest_is_its_entry_plus_host_lladdr_placed_and_address_only():
    hosts = {'vmm1': dict(POOL, vmm_guests=[{'name': 'web1', 'switch': 's', 'lladdr': 'fe:e1:ba:d0:00:01'}])}
    plan = fleet_plan(hosts, [{'name': 'p1', 'switch': 's', 'lladdr': 'fe:e1:ba:d0:00:02', 'memory': '1G'}], now=NOW)
    assert plan['guests'] == {
        'web1': {'name': 'web1', 'switch': 's', 'lladdr': 'fe:e1:ba:d0:00:01', 'host': 'vmm1', 'placed': NOW,
                 'address': '192.0.2.2'},
        'p1': {'name': 'p1', 'switch': 's', 'lladdr': 'fe:e1:ba:d0:00:02', 'memory': '1G', 'host': 'vmm1', 'placed': NOW,
               'address': '192.0.2.3'},
    }


def test_a_32_pool_hands_out_its_one_address():
    hosts = {'a': {'vmm_guest_network': '192.0.2.7/32', 'vmm_guests': [{'name': 'x', 'switch': 's'}]}}
    assert fleet_plan(hosts, now=NOW)['guests']['x']['address'] == '192.0.2.7'


def test_a_31_pool_has_no_network_or_broadcast_address():
    # RFC 3021: both addresses of a /31 are hosts
    hosts = {'a': {'vmm_guest_network': '192.0.2.0/31', 'vmm_guest_network6': '2001:db8::/64', 'vmm_guests': [
        {'name': 'x', 'switch': 's', 'address': '192.0.2.0'}, {'name': 'y', 'switch': 's', 'address': '192.0.2.1'}]}}
    guests = fleet_plan(hosts, now=NOW)['guests']
    assert [(guests[n]['address'], guests[n]['address6']) for n in ('x', 'y')] == [
        ('192.0.2.0', '2001:db8::1'), ('192.0.2.1', '2001:db8::2')]


@pytest.mark.parametrize('hosts, message', [
    ({'a': dict(POOL, vmm_guests=[{'name': 'x', 'switch': 's'}, {'name': 'y', 'switch': 's', 'address': '192.0.2.2'}])},
     'address collision in the fleet: x and y both have 192.0.2.2'),
    ({'a': {'vmm_guests': [{'name': 'x', 'switch': 's', 'address': '198.51.100.7'}]},
      'b': {'vmm_guests': [{'name': 'y', 'switch': 't', 'address': '198.51.100.7'}]}},
     'address collision in the fleet: x and y both have 198.51.100.7'),
    ({'a': dict(POOL, vmm_guest_network6='2001:db8::/64', vmm_guests=[
        {'name': 'x', 'switch': 's'}, {'name': 'y', 'switch': 's', 'address6': '2001:db8::2'}])},
     'address collision in the fleet: x and y both have 2001:db8::2'),
    ({'a': dict(POOL, vmm_guests=[{'name': 'x', 'switch': 's', 'address': '198.51.100.7'}])},
     r"guest x: address 198.51.100.7 is outside a's pool 192.0.2.0/24"),
    ({'a': dict(POOL, vmm_guests=[{'name': 'x', 'switch': 's', 'address': '192.0.2.0'}])},
     r"guest x: address 192.0.2.0 is the network address of a's pool 192.0.2.0/24"),
    ({'a': dict(POOL, vmm_guests=[{'name': 'x', 'switch': 's', 'address': '192.0.2.255'}])},
     r"guest x: address 192.0.2.255 is the broadcast address of a's pool 192.0.2.0/24"),
    ({'a': dict(POOL, vmm_guests=[{'name': 'x', 'switch': 's', 'address': '192.0.2.1'}])},
     r"guest x: address 192.0.2.1 is in the reserved part of a's pool 192.0.2.0/24 \(vmm_guest_network_reserved: 1\)"),
    ({'a': dict(POOL, vmm_guest_network6='2001:db8::/64', vmm_guests=[{'name': 'x', 'switch': 's', 'address6': '2001:db8::1'}])},
     r"guest x: address6 2001:db8::1 is in the reserved part of a's IPv6 network 2001:db8::/64"),
    ({'a': dict(POOL, vmm_guests=[{'name': 'x', 'switch': 's', 'address': '192.0.2.5\n'}])},
     r"guest x: address: '192.0.2.5\\n' is not an IPv4 address"),
    ({'a': dict(POOL, vmm_guest_network6='2001:db8::/96', vmm_guests=[{'name': 'x', 'switch': 's'}])},
     r'a: vmm_guest_network6: cannot cut /64 subnets out of 2001:db8::/96'),
    ({'a': {'vmm_guest_network': '192.0.2.0/30', 'vmm_guests': [
        {'name': 'x', 'switch': 's'}, {'name': 'y', 'switch': 's'}, {'name': 'z', 'switch': 's'}]}},
     'pool of 192.0.2.0/30 is exhausted at index 2'),
])
def test_address_problems_are_refused_naming_guests_and_address(hosts, message):
    with pytest.raises(FleetNetError, match=message):  # FleetPlanError, or fleet_net's own
        fleet_plan(hosts)


def test_a_placed_guest_gets_no_address_from_a_full_pool():
    hosts = {'a': {'vmm_guest_network': '192.0.2.0/30', 'vmm_guests': [{'name': 'x', 'switch': 's'}, {'name': 'y', 'switch': 's'}]}}
    with pytest.raises(FleetPlanError, match=r'^guest z on a gets no address: the IPv4 pool of 192.0.2.0/30 is exhausted'):
        fleet_plan(hosts, [{'name': 'z', 'switch': 's'}])


@pytest.mark.parametrize('hosts, guests, message', [
    ({'a': {'vmm_guests': [{'name': 'x'}]}}, [{'name': 'x'}], 'guest x is listed twice: on a and in guests'),
    ({'a': {}}, [{'name': 'a'}], 'guest a has the name of a vmm host'),
    ({'a': {}}, [{'memory': '1G'}], 'guests must be a list of mappings, each with a name'),
    ({'a': {'vmm_guests': [{'name': 'x', 'vars': ['no']}]}}, [], 'guest x: vars must be a mapping'),
])
def test_bad_guest_lists(hosts, guests, message):
    with pytest.raises(FleetPlanError, match=message):
        fleet_plan(hosts, guests)


# -- state file ------------------------------------------------------------------------------

def test_state_path_default():
    assert default_state_path('/srv/fleet.vmm.yml') == '/srv/fleet.vmm.state.json'
    assert default_state_path('/srv/lab-fleet.vmm.yaml') == '/srv/lab-fleet.vmm.state.json'
    with pytest.raises(FleetPlanError, match='does not end in vmm.yml'):
        default_state_path('/srv/fleet.yml')
    with pytest.raises(FleetPlanError, match=r'^/srv/fleet.vmm.yml.bak does not end in vmm.yml or vmm.yaml; set state_file$'):
        default_state_path('/srv/fleet.vmm.yml.bak')


def test_a_state_file_that_cannot_be_read_is_named(tmp_path):
    with pytest.raises(FleetPlanError, match=r'^state file %s cannot be read: \[Errno 21\] Is a directory' % tmp_path):
        read_state(str(tmp_path))


def test_fleet_state_takes_a_plan_or_its_guests_by_name():
    guest = {'name': 'x', 'host': 'a', 'placed': NOW}
    expected = {'version': 1, 'guests': {'x': {'host': 'a', 'placed': NOW}}}
    assert fleet_state({'guests': {'x': guest}}) == expected
    assert fleet_state({'x': guest}) == expected


def test_missing_state_file_is_empty(tmp_path):
    assert read_state(str(tmp_path / 'none.json')) == {'version': 1, 'guests': {}}


@pytest.mark.parametrize('text, message', [
    ('{"version": 1, "guests": {', 'is not JSON'),
    ('{"version": 2, "guests": {}}', 'must be {"version": 1'),
    ('{"version": 1, "guests": {"x": {"address": "1.2.3.4"}}}', 'guests.x needs a host'),
    ('{"version": 1, "guests": {"x": {"host": "a", "placed": "yesterday"}}}', 'guests.x.placed must be a UTC time'),
    ('{"version": 1, "guests": {"x": {"host": "a", "address": 5}}}', ': guests.x.address must be a string'),
    ('{"version": 1, "guests": {"x": {"host": "a", "placed": "2026-11-30T12:00:00Z+"}}}', 'guests.x.placed must be a UTC time'),
    ('{"version": 1, "guests": {"x": {"host": "a", "placed": "+2026-11-30T12:00:00Z"}}}', 'guests.x.placed must be a UTC time'),
])
def test_bad_state_file_names_the_file(tmp_path, text, message):
    path = tmp_path / 'fleet.vmm.state.json'
    path.write_text(text)
    with pytest.raises(FleetPlanError) as error:
        read_state(str(path))
    assert str(path) in str(error.value) and message in str(error.value)


def test_fleet_state_filter_takes_observed_addresses_of_local_guests_only():
    hosts = {'vmm1': dict(POOL, vmm_guests=[{'name': 'web1', 'switch': 's'}, {'name': 'loc1'}, {'name': 'gone', 'state': 'absent'}])}
    plan = fleet_plan(hosts, now=NOW)
    guests = plan['hosts']['vmm1']['vmm_guests']
    state = vmm_fleet_state(guests, observed={'loc1': '100.64.1.3', 'web1': '100.64.9.9'})
    assert state == {'version': 1, 'guests': {
        'gone': {'host': 'vmm1', 'placed': NOW},
        'loc1': {'host': 'vmm1', 'address': '100.64.1.3', 'placed': NOW},
        'web1': {'host': 'vmm1', 'address': '192.0.2.2', 'placed': NOW},
    }}
    # read back by the next plan: loc1's address is known
    again = fleet_plan(hosts, state=json.loads(json.dumps(state)), now=LATER)
    assert again['guests']['loc1']['address'] == '100.64.1.3' and again['guests']['loc1']['placed'] == NOW


@pytest.mark.parametrize('guests, observed, message', [
    ([{'name': 'x'}], None, 'every planned guest needs a name and a host'),
    ([{'name': 'x', 'host': 'a'}], {'x': 'nope'}, "observed address of x: 'nope' is not an IPv4 address"),
    ([{'name': 'x', 'host': 'a'}], ['x'], 'observed must be a mapping'),
])
def test_fleet_state_filter_refuses_bad_input(guests, observed, message):
    with pytest.raises(AnsibleFilterError, match=message):
        vmm_fleet_state(guests, observed=observed)


# -- vmm_provision_plan ------------------------------------------------------------------------

def test_provision_plan_exact():
    guests = [
        {'name': 'web1', 'switch': 'uplink', 'memory': '1G', 'owner': 'alice', 'lladdr': 'fe:e1:ba:d0:00:01',
         'address': '192.0.2.2', 'host': 'vmm1'},
        {'name': 'loc1', 'lladdr': 'fe:e1:ba:d0:00:02', 'image': '/srv/other.qcow2', 'state': 'stopped'},
        {'name': 'old1', 'state': 'absent'},
        {'name': 'sw2', 'switch': 'uplink', 'lladdr': 'fe:e1:ba:d0:00:03'},
    ]
    assert vmm_provision_plan(guests, disk_dir='/var/vmm/', memory='256M') == {
        'vms': [
            {'name': 'web1', 'memory': '1G', 'state': 'running', 'disks': ['/var/vmm/web1.qcow2'],
             'interfaces': [{'switch': 'uplink', 'lladdr': 'fe:e1:ba:d0:00:01'}], 'owner': 'alice'},
            {'name': 'loc1', 'memory': '256M', 'state': 'stopped', 'disks': ['/var/vmm/loc1.qcow2'],
             'interfaces': [{'local': True, 'lladdr': 'fe:e1:ba:d0:00:02'}]},
            {'name': 'old1', 'state': 'absent'},
            {'name': 'sw2', 'memory': '256M', 'state': 'running', 'disks': ['/var/vmm/sw2.qcow2'],
             'interfaces': [{'switch': 'uplink', 'lladdr': 'fe:e1:ba:d0:00:03'}]},
        ],
        'disks': [
            {'path': '/var/vmm/web1.qcow2', 'base': '/var/vmm/golden.qcow2'},
            {'path': '/var/vmm/loc1.qcow2', 'base': '/srv/other.qcow2'},
            {'path': '/var/vmm/old1.qcow2', 'state': 'absent', 'archive_dir': '/var/vmm/archive'},
            {'path': '/var/vmm/sw2.qcow2', 'base': '/var/vmm/golden.qcow2'},
        ],
        'leases': [{'name': 'web1', 'mac': 'fe:e1:ba:d0:00:01', 'address': '192.0.2.2'}],
    }


def test_provision_plan_defaults_and_the_inventorys_guests():
    plan = fleet_plan({'vmm1': dict(POOL, vmm_guests=[{'name': 'web1', 'switch': 'uplink'}])}, now=NOW)
    result = vmm_provision_plan(plan['hosts']['vmm1']['vmm_guests'], image='/srv/golden.qcow2')
    lladdr = derive_lladdr('web1')
    assert result == {
        'vms': [{'name': 'web1', 'memory': '512M', 'state': 'running', 'disks': ['/var/vmm/web1.qcow2'],
                 'interfaces': [{'switch': 'uplink', 'lladdr': lladdr}]}],
        'disks': [{'path': '/var/vmm/web1.qcow2', 'base': '/srv/golden.qcow2'}],
        'leases': [{'name': 'web1', 'mac': lladdr, 'address': '192.0.2.2'}],
    }
    assert vmm_provision_plan([]) == {'vms': [], 'disks': [], 'leases': []}


def test_provision_plan_defaults_archive_and_lladdrs_by_name():
    plan = fleet_plan_module.provision_plan([{'name': 'old', 'state': 'absent'}, {'name': 'web1'}],
                                            lladdrs={'web1': 'fe:e1:ba:d0:00:09'})
    assert plan['disks'][0] == {'path': '/var/vmm/old.qcow2', 'state': 'absent', 'archive_dir': '/var/vmm/archive'}
    assert plan['vms'][1]['interfaces'] == [{'local': True, 'lladdr': 'fe:e1:ba:d0:00:09'}]


@pytest.mark.parametrize('guests, kwargs, message', [
    ([{'name': 'web1'}], {}, 'guest web1 has no lladdr'),
    ([{'name': 'a', 'lladdr': 'fe:e1:ba:d0:00:01'}, {'name': 'a', 'lladdr': 'fe:e1:ba:d0:00:01'}], {}, 'guest a is listed twice'),
    ([], {'disk_dir': 'var/vmm'}, 'disk_dir must be an absolute path'),
    ({'name': 'x'}, {}, r"^vmm_provision_plan: the guests must be a list \(a vmm host's vmm_guests\)$"),
])
def test_provision_plan_refuses(guests, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        vmm_provision_plan(guests, **kwargs)


# -- vmm_local_addresses -----------------------------------------------------------------------

def test_local_addresses_of_vm_records():
    from ansible_collections.openbsd.vmm.plugins.filter.vmm_local_addresses import vmm_local_addresses
    records = [
        {'name': 'web1', 'interfaces': [{'index': 0, 'local': True, 'address': None},
                                        {'index': 1, 'local': True, 'address': '100.64.3.5'}]},
        {'name': 'down', 'interfaces': []},
        {'name': 'fromvmm_vm', 'state': 'running'},
    ]
    assert vmm_local_addresses(records) == {'web1': '100.64.3.5'}
    with pytest.raises(AnsibleFilterError, match='expects a list of VM records, got dict'):
        vmm_local_addresses({'web1': {}})
    with pytest.raises(AnsibleFilterError, match='every VM record needs a name'):
        vmm_local_addresses([{'name': ''}])


def test_provision_plan_of_a_plain_inventory_with_lladdrs_and_deleted_disks():
    guests = [{'name': 'web1', 'host': 'vmm1', 'lladdr': 'FE:E1:BA:D0:00:09'}, {'name': 'old1', 'host': 'vmm1', 'state': 'absent'}]
    plan = vmm_provision_plan(guests, lladdrs={'vmm1/web1': 'fe:e1:ba:d0:00:09'}, with_host=True, archive=False)
    assert plan['vms'][0]['interfaces'] == [{'local': True, 'lladdr': 'fe:e1:ba:d0:00:09'}]
    assert plan['disks'] == [{'path': '/var/vmm/web1.qcow2', 'base': '/var/vmm/golden.qcow2'},
                             {'path': '/var/vmm/old1.qcow2', 'state': 'absent'}]
    by_name = vmm_provision_plan([{'name': 'web1'}], lladdrs={'web1': 'fe:e1:ba:d0:00:0a'})
    assert by_name['vms'][0]['interfaces'] == [{'local': True, 'lladdr': 'fe:e1:ba:d0:00:0a'}]
    with pytest.raises(AnsibleFilterError, match='lladdrs must be a mapping'):
        vmm_provision_plan([], lladdrs=['x'])
