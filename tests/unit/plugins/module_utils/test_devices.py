# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tap nodes as vmd's opentap finds them, and the capacity message."""
from __future__ import annotations

from ansible_collections.openbsd.vmm.plugins.module_utils import devices


def make(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_text('')
    return str(tmp_path)


def test_nodes_are_counted_from_tap0_up_to_the_first_gap(tmp_path):
    assert devices.tap_nodes(str(tmp_path)) == 0
    dev = make(tmp_path, 'tap1', 'tap2')
    assert devices.tap_nodes(dev) == 0, 'no tap0: opentap stops at once'
    make(tmp_path, 'tap0', 'tap4')
    assert devices.tap_nodes(dev) == 3


def test_capacity_counts_held_taps_and_says_how_to_make_the_missing_ones(tmp_path):
    dev = make(tmp_path, 'tap0', 'tap1', 'tap2')
    assert devices.tap_capacity(needed=1, held=2, dev_dir=dev).problem is None
    capacity = devices.tap_capacity(needed=3, held=2, dev_dir=dev)
    assert (capacity.nodes, capacity.free, capacity.missing) == (3, 1, 2)
    assert capacity.problem.endswith('2 missing. Create them with: cd %s && sh MAKEDEV tap3 tap4' % dev)
    assert devices.tap_capacity(needed=0, held=9, dev_dir=dev).problem is None


def test_more_than_vmd_can_open(tmp_path):
    assert 'vmd opens at most 256' in devices.tap_capacity(needed=200, held=100, dev_dir=str(tmp_path)).problem


def test_opentap_stops_at_max_tap_even_with_more_nodes(tmp_path):
    dev = make(tmp_path, *('tap%d' % index for index in range(257)))
    assert devices.tap_nodes(dev) == 256


def test_free_is_never_negative(tmp_path):
    capacity = devices.tap_capacity(needed=2, held=5, dev_dir=make(tmp_path, 'tap0', 'tap1', 'tap2'))
    assert (capacity.free, capacity.missing) == (0, 2)


def test_exactly_max_tap_is_a_makedev_problem_not_a_vmd_limit(tmp_path):
    dev = make(tmp_path, *('tap%d' % index for index in range(10)))
    capacity = devices.tap_capacity(needed=250, held=6, dev_dir=dev)
    assert capacity.problem == (
        'the VMs to start have 250 interfaces, but only 4 tap devices are free: %s has 10 (tap0 up to the first missing '
        'node, where vmd stops looking), 6 of them held by running VMs; 246 missing. Create them with: cd %s && sh MAKEDEV %s'
        % (dev, dev, ' '.join('tap%d' % index for index in range(10, 256))))
    over = devices.tap_capacity(needed=251, held=6, dev_dir=dev)
    assert over.problem == ('257 tap devices are needed (251 for the VMs to start, 6 held by running VMs) '
                            'but vmd opens at most 256')
