# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmm_vm_info: the addresses vmd gives running VMs' local interfaces (priv.c vm_priv_addr)."""

from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils.local_address import LocalAddressError
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import VmConf
from ansible_collections.openbsd.vmm.plugins.module_utils.vmctl import parse_status
from ansible_collections.openbsd.vmm.plugins.modules.vmm_vm_info import collect

HEADER = '   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME\n'
CONF = """
vm "loc" {
\tdisk "/var/vmm/loc.qcow2"
\tinterface { switch "uplink" }
\tlocal interface
}
vm "sw" {
\tdisk "/var/vmm/sw.qcow2"
\tinterface { switch "uplink" }
}
vm "down" {
\tdisk "/var/vmm/down.qcow2"
\tlocal interface
}
vm "parent" {
\tdisk "/var/vmm/parent.qcow2"
\tlocal interface
\tallow instance { interface }
}
vm "parent" instance "child" {
}
"""
STATUS = HEADER + (
    '    3 72014     1    516M    100M   ttyp0         root  running loc\n'
    '    7 72015     1    516M    100M   ttyp1         root  running sw\n'
    '    5 72016     1    516M    100M   ttyp2         root  running child\n'
    '    4     -     1    512M       -       -         root  stopped down\n'
    '    6     -     1    512M       -       -         root  stopped parent\n'
)


def records(conf=CONF, status=STATUS):
    return {record['name']: record for record in collect(VmConf('/etc/vm.conf', conf), parse_status(status))}


def test_running_vm_gets_vmds_addresses_of_its_local_interface_only():
    by_name = records()
    # vm id 3, interface 1: 100.64.0.0 | (3 << 8) | (1 + 1) * 2 = 100.64.3.4 (host), + 1 the VM
    assert by_name['loc']['interfaces'] == [
        {'index': 1, 'local': True, 'address': '100.64.3.5', 'gateway': '100.64.3.4', 'prefixlen': 31}]
    assert by_name['sw']['interfaces'] == []


def test_a_vm_that_is_not_running_has_no_address():
    assert records()['down']['interfaces'] == []
    assert records()['parent']['interfaces'] == []


def test_an_instance_has_its_parents_local_interface():
    assert records()['child']['interfaces'] == [
        {'index': 0, 'local': True, 'address': '100.64.5.3', 'gateway': '100.64.5.2', 'prefixlen': 31}]


def test_the_local_prefix_of_vm_conf_is_used():
    by_name = records('local prefix "10.20.0.0/16"\n' + CONF)
    assert by_name['loc']['interfaces'][0]['address'] == '10.20.3.5'


def test_no_address_when_the_prefix_has_none_for_the_vm():
    # a /24 prefix has room for vm id 0 only: vmd logs "dhcp address range exceeded" and gives none
    by_name = records('local prefix "10.20.0.0/16"\n' + CONF.replace('vm "loc" {', 'vm "loc" {\n\tlocal interface'),
                      STATUS.replace('    3 72014', '  300 72014'))
    assert by_name['loc']['interfaces'][0] == {'index': 0, 'local': True, 'address': None, 'gateway': None,
                                               'prefixlen': None}


def test_a_bad_local_prefix_is_an_error():
    with pytest.raises(LocalAddressError, match='the length must be 1 to 16'):
        records('local prefix "10.0.0.0/24"\n' + CONF)
