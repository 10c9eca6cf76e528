# -*- coding: utf-8 -*-
# Copyright: (c) 2026, openbsd.vmm contributors
# Simplified BSD License (see LICENSES/BSD-2-Clause.txt or https://opensource.org/licenses/BSD-2-Clause)
"""Device nodes vmd needs on the host: how many VMs' interfaces the /dev/tapN nodes can carry.

vmd opens a tap for every interface of a VM it starts (config.c config_setvm). Without a
named tap it calls vmm.c ``opentap``, which opens /dev/tap0, tap1, ... in turn, skips a busy
node and stops at the first node that does not exist: nodes after a gap are never used, and
running out fails the start with ENOENT half-way through a fleet. A stock install has few tap
nodes; more are made with ``cd /dev && sh MAKEDEV tapN ...``.
"""

from __future__ import annotations

import os

from dataclasses import dataclass

MAX_TAP = 256           # vmd.h MAX_TAP: opentap's upper bound


def tap_nodes(dev_dir='/dev'):
    """The number of tap nodes opentap can reach: tap0, tap1, ... up to the first that does not exist."""
    count = 0
    while count < MAX_TAP and os.path.exists(os.path.join(dev_dir, 'tap%d' % count)):
        count += 1
    return count


def makedev_command(first, count, dev_dir='/dev'):
    """The command that makes ``count`` more nodes from tap<first> on."""
    names = ' '.join('tap%d' % index for index in range(first, first + count))
    return 'cd %s && sh MAKEDEV %s' % (dev_dir, names)


@dataclass
class TapCapacity:
    """Tap nodes against the interfaces of the VMs to start: ``problem`` is None when they fit."""

    nodes: int              # tap0..tap<nodes-1> exist
    held: int               # taps held by VMs that keep running
    needed: int             # interfaces of the VMs to start
    dev_dir: str = '/dev'

    @property
    def free(self):
        return max(self.nodes - self.held, 0)

    @property
    def missing(self):
        return max(self.needed - self.free, 0)

    @property
    def problem(self):
        if not self.missing:
            return None
        if self.held + self.needed > MAX_TAP:
            return ('%d tap devices are needed (%d for the VMs to start, %d held by running VMs) but vmd opens at most %d'
                    % (self.held + self.needed, self.needed, self.held, MAX_TAP))
        return ('the VMs to start have %d interfaces, but only %d tap devices are free: %s has %d (tap0 up to the first '
                'missing node, where vmd stops looking), %d of them held by running VMs; %d missing. Create them with: %s'
                % (self.needed, self.free, self.dev_dir, self.nodes, self.held, self.missing,
                   makedev_command(self.nodes, self.missing, self.dev_dir)))


def tap_capacity(needed, held, dev_dir='/dev'):
    """Count the nodes in ``dev_dir`` and compare with ``needed`` interfaces beside ``held`` busy taps."""
    return TapCapacity(nodes=tap_nodes(dev_dir), held=held, needed=needed, dev_dir=dev_dir)
