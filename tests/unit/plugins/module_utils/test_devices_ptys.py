# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counting tap and pty nodes the way vmd's opentap() and the kernel's ptm(4) find them."""
from __future__ import annotations

import pytest

from ansible_collections.openbsd.vmm.plugins.module_utils import devices as d


def make(dev, *names):
    for name in names:
        (dev / name).write_text('')


def test_tap_indexes_lists_every_tap_node(tmp_path):
    make(tmp_path, 'tap0', 'tap1', 'tap2', 'tap4', 'tap5', 'tap10', 'tapx', 'tap', 'tun0')
    assert d.tap_indexes(str(tmp_path)) == [0, 1, 2, 4, 5, 10]
    assert d.tap_indexes(str(tmp_path / 'nothing')) == []


@pytest.mark.parametrize('minor, names', [
    (0, ('ptyp0', 'ttyp0')), (9, ('ptyp9', 'ttyp9')), (10, ('ptypa', 'ttypa')), (61, ('ptypZ', 'ttypZ')),
    (62, ('ptyq0', 'ttyq0')), (15 * 62 + 61, ('ptyTZ', 'ttyTZ')),
])
def test_pty_names_follow_ptydevname(minor, names):
    assert d.pty_name(minor) == names


def test_ptys_need_both_nodes_and_stop_at_the_first_gap(tmp_path):
    for minor in range(70):
        make(tmp_path, *d.pty_name(minor))
    assert d.usable_ptys(str(tmp_path)) == 70
    (tmp_path / 'ttyp5').unlink()
    assert d.usable_ptys(str(tmp_path)) == 5
    (tmp_path / 'ptyp0').unlink()
    assert d.usable_ptys(str(tmp_path)) == 0, 'minor 0 first: nothing after a gap at ptyp0 counts'


def test_ptys_stop_at_the_last_minor_the_kernel_names(tmp_path):
    for letter in 'pqrstuvwxyzPQRST':
        for suffix in '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ':
            make(tmp_path, 'pty' + letter + suffix, 'tty' + letter + suffix)
    assert d.usable_ptys(str(tmp_path)) == 992


@pytest.mark.parametrize('have, needed, groups', [
    (0, 25, ['pty0']), (0, 62, ['pty0']), (0, 63, ['pty0', 'pty1']), (62, 100, ['pty1']), (124, 100, []),
    (70, 200, ['pty1', 'pty2', 'pty3']), (61, 61, []), (61, 62, ['pty0']),
    # tty_pty.c knows 16 letters: MAKEDEV groups stop at pty15 whatever is asked
    (900, 2000, ['pty14', 'pty15']),
])
def test_makedev_pty_groups(have, needed, groups):
    assert d.makedev_pty_args(have, needed) == groups


def test_taps_needed_counts_interfaces_of_vms_not_absent():
    vms = [{'name': 'a'}, {'name': 'b', 'interfaces': 2}, {'name': 'c', 'interfaces': [{}, {}, {}]},
           {'name': 'd', 'state': 'absent', 'interfaces': 4}, {'name': 'e', 'state': 'stopped'}]
    assert d.taps_needed(vms) == 1 + 2 + 3 + 1
    assert [vm['name'] for vm in d.planned(vms)] == ['a', 'b', 'c', 'e']
    assert d.taps_needed([]) == 0
    assert d.taps_needed(None) == 0


@pytest.mark.parametrize('vm, count', [
    ({'name': 'a'}, 1), ('a', 1), (None, 1), ({'interfaces': '3'}, 3), ({'interfaces': 0}, 0),
    ({'interfaces': 'two'}, 1), ({'interfaces': None}, 1), ({'interfaces': ()}, 0),
])
def test_interfaces_of_reads_a_count_a_list_or_defaults_to_one(vm, count):
    assert d.interfaces_of(vm) == count
