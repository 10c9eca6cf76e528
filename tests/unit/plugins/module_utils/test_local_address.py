# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The addresses of a local interface, as vmd's priv.c vm_priv_addr computes them."""

from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils.local_address import (
    LocalAddressError, parse_local_prefix, vm_priv_addr)
from ansible_collections.openbsd.vmm.plugins.module_utils.vmconf import parse_config


@pytest.mark.parametrize('prefix, vmid, idx, isvm, address', [
    ('100.64.0.0/10', 4, 0, False, '100.64.4.2'),
    ('100.64.0.0/10', 4, 0, True, '100.64.4.3'),
    ('100.64.0.0/10', 4, 1, False, '100.64.4.4'),
    ('100.64.0.0/10', 255, 0, False, '100.64.255.2'),
    ('100.64.0.0/10', 256, 0, False, '100.65.0.2'),
    ('100.64.0.0/10', 256, 0, True, '100.65.0.3'),
    ('100.64.0.0/10', 16383, 0, False, '100.127.255.2'),
    ('10.0.0.0/16', 4, 0, False, '10.0.4.2'),
    ('192.168.0.0/16', 255, 2, True, '192.168.255.7'),
    ('172.16.0.0', 1, 0, False, '172.16.1.2'),
])
def test_addresses_follow_vmds_formula(prefix, vmid, idx, isvm, address):
    assert vm_priv_addr(prefix, vmid, idx, isvm) == address


@pytest.mark.parametrize('prefix, vmid, idx', [
    ('100.64.0.0/10', 32768, 0),   # 100.192.0.2 is outside 100.64.0.0/10
    ('10.0.0.0/16', 256, 0),       # 10.1.0.2 is outside 10.0.0.0/16
    ('100.64.0.0/10', 1, 127),     # at most 126 interfaces per VM
])
def test_an_address_outside_the_prefix_is_no_address(prefix, vmid, idx):
    with pytest.raises(LocalAddressError, match=r'dhcp address range exceeded, vm id %d interface %d' % (vmid, idx)):
        vm_priv_addr(prefix, vmid, idx)


def test_vmds_or_folds_ids_onto_bits_the_prefix_has_set():
    # 16384 << 8 sets the bit that 100.64's second octet already has: vmd's check passes, the address repeats.
    assert vm_priv_addr('100.64.0.0/10', 16384, 0) == '100.64.0.2'


def test_the_first_interface_and_the_host_side_are_the_defaults():
    # priv.c vm_priv_addr: VM id 1, interface 0, host side
    assert vm_priv_addr('100.64.0.0/10', 1) == '100.64.1.2'
    assert vm_priv_addr('100.64.0.0/10', 1, isvm=True) == '100.64.1.3'


def test_a_prefix_without_length_is_a_slash_16():
    assert str(parse_local_prefix('10.20.0.0')) == '10.20.0.0/16'


@pytest.mark.parametrize('text', ['', 'fd00::/8', '10.0.0.0/8\n', 'ten'])
def test_a_bad_prefix_is_refused(text):
    with pytest.raises(LocalAddressError, match='local prefix'):
        parse_local_prefix(text)


def test_the_prefix_length_is_1_to_16():
    assert str(parse_local_prefix('10.0.0.0/16')) == '10.0.0.0/16'
    assert str(parse_local_prefix('0.0.0.0/1')) == '0.0.0.0/1'
    for text in ('10.0.0.0/17', '10.0.0.0/0'):
        with pytest.raises(LocalAddressError) as caught:
            parse_local_prefix(text)
        assert str(caught.value) == 'local prefix %r: the length must be 1 to 16 (vmd refuses others)' % text


def test_a_prefix_that_is_no_network_is_refused_with_the_reason():
    with pytest.raises(LocalAddressError) as caught:
        parse_local_prefix('300.1.1.1/8')
    assert str(caught.value).startswith("local prefix '300.1.1.1/8': ")
    assert 'does not appear to be an IPv4' in str(caught.value) or 'Octet 300' in str(caught.value)


def test_vm_conf_local_prefix_is_read_and_the_last_one_wins(tmp_path):
    conf = tmp_path / 'vm.conf'
    conf.write_text('pfx = "10.9.0.0/16"\nlocal prefix "10.0.0.0/16"\nlocal inet6 prefix fd00:1::/64\n'
                    'local prefix $pfx\nvm "a" {\n  memory 1G\n}\n')
    summary = parse_config(str(conf))
    assert summary.local_prefix == '10.9.0.0/16'
    assert [vm.name for vm in summary.vms] == ['a']


def test_vm_conf_without_local_prefix_leaves_vmds_default(tmp_path):
    conf = tmp_path / 'vm.conf'
    conf.write_text('vm "a" {\n  memory 1G\n}\n')
    assert parse_config(str(conf)).local_prefix is None
    assert parse_config(str(tmp_path / 'missing.conf')).local_prefix is None
