# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin with guests to place, a state file and observed addresses, end to end."""

from __future__ import annotations

import json

import pytest

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar

from ansible_collections.openbsd.vmm.plugins.filter.vmm_fleet_state import vmm_fleet_state
from ansible_collections.openbsd.vmm.plugins.filter.vmm_provision_plan import vmm_provision_plan

FLEET = """
plugin: openbsd.vmm.vmm
vmm_hosts:
  vmm1:
    vmm_host_memory: 4G
    vmm_guest_network: 192.0.2.0/24
    vmm_guest_network_reserved: 1
    vmm_guest_network6: 2001:db8:1::/56
    vmm_guests:
      - {name: web1, memory: 1G, switch: uplink}
  vmm2:
    vmm_host_memory: 2G
    vmm_guest_network: 198.51.100.0/24
guests:
  - {name: ci1, memory: 2G, switch: uplink}
  - {name: tmp1, memory: 1G}
"""


def parse(tmp_path, text, name='fleet.vmm.yml'):
    path = tmp_path / name
    path.write_text(text)
    loader = DataLoader()
    plugin = inventory_loader.get('openbsd.vmm.vmm')
    plugin.templar = Templar(loader=loader)
    inventory = InventoryData()
    plugin.parse(inventory, loader, str(path), cache=False)
    return inventory


def hostvars(inventory, name):
    return inventory.get_host(name).get_vars()


def group(inventory, name):
    return sorted(host.name for host in inventory.groups[name].get_hosts())


def test_guests_are_placed_and_appear_under_their_host(tmp_path):
    inventory = parse(tmp_path, FLEET)
    # ci1 first (by name): vmm1 has 3G free, vmm2 2G -> vmm1; tmp1: vmm1 1G free, vmm2 2G -> vmm2
    assert group(inventory, 'vmm1_guests') == ['ci1', 'web1']
    assert group(inventory, 'vmm2_guests') == ['tmp1']
    assert group(inventory, 'vmm_guests') == ['ci1', 'tmp1', 'web1']
    assert [g['name'] for g in hostvars(inventory, 'vmm1')['vmm_guests']] == ['web1', 'ci1']
    ci1 = hostvars(inventory, 'ci1')
    assert (ci1['vmm_host'], ci1['address'], ci1['ansible_host'], ci1['address6']) == (
        'vmm1', '192.0.2.3', '192.0.2.3', '2001:db8:1::3')
    assert ci1['vmm_guest']['host'] == 'vmm1' and ci1['vmm_guest']['placed']
    tmp1 = hostvars(inventory, 'tmp1')
    assert 'address' not in tmp1 and 'ansible_host' not in tmp1, 'a local interface: no address until observed'


def test_every_vmm_host_has_the_dhcp_leases_of_its_switch_guests(tmp_path):
    inventory = parse(tmp_path, FLEET)
    web1, ci1 = hostvars(inventory, 'web1'), hostvars(inventory, 'ci1')
    assert hostvars(inventory, 'vmm1')['vmm_guest_leases'] == [
        {'name': 'web1', 'mac': web1['lladdr'], 'address': '192.0.2.2'},
        {'name': 'ci1', 'mac': ci1['lladdr'], 'address': '192.0.2.3'}]
    assert hostvars(inventory, 'vmm2')['vmm_guest_leases'] == [], 'tmp1 is on a local interface: vmd answers its DHCP'


def test_every_vmm_host_names_the_guests_the_file_lists_under_it(tmp_path):
    # web1 is listed under vmm1; ci1 and tmp1 are placed (the state file could move them, the file does not)
    inventory = parse(tmp_path, FLEET)
    assert hostvars(inventory, 'vmm1')['vmm_guests_listed'] == ['web1']
    assert hostvars(inventory, 'vmm2')['vmm_guests_listed'] == []
    # a guest placed on vmm1 by the state file is not listed there, even when the file lists another under vmm1
    (tmp_path / 'fleet.vmm.state.json').write_text(json.dumps({'version': 1, 'guests': {'tmp1': {'host': 'vmm1'}}}))
    inventory = parse(tmp_path, FLEET)
    assert group(inventory, 'vmm1_guests') == ['tmp1', 'web1']
    assert hostvars(inventory, 'vmm1')['vmm_guests_listed'] == ['web1']


def test_every_vmm_host_knows_the_state_file(tmp_path):
    inventory = parse(tmp_path, FLEET)
    assert hostvars(inventory, 'vmm1')['vmm_fleet_state_file'] == str(tmp_path / 'fleet.vmm.state.json')
    assert hostvars(inventory, 'vmm2')['vmm_fleet_state_file'] == str(tmp_path / 'fleet.vmm.state.json')
    inventory = parse(tmp_path, FLEET + 'state_file: state/fleet.json\n', name='other.vmm.yaml')
    assert hostvars(inventory, 'vmm1')['vmm_fleet_state_file'] == str(tmp_path / 'state' / 'fleet.json')


def test_the_state_file_keeps_placements_and_gives_observed_addresses(tmp_path):
    inventory = parse(tmp_path, FLEET)
    guests = [g for host in ('vmm1', 'vmm2') for g in hostvars(inventory, host)['vmm_guests']]
    state = vmm_fleet_state(guests, observed={'tmp1': '100.64.1.3'})
    (tmp_path / 'fleet.vmm.state.json').write_text(json.dumps(state))
    # vmm3 has more room than any host now: nothing placed moves, the new guest goes there
    grown = FLEET.replace('  vmm2:\n', '  vmm3:\n    vmm_host_memory: 64G\n  vmm2:\n') + '  - {name: new1, memory: 1G}\n'
    inventory = parse(tmp_path, grown)
    assert group(inventory, 'vmm1_guests') == ['ci1', 'web1']
    assert group(inventory, 'vmm2_guests') == ['tmp1']
    assert group(inventory, 'vmm3_guests') == ['new1']
    tmp1 = hostvars(inventory, 'tmp1')
    assert tmp1['address'] == tmp1['ansible_host'] == '100.64.1.3'
    assert hostvars(inventory, 'ci1')['vmm_guest']['placed'] == state['guests']['ci1']['placed']


def test_the_inventorys_guests_feed_the_provision_plan(tmp_path):
    inventory = parse(tmp_path, FLEET)
    plan = vmm_provision_plan(hostvars(inventory, 'vmm2')['vmm_guests'], disk_dir='/var/vmm')
    lladdr = hostvars(inventory, 'tmp1')['lladdr']
    assert plan == {
        'vms': [{'name': 'tmp1', 'memory': '1G', 'state': 'running', 'disks': ['/var/vmm/tmp1.qcow2'],
                 'interfaces': [{'local': True, 'lladdr': lladdr}]}],
        'disks': [{'path': '/var/vmm/tmp1.qcow2', 'base': '/var/vmm/golden.qcow2'}],
        'leases': [],
    }


WEB1 = '      - {name: web1, memory: 1G, switch: uplink}\n'


@pytest.mark.parametrize('text, message', [
    (FLEET + '  - {name: huge1, memory: 8G}\n',
     r'fleet.vmm.yml: no vmm host has room for guest huge1 \(memory 8G\): vmm1 has 1G of memory free, '
     r'vmm2 has 2G of memory free$'),
    (FLEET.replace(WEB1, WEB1 + '      - {name: dup1, switch: uplink, address: 192.0.2.2}\n'),
     r'fleet.vmm.yml: address collision in the fleet: web1 and dup1 both have 192.0.2.2$'),
    # placed on vmm2 (most free memory), whose pool is another network
    (FLEET + '  - {name: dup1, memory: 256M, switch: uplink, address: 192.0.2.9}\n',
     r"fleet.vmm.yml: guest dup1: address 192.0.2.9 is outside vmm2's pool 198.51.100.0/24$"),
    (FLEET.replace('vmm_host_memory: 4G', 'vmm_host_memory: 512M'),
     r'fleet.vmm.yml: vmm host vmm1 cannot hold its guests \(web1\): they need 1G of memory, it has 512M \(vmm_host_memory\)$'),
])
def test_capacity_and_collisions_fail_the_source_naming_the_file(tmp_path, text, message):
    with pytest.raises(AnsibleParserError, match=message):
        parse(tmp_path, text)


def test_a_bad_state_file_fails_the_source_naming_it(tmp_path):
    (tmp_path / 'fleet.vmm.state.json').write_text('{"version": 1,')
    with pytest.raises(AnsibleParserError) as error:
        parse(tmp_path, FLEET)
    assert 'state file %s is not JSON' % (tmp_path / 'fleet.vmm.state.json') in str(error.value)
