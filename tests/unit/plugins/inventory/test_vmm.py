# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar

from ansible_collections.openbsd.vmm.plugins.filter.vmm_ipv4_address import vmm_ipv4_address
from ansible_collections.openbsd.vmm.plugins.filter.vmm_lladdr import vmm_lladdr
from ansible_collections.openbsd.vmm.plugins.inventory.vmm import InventoryModule

FLEET = """
plugin: openbsd.vmm.vmm
vmm_hosts:
  vmm1:
    ansible_host: 192.0.2.1
    vmm_guest_network: 192.0.2.0/24
    vmm_guest_network_reserved: 9
    vmm_guests:
      - {name: web1, memory: 1G, switch: uplink}
      - {name: db1, switch: uplink, state: stopped, index: 5, vars: {role: db}}
  vmm2:
    vmm_guests:
      - {name: app1, address: 198.51.100.7, lladdr: "FE:E1:BA:D0:00:07", vars: {ansible_host: app1.example}}
  vmm3: {}
"""


def parse(tmp_path, text, name='fleet.vmm.yml'):
    path = tmp_path / name
    path.write_text(text)
    loader = DataLoader()
    plugin = inventory_loader.get('openbsd.vmm.vmm')
    assert isinstance(plugin, InventoryModule)
    plugin.templar = Templar(loader=loader)
    inventory = InventoryData()
    assert plugin.verify_file(str(path))
    plugin.parse(inventory, loader, str(path), cache=False)
    return inventory


def hostvars(inventory, name):
    return inventory.get_host(name).get_vars()


def group(inventory, name):
    return sorted(host.name for host in inventory.groups[name].get_hosts())


def test_verify_file_wants_the_vmm_suffix(tmp_path):
    path = tmp_path / 'fleet.yml'
    path.write_text('plugin: openbsd.vmm.vmm\n')
    assert not inventory_loader.get('openbsd.vmm.vmm').verify_file(str(path))


def test_hosts_guests_and_groups(tmp_path):
    inventory = parse(tmp_path, FLEET)
    assert group(inventory, 'vmm_hosts') == ['vmm1', 'vmm2', 'vmm3']
    assert group(inventory, 'vmm_guests') == ['app1', 'db1', 'web1']
    assert group(inventory, 'vmm1_guests') == ['db1', 'web1']
    assert group(inventory, 'vmm2_guests') == ['app1']


def test_guest_vars_share_the_filters_derivations(tmp_path):
    inventory = parse(tmp_path, FLEET)
    web1 = hostvars(inventory, 'web1')
    assert web1['vmm_host'] == 'vmm1'
    assert web1['lladdr'] == vmm_lladdr('web1')
    # position 0 of the pool after 9 reserved addresses; db1 asks for index 5
    assert web1['address'] == web1['ansible_host'] == vmm_ipv4_address('192.0.2.0/24', 0, reserved=9) == '192.0.2.10'
    db1 = hostvars(inventory, 'db1')
    assert db1['address'] == '192.0.2.15'
    assert db1['role'] == 'db'
    assert db1['vmm_guest']['state'] == 'stopped' and 'vars' not in db1['vmm_guest']
    app1 = hostvars(inventory, 'app1')
    assert app1['lladdr'] == 'fe:e1:ba:d0:00:07'
    assert app1['address'] == '198.51.100.7' and app1['ansible_host'] == 'app1.example'


def test_vmm_host_vars_keep_their_own_and_carry_the_lladdrs_for_provisioning(tmp_path):
    inventory = parse(tmp_path, FLEET)
    vmm1 = hostvars(inventory, 'vmm1')
    assert vmm1['ansible_host'] == '192.0.2.1'
    assert [(g['name'], g['lladdr'], g['address']) for g in vmm1['vmm_guests']] == [
        ('web1', vmm_lladdr('web1'), '192.0.2.10'), ('db1', vmm_lladdr('db1'), '192.0.2.15')]
    assert hostvars(inventory, 'vmm3')['vmm_guests'] == []


def test_lladdr_with_host_and_prefix(tmp_path):
    inventory = parse(tmp_path, FLEET + 'lladdr_with_host: true\nlladdr_prefix: "02:00"\n')
    assert hostvars(inventory, 'web1')['lladdr'] == vmm_lladdr('web1', host='vmm1', prefix='02:00')
    assert hostvars(inventory, 'web1')['lladdr'].startswith('02:00:')


def test_constructed_options_apply_to_guests(tmp_path):
    inventory = parse(tmp_path, FLEET + """
keyed_groups:
  - key: vmm_guest.state | default('running')
    prefix: state
groups:
  databases: "'db' in vmm_guest.name"
compose:
  ssh_target: "'root@' ~ address"
""")
    assert group(inventory, 'state_running') == ['app1', 'web1']
    assert group(inventory, 'state_stopped') == ['db1']
    assert group(inventory, 'databases') == ['db1']
    assert hostvars(inventory, 'web1')['ssh_target'] == 'root@192.0.2.10'


@pytest.mark.parametrize('hosts, message', [
    ("  a:\n    vmm_guests: [{name: web1}]\n  b:\n    vmm_guests: [{name: web1}]\n", 'guest web1 is listed twice: on a and on b'),
    ("  a:\n    vmm_guests: [{name: web1}, {name: x, lladdr: '%s'}]\n" % vmm_lladdr('web1'), 'lladdr collision'),
    ("  a:\n    vmm_guests: [{name: a}]\n", 'has the name of a vmm host'),
    ("  a:\n    vmm_guests: [{memory: 1G}]\n", 'each with a name'),
    ("  a:\n    vmm_guest_network: 192.0.2.0/30\n    vmm_guests: [{name: x, switch: s}, {name: y, switch: s}, {name: z, switch: s}]\n",
     'pool of 192.0.2.0/30 is exhausted at index 2'),
    # whole-string rules: a final line break, a multicast MAC, a name vmd refuses
    ('  a:\n    vmm_guests: [{name: "web1\\n"}]\n', "VM name 'web1\\\\n': a VM name may contain only"),
    ("  a:\n    vmm_guests: [{name: web1, lladdr: '01:00:5e:00:00:01'}]\n", 'is a multicast address'),
    ('  a:\n    vmm_guests: [{name: web1, lladdr: "fe:e1:ba:d0:00:01\\n"}]\n', 'is not a MAC address'),
    ("  a:\n    vmm_guests: [{name: 'web 1'}]\n", 'a VM name may contain only'),
])
def test_bad_fleets_are_refused_with_the_reason(tmp_path, hosts, message):
    with pytest.raises(AnsibleParserError, match=message):
        parse(tmp_path, 'plugin: openbsd.vmm.vmm\nvmm_hosts:\n' + hosts)
